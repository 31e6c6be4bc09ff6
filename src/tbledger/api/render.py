"""Library values as response bodies: ids in hex, amounts in both spellings, u128s as strings."""

from __future__ import annotations

from collections.abc import Sequence

import tigerbeetle as tb

from tbledger.api.context import ApiContext
from tbledger.api.schemas import (
    AccountOut,
    AuditEventOut,
    BalanceOut,
    TransferOut,
    TransferResultOut,
)
from tbledger.balances import Balance
from tbledger.ids import format_id
from tbledger.model import AccountRecord, AuditEvent, TransferIntent
from tbledger.service import TransferResult, TransferStatus

__all__ = ["account_out", "audit_out", "balance_out", "result_out", "transfer_out"]


def _scale(ctx: ApiContext, ledger: int) -> tuple[str | None, int]:
    book = ctx.ledger_or_none(ledger)
    return (None, 0) if book is None else (book.name, book.asset_scale)


def _major(minor: int, scale: int) -> str:
    negative = minor < 0
    digits = str(abs(minor))
    if scale:
        digits = digits.rjust(scale + 1, "0")
        digits = f"{digits[:-scale]}.{digits[-scale:]}"
    return f"-{digits}" if negative else digits


def balance_out(
    ctx: ApiContext, balance: Balance, *, account_name: str | None = None
) -> BalanceOut:
    name, scale = _scale(ctx, balance.ledger)
    return BalanceOut(
        account_id=format_id(balance.account_id),
        account_name=account_name,
        ledger=balance.ledger,
        ledger_name=name,
        asset_scale=scale,
        normal_side=balance.normal_side.value,
        posted=_major(balance.posted, scale),
        available=_major(balance.available, scale),
        pending=_major(balance.pending, scale),
        held=_major(balance.held, scale),
        posted_minor=str(balance.posted),
        available_minor=str(balance.available),
        pending_minor=str(balance.pending),
        held_minor=str(balance.held),
        debits_posted=str(balance.debits_posted),
        credits_posted=str(balance.credits_posted),
        debits_pending=str(balance.debits_pending),
        credits_pending=str(balance.credits_pending),
        closed=balance.closed,
    )


def account_out(
    ctx: ApiContext, record: AccountRecord, balance: Balance | None = None
) -> AccountOut:
    name, _ = _scale(ctx, record.ledger)
    return AccountOut(
        id=format_id(record.id),
        account_type=record.account_type,
        owner_id=record.owner_id,
        name=record.name,
        ledger=record.ledger,
        ledger_name=name,
        code=record.code,
        status=record.status.value,
        metadata=dict(record.metadata),
        created_at=record.created_at,
        updated_at=record.updated_at,
        balance=None if balance is None else balance_out(ctx, balance, account_name=record.name),
    )


def result_out(result: TransferResult) -> TransferResultOut:
    return TransferResultOut(
        id=format_id(result.id),
        status=result.status,
        ok=result.ok,
        timestamp=None if result.timestamp is None else str(result.timestamp),
        replayed=result.replayed,
    )


def audit_out(event: AuditEvent) -> AuditEventOut:
    return AuditEventOut(
        seq=event.seq,
        kind=event.kind.value,
        transfer_id=None if event.transfer_id is None else format_id(event.transfer_id),
        account_id=None if event.account_id is None else format_id(event.account_id),
        status=event.status,
        engine_timestamp=None if event.engine_timestamp is None else str(event.engine_timestamp),
        detail=dict(event.detail),
        recorded_at=event.recorded_at,
    )


def _flag_names(flags: int) -> list[str]:
    return [f.name.lower() for f in tb.TransferFlags if f.value and flags & f.value and f.name]


def transfer_out(
    ctx: ApiContext,
    *,
    engine: tb.Transfer | None,
    intent: TransferIntent | None,
    audit: Sequence[AuditEvent] = (),
    latest: AuditEvent | None = None,
    status: TransferStatus | None = None,
) -> TransferOut:
    """A transfer as the engine holds it (when it does), with the store's context and history.

    Its status is `status`'s (the service's `transfer_statuses`: exact for a hold past its
    timeout, with what a posted hold captured and released), else `latest`'s, else that of the
    last event of `audit`."""
    source = engine if engine is not None else intent
    assert source is not None, "a transfer is rendered from the engine or the store"
    name, scale = _scale(ctx, source.ledger)
    transfer_events = [e for e in audit if e.transfer_id is not None]
    if latest is not None:
        transfer_events.append(latest)
    if status is not None:
        transfer_events.append(status.latest)
    captured = None if status is None else status.captured_amount
    released = None if status is None else status.released_amount
    return TransferOut(
        id=format_id(source.id),
        debit_account_id=format_id(source.debit_account_id),
        credit_account_id=format_id(source.credit_account_id),
        amount=_major(source.amount, scale),
        amount_minor=str(source.amount),
        ledger=source.ledger,
        ledger_name=name,
        asset_scale=scale,
        code=source.code,
        pending_id=format_id(source.pending_id) if source.pending_id else None,
        flags=_flag_names(int(source.flags)),
        timeout_s=source.timeout,
        timestamp=str(engine.timestamp) if engine is not None else None,
        status=transfer_events[-1].kind.value if transfer_events else None,
        captured_amount=None if captured is None else _major(captured, scale),
        captured_amount_minor=None if captured is None else str(captured),
        released_amount=None if released is None else _major(released, scale),
        released_amount_minor=None if released is None else str(released),
        payment_id=None if intent is None else intent.payment_id,
        event_id=None if intent is None else intent.event_id,
        chain_tx_hash=None if intent is None else intent.chain_tx_hash,
        metadata={} if intent is None else dict(intent.metadata),
        audit=[audit_out(e) for e in audit],
    )
