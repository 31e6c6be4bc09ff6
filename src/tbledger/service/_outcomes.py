"""Engine statuses to results, audit kinds and errors, with no I/O: the one owner of that mapping.

What a `CreateTransferStatus` means to a caller is decided here and nowhere else: which statuses
are success (`OK_STATUSES`), which audit event and ledger event an outcome appends, and which
`TbledgerError` a refusal raises. The flows map their legs' refusals through the same
classification (`refusal_of`), so a status means one thing across the product.
"""

from __future__ import annotations

from enum import StrEnum

import tigerbeetle as tb

from tbledger.errors import (
    AccountFrozenError,
    AccountNotFoundError,
    InsufficientBalanceError,
    TigerBeetleError,
    TransferFailedError,
)
from tbledger.events import LedgerEventName
from tbledger.ids import format_id
from tbledger.model import (
    AuditEvent,
    EventKind,
    TransferIntent,
)
from tbledger.service._values import TransferResult

_S = tb.CreateTransferStatus
_F = tb.TransferFlags
# Flag values as plain ints: IntFlag arithmetic costs microseconds per operation, and the write
# path does it for every transfer.
_PENDING = int(_F.PENDING)
_VOID = int(_F.VOID_PENDING_TRANSFER)


# The error code of a transfer refused because an account is frozen (the engine says closed).
ACCOUNT_FROZEN = "account_frozen"


class Refusal(StrEnum):
    """What a refused transfer's status means, for choosing the error a caller gets."""

    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    CLOSED = "closed"
    NOT_FOUND = "not_found"
    LINKED_FAILED = "linked_event_failed"
    OTHER = "other"


_REFUSALS: dict[tb.CreateTransferStatus, Refusal] = {
    _S.EXCEEDS_CREDITS: Refusal.EXCEEDS_CREDITS,
    _S.EXCEEDS_DEBITS: Refusal.EXCEEDS_DEBITS,
    _S.DEBIT_ACCOUNT_ALREADY_CLOSED: Refusal.CLOSED,
    _S.CREDIT_ACCOUNT_ALREADY_CLOSED: Refusal.CLOSED,
    _S.DEBIT_ACCOUNT_NOT_FOUND: Refusal.NOT_FOUND,
    _S.CREDIT_ACCOUNT_NOT_FOUND: Refusal.NOT_FOUND,
    _S.LINKED_EVENT_FAILED: Refusal.LINKED_FAILED,
}


def engine_status(status: str | tb.CreateTransferStatus) -> tb.CreateTransferStatus | None:
    """The engine's status enum for a result's status name (None for a name it does not have,
    such as ``circuit_open``)."""
    if isinstance(status, tb.CreateTransferStatus):
        return status
    return _S.__members__.get(status.upper())


def refusal_of(status: str | tb.CreateTransferStatus) -> Refusal:
    """What a refusal with `status` means (`Refusal.OTHER` for any status without a special
    error)."""
    parsed = engine_status(status)
    return Refusal.OTHER if parsed is None else _REFUSALS.get(parsed, Refusal.OTHER)


OK_STATUSES = frozenset({_S.CREATED, _S.EXISTS})


INSUFFICIENT_STATUSES = frozenset({_S.EXCEEDS_CREDITS, _S.EXCEEDS_DEBITS})


CLOSED_STATUSES = frozenset({_S.DEBIT_ACCOUNT_ALREADY_CLOSED, _S.CREDIT_ACCOUNT_ALREADY_CLOSED})


NOT_FOUND_STATUSES = frozenset({_S.DEBIT_ACCOUNT_NOT_FOUND, _S.CREDIT_ACCOUNT_NOT_FOUND})


STATUS_NAMES: dict[int, str] = {int(s): s.name.lower() for s in _S}


_INSUFFICIENT = frozenset({Refusal.EXCEEDS_CREDITS, Refusal.EXCEEDS_DEBITS})


OK_NAMES = frozenset({"created", "exists"})


def status_name(status: int) -> str:
    name = STATUS_NAMES.get(status)
    return _S(status).name.lower() if name is None else name


FAILED_KIND = (EventKind.FAILED, LedgerEventName.TRANSFER_FAILED)


VOIDED_KIND = (EventKind.VOIDED, LedgerEventName.TRANSFER_VOIDED)


PENDING_KIND = (EventKind.PENDING, LedgerEventName.TRANSFER_PENDING)


POSTED_KIND = (EventKind.POSTED, LedgerEventName.TRANSFER_POSTED)


def outcome_kind(
    intent: TransferIntent, result: TransferResult
) -> tuple[EventKind, LedgerEventName]:
    status = result.status
    if status not in OK_NAMES:
        return FAILED_KIND
    if intent.flags & _VOID:
        return VOIDED_KIND
    if intent.flags & _PENDING:
        return PENDING_KIND
    return POSTED_KIND


def result_from_event(transfer_id: int, event: AuditEvent, *, replayed: bool) -> TransferResult:
    if event.kind is EventKind.FAILED:
        return TransferResult(
            transfer_id, event.status or "failed", event.engine_timestamp, replayed
        )
    status = event.status if event.status in ("created", "exists") else "created"
    return TransferResult(transfer_id, status, event.engine_timestamp, replayed)


def transfer_error(
    result: TransferResult,
    intent: TransferIntent | None,
    available: int | None,
    *,
    frozen: bool = False,
) -> TigerBeetleError:
    refusal = refusal_of(result.status)
    details: dict[str, object] = {"transfer_id": format_id(result.id), "status": result.status}
    message = f"transfer {format_id(result.id)} refused by the engine: {result.status}"
    if refusal in _INSUFFICIENT and intent is not None:
        return InsufficientBalanceError(
            message,
            available=max(available or 0, 0),
            requested=intent.amount,
            code=result.status,
            details=details,
        )
    if refusal is Refusal.CLOSED:
        if frozen:
            message = f"{message} (the account is frozen)"
        code = ACCOUNT_FROZEN if frozen else result.status
        return AccountFrozenError(message, code=code, details=details)
    if refusal is Refusal.NOT_FOUND:
        return AccountNotFoundError(message, code=result.status, details=details)
    return TransferFailedError(message, code=result.status, details=details)
