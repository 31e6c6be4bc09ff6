"""The history routes' answers: balance history, balances as of a time, activity, statements.

Library values (`tbledger.service.BalanceHistory`, `BalanceAsOf`, `ActivityPage`, `Statement`)
become response bodies here, spelled as the rest of the API spells things: ids in fixed-width
hex, amounts in both spellings (major units at the ledger's scale and ``_minor``), engine
timestamps as decimal strings with the same instant beside them as an ISO 8601 UTC time to the
nanosecond (``time``). A statement is also written as CSV, one row per line between an opening
and a closing row, so that a spreadsheet can check it: opening + sum(change) == closing.

What an owner key may not see stays out (DESIGN §9): a counterparty that is another owner's (or
the platform's) account shows its id only, never its name, owner or type; an idempotency key
shows only to the key that wrote it (as that key sent it) and in full to admin keys.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from tbledger.amounts import format_amount
from tbledger.api.context import ApiContext
from tbledger.api.keys import Principal
from tbledger.api.policy import may_see
from tbledger.balances import Balance
from tbledger.ids import format_id
from tbledger.model import AccountRecord, TransferIntent
from tbledger.service import (
    ActivityEntry,
    ActivityPage,
    BalanceAsOf,
    BalanceHistory,
    BalancePoint,
    Statement,
    StatementLine,
    iso_time,
)

__all__ = [
    "STATEMENT_CSV_COLUMNS",
    "ActivityEntryOut",
    "ActivityOut",
    "BalanceAsOfOut",
    "BalanceHistoryOut",
    "CounterpartyOut",
    "HistoryPointOut",
    "StatementBalanceOut",
    "StatementLineOut",
    "StatementOut",
    "Visibility",
    "activity_out",
    "as_of_out",
    "counterparties_of",
    "history_out",
    "statement_csv",
    "statement_out",
]

PointKind = Literal["opening", "single", "pending", "post", "void"]
Side = Literal["debit", "credit"]

STATEMENT_CSV_COLUMNS = (
    "time",
    "timestamp",
    "kind",
    "transfer_id",
    "direction",
    "amount",
    "change",
    "balance",
    "counterparty_id",
    "counterparty_name",
    "code",
    "payment_id",
    "event_id",
    "description",
)
# A spreadsheet runs a cell that starts with one of these as a formula: text written by callers
# (descriptions, ids of their choosing, names) gets a leading quote there.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# -- bodies ---------------------------------------------------------------------------------------


class CounterpartyOut(BaseModel):
    id: str
    name: str | None = Field(default=None, description="shown when the key may see the account")
    owner_id: str | None = None
    account_type: str | None = None


class HistoryPointOut(BaseModel):
    timestamp: str = Field(description="engine timestamp (ns since the Unix epoch)")
    time: str = Field(description="the same instant, ISO 8601 UTC to the nanosecond")
    kind: PointKind = Field(description="opening: the zero balance at the account's creation")
    transfer_id: str | None
    direction: Side | None = Field(description="the account's side of the transfer")
    amount: str | None
    amount_minor: str | None
    counterparty_id: str | None
    counterparty: CounterpartyOut | None = Field(
        description="the other side (its name, owner and type when the key may see them)"
    )
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


class BalanceHistoryOut(BaseModel):
    account_id: str
    ledger: int
    ledger_name: str | None
    asset_scale: int
    normal_side: Side
    points: list[HistoryPointOut]
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next page")


class BalanceAsOfOut(BaseModel):
    account_id: str
    ledger: int
    ledger_name: str | None
    asset_scale: int
    normal_side: Side
    as_of: str = Field(description="the engine timestamp asked about (ns)")
    as_of_time: str
    existed: bool = Field(description="false: the account was opened after `as_of`")
    opened_at: str = Field(description="the account's creation (engine timestamp, ns)")
    opened_at_time: str
    note: str | None = None
    balance: HistoryPointOut | None = Field(
        description="the point in effect at `as_of`: the balance after the last transfer at or "
        "before it (or the opening); null when the account did not exist yet"
    )


class ActivityEntryOut(BaseModel):
    timestamp: str
    time: str
    transfer_id: str
    kind: Literal["single", "pending", "post", "void"]
    direction: Side
    amount: str
    amount_minor: str
    code: int
    pending_id: str | None
    counterparty: CounterpartyOut
    status: str | None = Field(description="latest audit status (pending, posted, voided…)")
    flow: str | None = Field(description="the flow the transfer belongs to (the service's own)")
    leg: str | None
    payment_id: str | None
    event_id: str | None
    idempotency_key: str | None
    captured_amount: str | None = Field(description="a posted hold: how much of it was posted")
    captured_amount_minor: str | None
    released_amount: str | None = Field(
        default=None, description="a posted hold: the rest of it, released to the payer"
    )
    released_amount_minor: str | None = None
    description: str | None
    metadata: dict[str, Any] = {}


class ActivityOut(BaseModel):
    account_id: str
    ledger: int
    ledger_name: str | None
    asset_scale: int
    entries: list[ActivityEntryOut]
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next page")


class StatementBalanceOut(BaseModel):
    existed: bool
    timestamp: str | None = Field(description="when this balance was set (engine ns)")
    time: str | None
    posted: str
    posted_minor: str
    available: str
    available_minor: str


class StatementLineOut(BaseModel):
    timestamp: str
    time: str
    transfer_id: str
    kind: Literal["single", "pending", "post", "void"]
    direction: Side
    amount: str
    amount_minor: str
    change: str = Field(description="the line's effect on the posted balance, signed")
    change_minor: str
    balance: str = Field(description="the posted balance after the line")
    balance_minor: str
    counterparty: CounterpartyOut
    code: int
    payment_id: str | None
    event_id: str | None
    description: str | None


class StatementOut(BaseModel):
    account_id: str
    account_name: str | None
    owner_id: str | None
    ledger: int
    ledger_name: str | None
    asset_scale: int
    normal_side: Side
    start: str = Field(description="the period's first instant (engine ns), included")
    start_time: str
    end: str = Field(description="the period's end (engine ns), excluded")
    end_time: str
    opening: StatementBalanceOut
    closing: StatementBalanceOut
    total_in: str
    total_in_minor: str
    total_out: str
    total_out_minor: str
    lines: list[StatementLineOut]


# -- rendering ------------------------------------------------------------------------------------


class Visibility:
    """What the caller may see of the records around an account it may see."""

    def __init__(self, caller: Principal) -> None:
        self._caller = caller

    def counterparty(self, account_id: int, record: AccountRecord | None) -> CounterpartyOut:
        if record is None or not may_see(self._caller, record):
            return CounterpartyOut(id=format_id(account_id))
        return CounterpartyOut(
            id=format_id(account_id),
            name=record.name,
            owner_id=record.owner_id,
            account_type=record.account_type,
        )

    def idempotency_key(self, intent: TransferIntent | None) -> str | None:
        """The key in full for admin keys; for an owner key, only a key it wrote, as it sent
        it (the service prefixes each key with the id of the API key that sent it)."""
        key = None if intent is None else intent.idempotency_key
        if key is None or self._caller.is_admin:
            return key
        mine = f"{self._caller.key_id}:"
        return key.removeprefix(mine) if key.startswith(mine) else None


def _scale(ctx: ApiContext, ledger: int) -> tuple[str | None, int]:
    book = ctx.ledger_or_none(ledger)
    return (None, 0) if book is None else (book.name, book.asset_scale)


def _major(minor: int, scale: int) -> str:
    """Minor units as major units at `scale`, signed."""
    text = format_amount(abs(minor), scale)
    return f"-{text}" if minor < 0 else text


def counterparties_of(points: Sequence[BalancePoint]) -> set[int]:
    """The other sides of the points' transfers, to look their records up."""
    return {other for p in points if (other := _other_side(p)) is not None}


def _other_side(point: BalancePoint) -> int | None:
    transfer = point.transfer
    if transfer is None:
        return None
    if transfer.debit_account_id == point.balance.account_id:
        return transfer.credit_account_id
    return transfer.debit_account_id


def _point_out(
    point: BalancePoint,
    scale: int,
    seen: Visibility,
    records: Mapping[int, AccountRecord],
) -> HistoryPointOut:
    balance: Balance = point.balance
    transfer = point.transfer
    other = _other_side(point)
    return HistoryPointOut(
        timestamp=str(point.timestamp_ns),
        time=iso_time(point.timestamp_ns),
        kind=point.kind or "opening",
        transfer_id=None if transfer is None else format_id(transfer.id),
        direction=point.direction,
        amount=None if transfer is None else _major(transfer.amount, scale),
        amount_minor=None if transfer is None else str(transfer.amount),
        counterparty_id=None if other is None else format_id(other),
        counterparty=None if other is None else seen.counterparty(other, records.get(other)),
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
    )


def history_out(
    ctx: ApiContext,
    caller: Principal,
    history: BalanceHistory,
    records: Mapping[int, AccountRecord],
) -> BalanceHistoryOut:
    name, scale = _scale(ctx, history.ledger)
    seen = Visibility(caller)
    return BalanceHistoryOut(
        account_id=format_id(history.account_id),
        ledger=history.ledger,
        ledger_name=name,
        asset_scale=scale,
        normal_side=history.normal_side.value,
        points=[_point_out(p, scale, seen, records) for p in history.points],
        next_cursor=None if history.next_cursor is None else str(history.next_cursor),
    )


def as_of_out(
    ctx: ApiContext,
    caller: Principal,
    found: BalanceAsOf,
    records: Mapping[int, AccountRecord],
) -> BalanceAsOfOut:
    name, scale = _scale(ctx, found.ledger)
    point = found.point
    note = None
    if found.point is None:
        note = (
            f"the account did not exist at {iso_time(found.as_of_ns)}: it was opened at "
            f"{iso_time(found.opened_at_ns)}"
        )
    return BalanceAsOfOut(
        account_id=format_id(found.account_id),
        ledger=found.ledger,
        ledger_name=name,
        asset_scale=scale,
        normal_side=found.normal_side.value,
        as_of=str(found.as_of_ns),
        as_of_time=iso_time(found.as_of_ns),
        existed=found.existed,
        opened_at=str(found.opened_at_ns),
        opened_at_time=iso_time(found.opened_at_ns),
        note=note,
        balance=None if point is None else _point_out(point, scale, Visibility(caller), records),
    )


def _entry_out(entry: ActivityEntry, scale: int, seen: Visibility) -> ActivityEntryOut:
    t = entry.transfer
    intent = entry.intent
    captured = entry.captured_amount
    released = entry.released_amount
    return ActivityEntryOut(
        timestamp=str(t.timestamp),
        time=iso_time(t.timestamp),
        transfer_id=format_id(t.id),
        kind=entry.kind,
        direction=entry.direction,
        amount=_major(t.amount, scale),
        amount_minor=str(t.amount),
        code=t.code,
        pending_id=format_id(t.pending_id) if t.pending_id else None,
        counterparty=seen.counterparty(entry.counterparty_id, entry.counterparty),
        status=entry.status,
        flow=entry.flow,
        leg=entry.leg,
        payment_id=None if intent is None else intent.payment_id,
        event_id=None if intent is None else intent.event_id,
        idempotency_key=seen.idempotency_key(intent),
        captured_amount=None if captured is None else _major(captured, scale),
        captured_amount_minor=None if captured is None else str(captured),
        released_amount=None if released is None else _major(released, scale),
        released_amount_minor=None if released is None else str(released),
        description=entry.description,
        metadata={} if intent is None else dict(intent.metadata),
    )


def activity_out(
    ctx: ApiContext, caller: Principal, ledger: int, page: ActivityPage
) -> ActivityOut:
    name, scale = _scale(ctx, ledger)
    seen = Visibility(caller)
    return ActivityOut(
        account_id=format_id(page.account_id),
        ledger=ledger,
        ledger_name=name,
        asset_scale=scale,
        entries=[_entry_out(e, scale, seen) for e in page.entries],
        next_cursor=None if page.next_cursor is None else str(page.next_cursor),
    )


def _statement_balance(found: BalanceAsOf, scale: int) -> StatementBalanceOut:
    point = found.point
    available = 0 if point is None else point.balance.available
    return StatementBalanceOut(
        existed=found.existed,
        timestamp=None if point is None else str(point.timestamp_ns),
        time=None if point is None else iso_time(point.timestamp_ns),
        posted=_major(found.posted, scale),
        posted_minor=str(found.posted),
        available=_major(available, scale),
        available_minor=str(available),
    )


def _line_out(line: StatementLine, scale: int, seen: Visibility) -> StatementLineOut:
    t = line.transfer
    intent = line.intent
    return StatementLineOut(
        timestamp=str(line.timestamp_ns),
        time=iso_time(line.timestamp_ns),
        transfer_id=format_id(t.id),
        kind=line.kind,
        direction=line.direction,
        amount=_major(t.amount, scale),
        amount_minor=str(t.amount),
        change=_major(line.change, scale),
        change_minor=str(line.change),
        balance=_major(line.balance, scale),
        balance_minor=str(line.balance),
        counterparty=seen.counterparty(line.counterparty_id, line.counterparty),
        code=t.code,
        payment_id=None if intent is None else intent.payment_id,
        event_id=None if intent is None else intent.event_id,
        description=line.description,
    )


def statement_out(
    ctx: ApiContext, caller: Principal, record: AccountRecord, statement: Statement
) -> StatementOut:
    name, scale = _scale(ctx, statement.ledger)
    seen = Visibility(caller)
    return StatementOut(
        account_id=format_id(statement.account_id),
        account_name=record.name,
        owner_id=record.owner_id,
        ledger=statement.ledger,
        ledger_name=name,
        asset_scale=scale,
        normal_side=statement.normal_side.value,
        start=str(statement.start_ns),
        start_time=iso_time(statement.start_ns),
        end=str(statement.end_ns),
        end_time=iso_time(statement.end_ns),
        opening=_statement_balance(statement.opening, scale),
        closing=_statement_balance(statement.closing, scale),
        total_in=_major(statement.total_in, scale),
        total_in_minor=str(statement.total_in),
        total_out=_major(statement.total_out, scale),
        total_out_minor=str(statement.total_out),
        lines=[_line_out(line, scale, seen) for line in statement.lines],
    )


def _cell(text: str | None) -> str:
    if not text:
        return ""
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def statement_csv(body: StatementOut) -> str:
    """The statement as CSV: a header, an ``opening`` row, one row per line, a ``closing`` row.

    Amounts are in the ledger's major units; ``change`` is signed and ``balance`` is the posted
    balance after the row, so the rows check themselves: opening + the changes == closing.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(STATEMENT_CSV_COLUMNS)

    def bound(kind: str, found: StatementBalanceOut, at: str, at_time: str) -> list[str]:
        row = dict.fromkeys(STATEMENT_CSV_COLUMNS, "")
        row.update(kind=kind, time=at_time, timestamp=at, balance=found.posted)
        return list(row.values())

    writer.writerow(bound("opening", body.opening, body.start, body.start_time))
    for line in body.lines:
        writer.writerow(
            [
                line.time,
                line.timestamp,
                line.kind,
                line.transfer_id,
                line.direction,
                line.amount,
                line.change,
                line.balance,
                line.counterparty.id,
                _cell(line.counterparty.name),
                str(line.code),
                _cell(line.payment_id),
                _cell(line.event_id),
                _cell(line.description),
            ]
        )
    writer.writerow(bound("closing", body.closing, body.end, body.end_time))
    return out.getvalue()
