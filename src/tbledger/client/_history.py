"""An account over time, as the HTTP API answers it: balance history, a balance as of a time,
activity and statements (``/v1/accounts/{id}/history``, ``/balance``, ``/activity``,
``/statement``), as immutable models, and the spelling of a time in a query.

Pure: no I/O, shared by the async and the blocking client. Like every model of the client,
each mirrors its body field by field (`tbledger.api.history_views`); amounts and engine
timestamps stay strings, and ``time`` fields are ISO 8601 UTC to the nanosecond.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from tbledger.client._models import Model
from tbledger.errors import ValidationError

__all__ = [
    "ActivityEntry",
    "ActivityPage",
    "BalanceAsOf",
    "BalanceHistory",
    "BalancePoint",
    "Counterparty",
    "Statement",
    "StatementBalance",
    "StatementLine",
    "TimeArg",
    "time_text",
]

# An engine timestamp (ns since the Unix epoch), an ISO 8601 time as text (UTC unless it says
# its offset), or an aware `datetime`.
TimeArg = int | str | datetime
Side = Literal["debit", "credit"]


def time_text(value: TimeArg) -> str:
    """A time as the API reads it in a query: an int as engine nanoseconds, a `datetime` in ISO
    8601 (it must say its time zone), a string unchanged."""
    if isinstance(value, bool):
        raise ValidationError("a time is an int, a str or a datetime, not a bool")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError("a datetime must say its time zone")
        return value.isoformat()
    return value


class Counterparty(Model):
    """The other side of a transfer: its id, and what the key may see of it (else None)."""

    id: str
    name: str | None = None
    owner_id: str | None = None
    account_type: str | None = None


class BalancePoint(Model):
    """The balance right after one transfer (``kind`` says which), or at the opening."""

    timestamp: str
    time: str
    kind: Literal["opening", "single", "pending", "post", "void"]
    transfer_id: str | None
    direction: Side | None
    amount: str | None
    amount_minor: str | None
    counterparty_id: str | None
    counterparty: Counterparty | None = None
    posted: str
    available: str
    pending: str
    held: str
    posted_minor: str
    available_minor: str
    pending_minor: str
    held_minor: str
    debits_posted: str
    credits_posted: str
    debits_pending: str
    credits_pending: str


class BalanceHistory(Model):
    account_id: str
    ledger: int
    ledger_name: str | None
    asset_scale: int
    normal_side: Side
    points: list[BalancePoint]
    next_cursor: str | None = None


class BalanceAsOf(Model):
    """The balance at ``as_of``; ``existed`` false (and no balance) before the account was
    opened."""

    account_id: str
    ledger: int
    ledger_name: str | None
    asset_scale: int
    normal_side: Side
    as_of: str
    as_of_time: str
    existed: bool
    opened_at: str
    opened_at_time: str
    note: str | None = None
    balance: BalancePoint | None = None


class ActivityEntry(Model):
    timestamp: str
    time: str
    transfer_id: str
    kind: Literal["single", "pending", "post", "void"]
    direction: Side
    amount: str
    amount_minor: str
    code: int
    pending_id: str | None
    counterparty: Counterparty
    status: str | None
    flow: str | None
    leg: str | None
    payment_id: str | None
    event_id: str | None
    idempotency_key: str | None
    captured_amount: str | None
    captured_amount_minor: str | None
    released_amount: str | None = None
    released_amount_minor: str | None = None
    description: str | None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ActivityPage(Model):
    account_id: str
    ledger: int
    ledger_name: str | None
    asset_scale: int
    entries: list[ActivityEntry]
    next_cursor: str | None = None


class StatementBalance(Model):
    existed: bool
    timestamp: str | None
    time: str | None
    posted: str
    posted_minor: str
    available: str
    available_minor: str


class StatementLine(Model):
    timestamp: str
    time: str
    transfer_id: str
    kind: Literal["single", "pending", "post", "void"]
    direction: Side
    amount: str
    amount_minor: str
    change: str
    change_minor: str
    balance: str
    balance_minor: str
    counterparty: Counterparty
    code: int
    payment_id: str | None
    event_id: str | None
    description: str | None


class Statement(Model):
    """A period's statement: opening + the lines' changes == closing (the service checks it)."""

    account_id: str
    account_name: str | None
    owner_id: str | None
    ledger: int
    ledger_name: str | None
    asset_scale: int
    normal_side: Side
    start: str
    start_time: str
    end: str
    end_time: str
    opening: StatementBalance
    closing: StatementBalance
    total_in: str
    total_in_minor: str
    total_out: str
    total_out_minor: str
    lines: list[StatementLine]
