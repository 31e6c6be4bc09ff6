"""Seeing the money over time: balance history, balances as of a time, activity, statements.

History is the engine's (DESIGN §10): an account created with TigerBeetle's ``history`` flag has,
for every transfer that touched it, its four counters right after that transfer, stamped with
the transfer's own timestamp (``get_account_balances``). Nothing here computes a balance and
keeps it: every answer is read from the engine when asked, and joined with what the store knows
(names and owners of counterparties, the flow and leg of each transfer, its payment and event
ids, its audit status). `AccountHistory` holds this job; `LedgerService` hands it the store, the
engine, its one way of calling the engine (deadline, retry, breaker) and its normal-side lookup,
and delegates to it.

* **Balance history**: the engine's balances, paged, each on the account's normal side
  (`Balance`, DESIGN §5) and paired with the transfer that moved it: the same filter over
  ``get_account_transfers`` lists the same transfers in the same order, and each balance's
  timestamp is its transfer's (checked). Before its first transfer an account's balance is zero:
  the history opens with that zero, at the account's creation.
* **As of a time** (an engine timestamp in ns, or an ISO 8601 time; without an offset, UTC): the
  point in effect then, i.e. the last one at or before it. Before the account was created there
  is no balance, and the answer says so (`BalanceAsOf.existed`). An expiry releases a hold
  without a transfer, so the engine records no point for it: a hold that expired between two
  transfers still counts in `pending`/`held` of a time between them (``posted`` is exact
  always, as an expiry never changes it).
* **Activity**: the account's transfers from the engine, with the store's facts about each and
  its status (a hold past its timeout by the engine's clock is expired; a posted hold says what
  it captured and released), filtered by time, code, counterparty, flow and status, paged with a
  cursor; a filtered page reads at most `ACTIVITY_SCAN_ROWS_MAX` transfers and says where it
  stopped.
* **Statements** for a period ``[start, end)``: the opening balance (as of just before `start`),
  every line with its effect on the posted balance and the running balance, and the closing
  balance (as of just before `end`), so that consecutive periods chain. Each line's effect is
  computed from its transfer and checked against the engine's balance after it, and opening
  plus the lines must equal closing; a mismatch raises `InvariantViolationError`.

An account without the ``history`` flag has no past balances in the engine. Where TigerBeetle's
change stream is consumed into the store (`tbledger.cdc`; the store holds change events), its
history is read from the balances the stream recorded after each of its transfers, paired with
the engine's transfers exactly as the engine's own history is; asking raises
`HistoryNotKeptError` where the stream is not consumed, and where it has not recorded every
transfer asked for yet (it lags, or was started after them). Its activity, which needs no
history, is listed either way. Cursors are engine
timestamps: pass `next_cursor` back as it is, and the next page starts after it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, TypeVar

import tigerbeetle as tb

from tbledger.balances import Balance, NormalSide
from tbledger.engine import EngineClient
from tbledger.errors import (
    AccountNotFoundError,
    HistoryNotKeptError,
    InvariantViolationError,
    LimitExceededError,
    ValidationError,
)
from tbledger.ids import format_id
from tbledger.limits import (
    ACTIVITY_SCAN_ROWS_MAX,
    BATCH_EVENTS_MAX,
    STATEMENT_LINES_MAX,
    TIMESTAMP_MAX,
    U16_MAX,
)
from tbledger.model import (
    TRANSFER_EVENT_KINDS,
    AccountRecord,
    AuditEvent,
    BalanceRecord,
    TransferIntent,
)
from tbledger.service._intents import PURPOSE, checked_object_id, checked_uint
from tbledger.service._values import TransferStatus
from tbledger.store import Store

__all__ = [
    "AccountHistory",
    "ActivityEntry",
    "ActivityPage",
    "BalanceAsOf",
    "BalanceHistory",
    "BalancePoint",
    "EngineCall",
    "Statement",
    "StatementLine",
    "StatusRead",
    "TimeLike",
    "TransferKind",
    "iso_time",
    "timestamp_ns_of",
]

_T = TypeVar("_T")

# An engine timestamp (ns since the Unix epoch, as an int or a string of digits), an ISO 8601
# time (text; without an offset it is UTC) or an aware `datetime`.
TimeLike = int | str | datetime

# What a transfer is to the account's balances: a single-phase transfer, a hold (pending), the
# post of a hold, or its void.
TransferKind = Literal["single", "pending", "post", "void"]
Direction = Literal["debit", "credit"]

_F = tb.TransferFlags
_PENDING = int(_F.PENDING)
_POST = int(_F.POST_PENDING_TRANSFER)
_VOID = int(_F.VOID_PENDING_TRANSFER)
_BOTH_SIDES = tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_S = 1_000_000_000
_DIGITS = re.compile(r"[0-9]{1,19}")
# An ISO 8601 time whose fraction of a second is split off, so that nanoseconds survive
# (`datetime` keeps microseconds and would drop the rest silently).
_FRACTION = re.compile(
    r"(?P<head>.+?[T ][0-9]{2}:?[0-9]{2}:?[0-9]{2})[.,](?P<fraction>[0-9]+)"
    r"(?P<offset>Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
)
_TIME_TEXT_CHARS_MAX = 64
# A filtered activity page reads the engine this many times the page's size at once (bounded by
# one reply), so that a filter that keeps one transfer in a few still fills a page in one read.
_ACTIVITY_READ_FACTOR = 4
_ACTIVITY_READ_MIN = 256


class EngineCall(Protocol):
    """The service's one way of calling the engine: through the circuit breaker, with retries
    of client faults, within the request deadline (`EngineGateway.call`)."""

    def __call__(self, make: Callable[[], Awaitable[_T]], /) -> Awaitable[_T]: ...


class StatusRead(Protocol):
    """The service's read of transfers' statuses (`Holds.statuses`): the latest audit event of
    each, a hold past its timeout settled from the engine first, and what a posted hold captured
    and released. `intents` already read spare the store a read."""

    def __call__(
        self,
        transfer_ids: Iterable[int],
        *,
        intents: Mapping[int, TransferIntent] | None = None,
    ) -> Awaitable[Mapping[int, TransferStatus]]: ...


# -- times ----------------------------------------------------------------------------------------


def timestamp_ns_of(value: TimeLike, name: str = "time") -> int:
    """`value` as an engine timestamp: nanoseconds since the Unix epoch, in [1, 2^63-1].

    An int (or a string of digits) is taken as an engine timestamp; a string otherwise as an ISO
    8601 time (``2026-03-01``, ``2026-03-01T12:00:00.123456789+01:00``; without an offset, UTC),
    to the nanosecond; a `datetime` must say its time zone.
    """
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be a time, not a bool")
    if isinstance(value, int):
        ns = value
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError(f"{name} must be a timezone-aware datetime")
        ns = _ns_of_datetime(value)
    elif isinstance(value, str):
        ns = _ns_of_text(value.strip(), name)
    else:
        raise ValidationError(f"{name} must be an engine timestamp or an ISO 8601 time")
    if not 1 <= ns <= TIMESTAMP_MAX:
        raise ValidationError(
            f"{name} must be after 1970-01-01T00:00:00Z and at most 2^63-1 ns since then"
        )
    return ns


def iso_time(timestamp_ns: int) -> str:
    """An engine timestamp as an ISO 8601 UTC time to the nanosecond; `timestamp_ns_of` reads it
    back to the same int."""
    seconds, ns = divmod(timestamp_ns, _NS_PER_S)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ns:09d}Z"


def _ns_of_datetime(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000


def _ns_of_text(text: str, name: str) -> int:
    if _DIGITS.fullmatch(text):
        return int(text)
    if len(text) > _TIME_TEXT_CHARS_MAX:
        raise ValidationError(f"{name} is not an ISO 8601 time")
    fraction_ns = 0
    split = _FRACTION.fullmatch(text)
    if split is not None:
        fraction = split["fraction"]
        if len(fraction) > 9:
            raise ValidationError(f"{name} has more digits than nanoseconds")
        fraction_ns = int(fraction.ljust(9, "0"))
        text = split["head"] + (split["offset"] or "")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValidationError(
            f"{name} must be an engine timestamp (ns) or an ISO 8601 time, got {text[:40]!r}"
        ) from exc
    return _ns_of_datetime(moment) + fraction_ns


# -- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BalancePoint:
    """The account's balance right after one transfer, or at its opening (`transfer` None).

    `balance` is on the account's normal side; its ``closed`` flag is not part of the engine's
    history and reads False.
    """

    timestamp_ns: int
    balance: Balance
    transfer: tb.Transfer | None

    @property
    def kind(self) -> TransferKind | None:
        return None if self.transfer is None else transfer_kind(self.transfer)

    @property
    def direction(self) -> Direction | None:
        """Which side of its transfer the account is on (None at the opening)."""
        if self.transfer is None:
            return None
        return "debit" if self.transfer.debit_account_id == self.balance.account_id else "credit"


@dataclass(frozen=True, slots=True)
class BalanceHistory:
    """A page of an account's balance history; pass `next_cursor` back for the next page."""

    account_id: int
    ledger: int
    normal_side: NormalSide
    points: list[BalancePoint]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class BalanceAsOf:
    """The account's balance at `as_of_ns`: the point in effect then (its latest at or before
    that time), or None when the account did not exist yet (it was opened at `opened_at_ns`)."""

    account_id: int
    ledger: int
    normal_side: NormalSide
    as_of_ns: int
    opened_at_ns: int
    point: BalancePoint | None

    @property
    def existed(self) -> bool:
        return self.point is not None

    @property
    def balance(self) -> Balance | None:
        return None if self.point is None else self.point.balance

    @property
    def posted(self) -> int:
        """The posted balance then; zero before the account existed."""
        return 0 if self.point is None else self.point.balance.posted


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    """One transfer of an account, as the engine holds it, with what the store knows of it."""

    transfer: tb.Transfer
    direction: Direction
    counterparty_id: int
    # The other side's mapping (name, owner, type), or None if the store has none.
    counterparty: AccountRecord | None
    # The transfer as recorded before it was submitted (payment and event ids, idempotency key,
    # the caller's metadata, the service's control facts), or None if made outside the service.
    intent: TransferIntent | None
    # Its latest audit event (pending, posted, voided, expired, ...), or None. A hold past its
    # timeout by the engine's clock is expired here, whether or not recovery has come by.
    latest: AuditEvent | None
    # For a hold that was posted: how much of it was (its post may have been partial), and the
    # rest, released to the payer; from the engine. None for anything else.
    captured_amount: int | None
    released_amount: int | None = None

    @property
    def timestamp_ns(self) -> int:
        return self.transfer.timestamp

    @property
    def kind(self) -> TransferKind:
        return transfer_kind(self.transfer)

    @property
    def status(self) -> str | None:
        return None if self.latest is None else self.latest.kind.value

    @property
    def flow(self) -> str | None:
        return flow_of(self.intent)[0]

    @property
    def leg(self) -> str | None:
        return flow_of(self.intent)[1]

    @property
    def description(self) -> str | None:
        return description_of(self.intent)


@dataclass(frozen=True, slots=True)
class ActivityPage:
    """A page of an account's activity; pass `next_cursor` back for the next page (None: the
    engine has no more). A filtered page may hold fewer entries than asked, even none, and
    still have a next page: it stopped after reading `ACTIVITY_SCAN_ROWS_MAX` transfers."""

    account_id: int
    entries: list[ActivityEntry]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One transfer of a statement: its effect on the posted balance (`change`, signed, on the
    account's normal side: zero for a hold or a void) and the balance after it."""

    point: BalancePoint
    change: int
    counterparty_id: int
    counterparty: AccountRecord | None
    intent: TransferIntent | None

    @property
    def transfer(self) -> tb.Transfer:
        if self.point.transfer is None:  # pragma: no cover - lines are built from transfers
            raise InvariantViolationError("a statement line without its transfer")
        return self.point.transfer

    @property
    def timestamp_ns(self) -> int:
        return self.point.timestamp_ns

    @property
    def kind(self) -> TransferKind:
        return transfer_kind(self.transfer)

    @property
    def direction(self) -> Direction:
        if self.transfer.debit_account_id == self.point.balance.account_id:
            return "debit"
        return "credit"

    @property
    def balance(self) -> int:
        """The posted balance after this line."""
        return self.point.balance.posted

    @property
    def description(self) -> str | None:
        return description_of(self.intent)


@dataclass(frozen=True, slots=True)
class Statement:
    """An account's statement for ``[start_ns, end_ns)``: opening + sum of the lines' changes
    == closing (checked when it is built)."""

    account_id: int
    ledger: int
    normal_side: NormalSide
    start_ns: int
    end_ns: int
    opening: BalanceAsOf
    closing: BalanceAsOf
    lines: list[StatementLine]

    @property
    def total_in(self) -> int:
        """What the lines added to the posted balance."""
        return sum(line.change for line in self.lines if line.change > 0)

    @property
    def total_out(self) -> int:
        """What the lines took from the posted balance (a positive number)."""
        return -sum(line.change for line in self.lines if line.change < 0)


# -- pure helpers ---------------------------------------------------------------------------------


def transfer_kind(transfer: tb.Transfer) -> TransferKind:
    flags = int(transfer.flags)
    if flags & _POST:
        return "post"
    if flags & _VOID:
        return "void"
    if flags & _PENDING:
        return "pending"
    return "single"


def posted_change(transfer: tb.Transfer, account_id: int, side: NormalSide) -> int:
    """What `transfer` did to the account's posted balance, on its normal side: a single-phase
    transfer or a post moves its amount (the engine stores what a post actually posted); a hold
    or a void moves nothing posted."""
    if transfer_kind(transfer) in ("pending", "void"):
        return 0
    credited = transfer.credit_account_id == account_id
    toward_side = credited if side is NormalSide.CREDIT else not credited
    return transfer.amount if toward_side else -transfer.amount


def flow_of(intent: TransferIntent | None) -> tuple[str | None, str | None]:
    """The flow and leg a transfer belongs to, from the service's own control facts (never the
    caller's metadata); an account status change is the flow ``account_status``, its purpose
    (freeze, unfreeze, sweep, close) the leg."""
    if intent is None or not intent.control:
        return None, None
    flow, leg = intent.control.get("flow"), intent.control.get("leg")
    if isinstance(flow, str):
        return flow, leg if isinstance(leg, str) else None
    purpose = intent.control.get(PURPOSE)
    if isinstance(purpose, str):
        return "account_status", purpose
    return None, None


def description_of(intent: TransferIntent | None) -> str | None:
    """A line's words for people: the caller's own ``description`` or ``memo`` (shown, never
    read to decide anything), else the flow and leg, else nothing."""
    if intent is None:
        return None
    for key in ("description", "memo"):
        text = intent.metadata.get(key)
        if isinstance(text, str) and text:
            return text
    flow, leg = flow_of(intent)
    if flow is None:
        return None
    return flow if leg is None or leg == flow else f"{flow}: {leg}"


def _counterparty(transfer: tb.Transfer, account_id: int) -> int:
    if transfer.debit_account_id == account_id:
        return transfer.credit_account_id
    return transfer.debit_account_id


def _checked_limit(limit: int) -> int:
    limit = checked_uint("limit", limit, BATCH_EVENTS_MAX)
    if limit == 0:
        raise ValidationError("limit must be at least 1")
    return limit


@dataclass(frozen=True, slots=True)
class _Window:
    """Inclusive engine timestamp bounds; empty when `low` > `high`."""

    low: int
    high: int

    @property
    def empty(self) -> bool:
        return self.low > self.high

    def holds(self, timestamp_ns: int) -> bool:
        return self.low <= timestamp_ns <= self.high


def _window(
    start: TimeLike | None, end: TimeLike | None, cursor: int | None, reversed_: bool
) -> _Window:
    """``[start, end)`` and the cursor (the last timestamp already seen) as inclusive bounds."""
    low = 1 if start is None else timestamp_ns_of(start, "start")
    high = TIMESTAMP_MAX if end is None else timestamp_ns_of(end, "end") - 1
    if cursor is not None:
        seen = checked_uint("cursor", cursor, TIMESTAMP_MAX)
        if reversed_:
            high = min(high, seen - 1)
        else:
            low = max(low, seen + 1)
    return _Window(low, high)


def _account_filter(
    account_id: int, window: _Window, limit: int, *, reversed_: bool, code: int = 0
) -> tb.AccountFilter:
    flags = _BOTH_SIDES | tb.AccountFilterFlags.REVERSED if reversed_ else _BOTH_SIDES
    return tb.AccountFilter(
        account_id=account_id,
        user_data_128=0,
        user_data_64=0,
        user_data_32=0,
        code=code,
        timestamp_min=window.low,
        timestamp_max=window.high,
        limit=limit,
        flags=flags,
    )


# -- the collaborator -----------------------------------------------------------------------------


class AccountHistory:
    """Balance history, as-of balances, activity and statements of accounts.

    Handed what it reads and nothing else: the store (names, intents), the engine and the
    service's way of calling it, the lookup of accounts' normal sides, and the read of transfers'
    statuses (exact for holds). Each is a callable so that a service that reconnects (a new
    engine client after eviction) is followed.
    """

    def __init__(
        self,
        *,
        store: Callable[[], Store],
        engine: Callable[[], EngineClient],
        call: EngineCall,
        sides: Callable[[Sequence[int]], Awaitable[Mapping[int, NormalSide]]],
        statuses: StatusRead,
        balances: Callable[[int, Iterable[int]], Awaitable[Mapping[int, BalanceRecord]]],
        streamed: Callable[[], Awaitable[int | None]],
    ) -> None:
        self._balances = balances
        self._streamed = streamed
        self._store = store
        self._engine = engine
        self._call = call
        self._sides = sides
        self._statuses = statuses

    # -- public reads ---------------------------------------------------------------------------

    async def balance_history(
        self,
        account_id: int | str,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        limit: int = 100,
        cursor: int | None = None,
        reversed_: bool = False,
    ) -> BalanceHistory:
        """The account's balances after each of its transfers in ``[start, end)``, oldest first
        (newest with `reversed_`), `limit` points a page, opening with zero at its creation."""
        account, side = await self._history_account(account_id)
        limit = _checked_limit(limit)
        window = _window(start, end, cursor, reversed_)
        points: list[BalancePoint] = []
        next_cursor: int | None = None
        if window.empty:
            return BalanceHistory(account.id, account.ledger, side, points, None)
        opening = window.holds(account.timestamp)
        if not reversed_ and opening:
            points.append(_opening(account, side))
        wanted = limit - len(points)
        if wanted:
            filter_ = _account_filter(account.id, window, wanted, reversed_=reversed_)
            found = await self._points(account, side, filter_)
            points.extend(found)
            if len(found) == wanted:
                next_cursor = found[-1].timestamp_ns
        else:
            # A page of only the opening: later transfers, if any, are on the next page.
            next_cursor = account.timestamp
        if reversed_ and opening and next_cursor is None:
            points.append(_opening(account, side))
        return BalanceHistory(account.id, account.ledger, side, points, next_cursor)

    async def balance_as_of(self, account_id: int | str, *, as_of: TimeLike) -> BalanceAsOf:
        """The account's balance at `as_of`: after every transfer stamped at or before it."""
        account, side = await self._history_account(account_id)
        return await self._as_of(account, side, timestamp_ns_of(as_of, "as_of"))

    async def account_activity(
        self,
        account_id: int | str,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        code: int | None = None,
        counterparty_id: int | str | None = None,
        flow: str | None = None,
        status: str | None = None,
        limit: int = 100,
        cursor: int | None = None,
        reversed_: bool = False,
    ) -> ActivityPage:
        """The account's transfers in ``[start, end)`` with the store's facts about each, oldest
        first (newest with `reversed_`), optionally only those with this transfer `code`, this
        `counterparty_id` on the other side, this `flow` (the service's own label: deposit,
        payment, ..., account_status) or this audit `status` (pending, posted, voided, expired,
        ...)."""
        account_id = checked_object_id("account_id", account_id)
        limit = _checked_limit(limit)
        code_filter = 0 if code is None else checked_uint("code", code, U16_MAX)
        if code is not None and code_filter == 0:
            raise ValidationError("code must not be 0")
        other = (
            None
            if counterparty_id is None
            else checked_object_id("counterparty_id", counterparty_id)
        )
        if status is not None and status not in {k.value for k in TRANSFER_EVENT_KINDS}:
            raise ValidationError(
                f"unknown status {status!r}: use one of "
                f"{', '.join(sorted(k.value for k in TRANSFER_EVENT_KINDS))}"
            )
        await self._engine_account(account_id)
        window = _window(start, end, cursor, reversed_)
        filtered = other is not None or flow is not None or status is not None
        read_size = (
            min(BATCH_EVENTS_MAX, max(limit * _ACTIVITY_READ_FACTOR, _ACTIVITY_READ_MIN))
            if filtered
            else limit
        )
        entries: list[ActivityEntry] = []
        scanned = 0
        while not window.empty:
            size = min(read_size, ACTIVITY_SCAN_ROWS_MAX - scanned)
            filter_ = _account_filter(
                account_id, window, size, reversed_=reversed_, code=code_filter
            )
            transfers = await self._transfers(filter_)
            scanned += len(transfers)
            matched = [
                t for t in transfers if other is None or _counterparty(t, account_id) == other
            ]
            joined = await self._joined(account_id, matched)
            for entry in joined:
                if (flow is None or entry.flow == flow) and (
                    status is None or entry.status == status
                ):
                    entries.append(entry)
                    if len(entries) == limit:
                        # The page is full: the next one starts after this entry when the engine
                        # may have more (a last, empty page is cheaper than reading ahead).
                        last = entry.timestamp_ns
                        more = last != transfers[-1].timestamp or len(transfers) == size
                        return ActivityPage(account_id, entries, last if more else None)
            if len(transfers) < size:
                return ActivityPage(account_id, entries, None)  # the engine has no more
            last_read = transfers[-1].timestamp
            if scanned >= ACTIVITY_SCAN_ROWS_MAX:
                return ActivityPage(account_id, entries, last_read)
            window = _window_after(window, last_read, reversed_)
        return ActivityPage(account_id, entries, None)

    async def statement(
        self, account_id: int | str, *, start: TimeLike, end: TimeLike
    ) -> Statement:
        """The account's statement for ``[start, end)``: opening balance (as of just before
        `start`), every transfer with its effect and the running posted balance, and closing
        balance (as of just before `end`); opening + changes == closing, checked."""
        account, side = await self._history_account(account_id)
        start_ns = timestamp_ns_of(start, "start")
        end_ns = timestamp_ns_of(end, "end")
        if end_ns <= start_ns:
            raise ValidationError("end must be after start")
        opening = await self._as_of(account, side, start_ns - 1)
        closing = await self._as_of(account, side, end_ns - 1)
        lines: list[StatementLine] = []
        # The lines are read up to the closing point, not to `end`: a transfer committed while
        # the statement is read (when `end` is still to come) is later than that point, so it is
        # neither a line nor in the closing balance.
        last = start_ns - 1 if closing.point is None else closing.point.timestamp_ns
        window = _Window(start_ns, last)
        running = opening.posted
        while not window.empty:
            size = min(BATCH_EVENTS_MAX, STATEMENT_LINES_MAX + 1 - len(lines))
            filter_ = _account_filter(account.id, window, size, reversed_=False)
            points = await self._points(account, side, filter_)
            if len(lines) + len(points) > STATEMENT_LINES_MAX:
                raise LimitExceededError(
                    f"a statement holds at most {STATEMENT_LINES_MAX} lines "
                    "(STATEMENT_LINES_MAX): ask for a shorter period"
                )
            transfers = [p.transfer for p in points if p.transfer is not None]
            counterparties = await self._store().get_accounts(
                {_counterparty(t, account.id) for t in transfers}
            )
            intents = await self._store().get_intents(t.id for t in transfers)
            for point in points:
                transfer = point.transfer
                if transfer is None:  # pragma: no cover - `_points` pairs every balance
                    raise InvariantViolationError("a balance point without its transfer")
                change = posted_change(transfer, account.id, side)
                if point.balance.posted - running != change:
                    raise InvariantViolationError(
                        f"statement of {format_id(account.id)}: transfer "
                        f"{format_id(transfer.id)} moved the posted balance by "
                        f"{point.balance.posted - running}, its fields say {change}"
                    )
                running = point.balance.posted
                other = _counterparty(transfer, account.id)
                lines.append(
                    StatementLine(
                        point=point,
                        change=change,
                        counterparty_id=other,
                        counterparty=counterparties.get(other),
                        intent=intents.get(transfer.id),
                    )
                )
            if len(points) < size:
                break
            window = _Window(points[-1].timestamp_ns + 1, window.high)
        # Opening plus every line's change is the closing balance, which was read on its own.
        if opening.posted + sum(line.change for line in lines) != closing.posted:
            raise InvariantViolationError(
                f"statement of {format_id(account.id)}: opening {opening.posted} plus the lines "
                f"does not make closing {closing.posted}"
            )
        return Statement(
            account_id=account.id,
            ledger=account.ledger,
            normal_side=side,
            start_ns=start_ns,
            end_ns=end_ns,
            opening=opening,
            closing=closing,
            lines=lines,
        )

    # -- engine reads ---------------------------------------------------------------------------

    async def _engine_account(self, account_id: int) -> tb.Account:
        accounts = await self._call(lambda: self._engine().lookup_accounts([account_id]))
        if not accounts:
            raise AccountNotFoundError(
                f"no account {format_id(account_id)} in the engine",
                code="account_not_found",
                details={"account_id": format_id(account_id)},
            )
        return accounts[0]

    async def _transfers(self, filter_: tb.AccountFilter) -> list[tb.Transfer]:
        return await self._call(lambda: self._engine().get_account_transfers(filter_))

    async def _history_account(self, account_id: int | str) -> tuple[tb.Account, NormalSide]:
        """The engine's account and its normal side; `HistoryNotKeptError` for an account
        without the history flag where the change stream is not consumed."""
        account = await self._engine_account(checked_object_id("account_id", account_id))
        if not account.flags & tb.AccountFlags.HISTORY and await self._streamed() is None:
            raise HistoryNotKeptError(
                f"account {format_id(account.id)} was created without the history flag: the "
                "engine keeps no balance history for it (the change stream, consumed into the "
                "store, would)",
                code="history_not_kept",
                details={"account_id": format_id(account.id)},
            )
        sides = await self._sides([account.id])
        return account, sides[account.id]

    async def _as_of(self, account: tb.Account, side: NormalSide, as_of_ns: int) -> BalanceAsOf:
        point: BalancePoint | None = None
        if as_of_ns >= account.timestamp:
            filter_ = _account_filter(
                account.id, _Window(account.timestamp, as_of_ns), 1, reversed_=True
            )
            found = await self._points(account, side, filter_)
            point = found[0] if found else _opening(account, side)
        return BalanceAsOf(
            account_id=account.id,
            ledger=account.ledger,
            normal_side=side,
            as_of_ns=as_of_ns,
            opened_at_ns=account.timestamp,
            point=point,
        )

    async def _points(
        self, account: tb.Account, side: NormalSide, filter_: tb.AccountFilter
    ) -> list[BalancePoint]:
        """The engine's balances for `filter_`, each with the transfer that moved it (for an
        account without the history flag, the change stream's)."""
        if not account.flags & tb.AccountFlags.HISTORY:
            return await self._streamed_points(account, side, filter_)
        balances = await self._call(lambda: self._engine().get_account_balances(filter_))
        if not balances:
            return []
        # The same filter narrowed to the balances' own timestamps lists exactly their transfers:
        # a transfer committed since the first read is later than all of them.
        stamps = [b.timestamp for b in balances]
        narrowed = _account_filter(
            account.id,
            _Window(min(stamps), max(stamps)),
            len(balances),
            reversed_=bool(filter_.flags & tb.AccountFilterFlags.REVERSED),
        )
        transfers = await self._transfers(narrowed)
        if [t.timestamp for t in transfers] != stamps:
            raise InvariantViolationError(
                f"the engine's balance history of {format_id(account.id)} does not pair with its "
                "transfers"
            )
        return [
            BalancePoint(
                timestamp_ns=b.timestamp,
                balance=Balance(
                    account_id=account.id,
                    ledger=account.ledger,
                    normal_side=side,
                    debits_pending=b.debits_pending,
                    debits_posted=b.debits_posted,
                    credits_pending=b.credits_pending,
                    credits_posted=b.credits_posted,
                ),
                transfer=t,
            )
            for b, t in zip(balances, transfers, strict=True)
        ]

    async def _streamed_points(
        self, account: tb.Account, side: NormalSide, filter_: tb.AccountFilter
    ) -> list[BalancePoint]:
        """The balances the change stream recorded after the engine's transfers for `filter_`;
        `HistoryNotKeptError` unless it recorded one for every transfer."""
        transfers = await self._transfers(filter_)
        if not transfers:
            return []
        recorded = await self._balances(account.id, [t.timestamp for t in transfers])
        missing = [t for t in transfers if t.timestamp not in recorded]
        if missing:
            raise HistoryNotKeptError(
                f"account {format_id(account.id)} was created without the history flag, and "
                f"the change stream has not recorded its balance after transfer "
                f"{format_id(missing[0].id)}: the engine keeps no balance history for it, and "
                "its history is complete only where the change stream is consumed",
                code="history_not_kept",
                details={"account_id": format_id(account.id)},
            )
        return [
            BalancePoint(
                timestamp_ns=t.timestamp,
                balance=Balance(
                    account_id=account.id,
                    ledger=account.ledger,
                    normal_side=side,
                    debits_pending=b.debits_pending,
                    debits_posted=b.debits_posted,
                    credits_pending=b.credits_pending,
                    credits_posted=b.credits_posted,
                ),
                transfer=t,
            )
            for t in transfers
            for b in (recorded[t.timestamp],)
        ]

    async def _joined(self, account_id: int, transfers: list[tb.Transfer]) -> list[ActivityEntry]:
        """`transfers` with the store's facts: intents, latest events, counterparties."""
        if not transfers:
            return []
        store = self._store()
        ids = [t.id for t in transfers]
        intents = await store.get_intents(ids)
        statuses = await self._statuses(ids, intents=intents)
        counterparties = await store.get_accounts({_counterparty(t, account_id) for t in transfers})
        entries = []
        for t in transfers:
            other = _counterparty(t, account_id)
            status = statuses.get(t.id)
            entries.append(
                ActivityEntry(
                    transfer=t,
                    direction="debit" if t.debit_account_id == account_id else "credit",
                    counterparty_id=other,
                    counterparty=counterparties.get(other),
                    intent=intents.get(t.id),
                    latest=None if status is None else status.latest,
                    captured_amount=None if status is None else status.captured_amount,
                    released_amount=None if status is None else status.released_amount,
                )
            )
        return entries


def _opening(account: tb.Account, side: NormalSide) -> BalancePoint:
    """The balance at the account's creation: zero, with no transfer."""
    zero = Balance(
        account_id=account.id,
        ledger=account.ledger,
        normal_side=side,
        debits_pending=0,
        debits_posted=0,
        credits_pending=0,
        credits_posted=0,
    )
    return BalancePoint(timestamp_ns=account.timestamp, balance=zero, transfer=None)


def _window_after(window: _Window, last_read: int, reversed_: bool) -> _Window:
    if reversed_:
        return _Window(window.low, last_read - 1)
    return _Window(last_read + 1, window.high)
