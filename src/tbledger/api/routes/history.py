"""An account over time: its balance history, its balance as of a time, its activity, and
statements for a period (JSON or CSV).

Every route reads one account the caller may see (an owner key: its owner's accounts; another
owner's answers exactly as a missing one, 404) and calls one `LedgerService` method; the money
comes from the engine's history (DESIGN §10), the names from the store. An account created
without the engine's ``history`` flag has no past balances: its history, as-of balances and
statements answer 409 ``history_not_kept``.

Times in a query are engine timestamps (ns since the Unix epoch) or ISO 8601 times (UTC unless
they carry an offset); periods are ``[from, to)``. Cursors are engine timestamps: pass
``next_cursor`` back as ``cursor``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query, Response

from tbledger.api.context import ApiContext, Caller, Ctx, account_id_of
from tbledger.api.history_views import (
    ActivityOut,
    BalanceAsOfOut,
    BalanceHistoryOut,
    StatementOut,
    activity_out,
    as_of_out,
    counterparties_of,
    history_out,
    statement_csv,
    statement_out,
)
from tbledger.api.routing import router_for
from tbledger.api.schemas import ID_PATTERN, IdText
from tbledger.errors import UnknownCodeError
from tbledger.limits import HTTP_PAGE_LIMIT_MAX, U16_MAX

__all__ = ["router"]

router = router_for("/v1", tags=["history"])

AccountIdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=39)]

# An engine timestamp (digits) or an ISO 8601 date or time, with an optional fraction of a second
# (to the nanosecond) and offset; the service reads it (a date that does not exist is a 422).
_TIME_PATTERN = (
    r"^([0-9]{1,19}|[0-9]{4}-?[0-9]{2}-?[0-9]{2}"
    r"([T ][0-9]{2}(:?[0-9]{2}(:?[0-9]{2}([.,][0-9]{1,9})?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?)$"
)
_TIME_HELP = "an engine timestamp (ns since the Unix epoch) or an ISO 8601 time (UTC if no offset)"
_CURSOR_PATTERN = r"^[0-9]{1,19}$"

StartQuery = Annotated[
    str | None,
    Query(alias="from", pattern=_TIME_PATTERN, max_length=64, description=f"from: {_TIME_HELP}"),
]
EndQuery = Annotated[
    str | None,
    Query(
        alias="to",
        pattern=_TIME_PATTERN,
        max_length=64,
        description=f"until (excluded): {_TIME_HELP}",
    ),
]
LimitQuery = Annotated[int, Query(ge=1, le=HTTP_PAGE_LIMIT_MAX)]
CursorQuery = Annotated[
    str | None, Query(pattern=_CURSOR_PATTERN, description="next_cursor of the last page")
]
ReverseQuery = Annotated[bool, Query(description="newest first")]
# The audit statuses of transfers (`tbledger.model.TRANSFER_EVENT_KINDS`; a test holds the two
# to each other).
StatusName = Literal[
    "expired",
    "failed",
    "foreign_transfer",
    "outcome_unknown",
    "pending",
    "posted",
    "submitted",
    "voided",
]


def _cursor(text: str | None) -> int | None:
    return None if text is None else int(text)


def _code(ctx: ApiContext, ref: str) -> int:
    """A transfer code by chart name or number (any code, the control code included: this only
    filters what the caller may already see)."""
    if ref.isdigit():
        return int(ref)
    try:
        return ctx.chart.transfer_code(ref).code
    except UnknownCodeError:
        raise UnknownCodeError(f"no transfer code {ref!r} in the chart") from None


@router.get("/accounts/{account_id}/history", response_model=BalanceHistoryOut)
async def balance_history(
    account_id: AccountIdPath,
    ctx: Ctx,
    caller: Caller,
    start: StartQuery = None,
    end: EndQuery = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    reverse: ReverseQuery = False,
) -> BalanceHistoryOut:
    """The account's balance after each of its transfers, from the engine's history, each with
    the transfer that moved it; it opens with zero at the account's creation. Oldest first
    (newest with `reverse`), paged."""
    record = await ctx.visible_account(caller, account_id_of(account_id))
    history = await ctx.service.balance_history(
        record.id,
        start=start,
        end=end,
        limit=limit,
        cursor=_cursor(cursor),
        reversed_=reverse,
    )
    # Names and owners come from the store (cached), and show only where the key may see them.
    records = await ctx.accounts(counterparties_of(history.points))
    return history_out(ctx, caller, history, records)


@router.get("/accounts/{account_id}/balance", response_model=BalanceAsOfOut)
async def balance_as_of(
    account_id: AccountIdPath,
    ctx: Ctx,
    caller: Caller,
    as_of: Annotated[
        str, Query(pattern=_TIME_PATTERN, max_length=64, description=f"when: {_TIME_HELP}")
    ],
) -> BalanceAsOfOut:
    """The account's balance at `as_of`: after every transfer stamped at or before it; zero
    before its first transfer; `existed` false (and no balance) before it was opened."""
    record = await ctx.visible_account(caller, account_id_of(account_id))
    found = await ctx.service.balance_as_of(record.id, as_of=as_of)
    points = [] if found.point is None else [found.point]
    return as_of_out(ctx, caller, found, await ctx.accounts(counterparties_of(points)))


@router.get("/accounts/{account_id}/activity", response_model=ActivityOut)
async def account_activity(
    account_id: AccountIdPath,
    ctx: Ctx,
    caller: Caller,
    start: StartQuery = None,
    end: EndQuery = None,
    code: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_]{1,64}$", description="a transfer code's chart name or number"
        ),
    ] = None,
    counterparty: Annotated[
        IdText | None, Query(description="only transfers with this account on the other side")
    ] = None,
    flow: Annotated[
        str | None,
        Query(pattern=r"^[a-z_]{1,64}$", description="only this flow (deposit, payment, ...)"),
    ] = None,
    status: Annotated[
        StatusName | None, Query(description="only transfers whose latest audit status is this")
    ] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    reverse: ReverseQuery = False,
) -> ActivityOut:
    """The account's transfers with what the store knows of each: the counterparty, the flow
    and leg, payment and event ids, the idempotency key, the audit status and, for a posted hold,
    how much was captured. Filtered by time, code, counterparty, flow and status; paged (a
    filtered page may be short, even empty, and still have a `next_cursor`)."""
    record = await ctx.visible_account(caller, account_id_of(account_id))
    code_value = None if code is None else _code(ctx, code)
    if code_value is not None and not 0 < code_value <= U16_MAX:
        raise UnknownCodeError(f"no transfer code {code!r}")
    page = await ctx.service.account_activity(
        record.id,
        start=start,
        end=end,
        code=code_value,
        counterparty_id=None
        if counterparty is None
        else account_id_of(counterparty, "counterparty"),
        flow=flow,
        status=status,
        limit=limit,
        cursor=_cursor(cursor),
        reversed_=reverse,
    )
    return activity_out(ctx, caller, record.ledger, page)


@router.get(
    "/accounts/{account_id}/statement",
    response_model=StatementOut,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "the statement (JSON, or CSV with format=csv)",
        }
    },
)
async def statement(
    account_id: AccountIdPath,
    ctx: Ctx,
    caller: Caller,
    start: Annotated[
        str,
        Query(
            alias="from", pattern=_TIME_PATTERN, max_length=64, description=f"from: {_TIME_HELP}"
        ),
    ],
    end: Annotated[
        str,
        Query(
            alias="to",
            pattern=_TIME_PATTERN,
            max_length=64,
            description=f"until (excluded): {_TIME_HELP}",
        ),
    ],
    format_: Annotated[
        Literal["json", "csv"], Query(alias="format", description="json or csv")
    ] = "json",
) -> StatementOut | Response:
    """The account's statement for ``[from, to)``: the opening balance (just before `from`),
    every transfer with its effect on the posted balance and the running balance, the closing
    balance (just before `to`). Opening + the changes == closing, checked by the service."""
    record = await ctx.visible_account(caller, account_id_of(account_id))
    found = await ctx.service.statement(record.id, start=start, end=end)
    body = statement_out(ctx, caller, record, found)
    if format_ == "json":
        return body
    name = f"statement-{body.account_id}-{body.start}-{body.end}.csv"
    return Response(
        statement_csv(body),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
