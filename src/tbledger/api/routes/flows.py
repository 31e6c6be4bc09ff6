"""Payment flows over the chart of accounts (`tbledger.flows.SpendEngine`).

Each route is one flow call. The ``Idempotency-Key`` header is the flow's idempotency key: a retry
replays the first outcome (``replayed: true``) and moves nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tbledger.api.context import Admin, ApiContext, Ctx, IdempotencyKey, account_id_of
from tbledger.api.render import result_out
from tbledger.api.routing import router_for
from tbledger.api.schemas import (
    AmountText,
    AmountUnit,
    IdText,
    LedgerRef,
    StrictBody,
    Text,
    TransferResultOut,
)
from tbledger.flows import FlowResult

__all__ = ["router"]

router = router_for("/v1/flows", tags=["flows"])


class FlowOut(BaseModel):
    """What every flow returns; flow-specific ids and amounts are in `details`."""

    flow: str
    event_id: str
    payment_id: str
    ledger: int
    amount: str
    amount_minor: str
    replayed: bool
    transfers: list[TransferResultOut]
    details: dict[str, Any]


def flow_out(ctx: ApiContext, flow: str, result: FlowResult, **details: Any) -> FlowOut:
    book = ctx.ledger(result.ledger)
    return FlowOut(
        flow=flow,
        event_id=result.event_id,
        payment_id=result.payment_id,
        ledger=result.ledger,
        amount=book.format_amount(result.amount),
        amount_minor=str(result.amount),
        replayed=result.replayed,
        transfers=[result_out(t) for t in result.transfers],
        details=details,
    )


class DepositIn(StrictBody):
    account_id: IdText
    amount: AmountText
    amount_unit: AmountUnit = "major"
    ledger: LedgerRef
    event_id: Text | None = None
    payment_id: Text | None = None


@router.post("/deposit", response_model=FlowOut, status_code=201)
async def deposit(body: DepositIn, ctx: Ctx, _admin: Admin, key: IdempotencyKey) -> FlowOut:
    """Money enters the platform: treasury -> account (admin key)."""
    book = ctx.ledger(body.ledger)
    account = await ctx.visible_account(_admin, account_id_of(body.account_id))
    result = await ctx.flows.deposit(
        account.id,
        ctx.minor(book, body.amount, body.amount_unit),
        ledger=book.code,
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
    )
    return flow_out(ctx, "deposit", result, account_id=body.account_id)
