"""TigerBeetle's state machine, in pure Python and free of I/O.

This module reproduces the semantics of TigerBeetle 0.17.9's ``state_machine.zig`` for the eight
client operations. It never reads a clock, a file or a socket: every write takes the engine clock
reading (``now_ns``) as an argument, so the same inputs always produce the same state and results.
That is what lets the journal replay batches after a restart and lets tests control time.

Rules, in the order TigerBeetle applies them (see ``shared/reference`` in the design notes):

* Timestamps. A write gets ``T0 = max(last_timestamp + 1, now_ns)``; its N events get the slots
  ``T0+1 .. T0+N``; ``T_batch`` is the last slot. Reads advance ``last_timestamp`` by one.
* Results are dense: one ``(timestamp, status)`` per event. ``created`` carries the object's
  timestamp, ``exists`` the existing object's, anything else the event's slot.
* Each event is validated by a flat run of guard clauses, one status per early return, in
  TigerBeetle's precedence order (``_create_account``, ``_create_transfer``, ``_post_or_void``).
* Linked chains: an undo log opens at the first linked event; the first member whose status is not
  ``created`` rolls the chain back, rewrites earlier members to ``linked_event_failed`` and fails
  the rest unevaluated; a linked last event gets ``linked_event_chain_open``.
* Transient failures burn the transfer id (``id_already_failed`` forever), even inside a chain that
  is rolled back.
* Expiry is a separate ``pulse`` write. Like TigerBeetle's, it reserves a batch worth of slots
  ``T0+1 .. T0+8189`` (``T_pulse`` is the last), releases the pending transfers due by ``T_pulse``
  in ``(expires_at, timestamp)`` order, and gives the k-th of n releases the timestamp
  ``T_pulse - n + k`` (k from 1): the expiries take the last slots of the range.
* Change events (what TigerBeetle's ``get_change_events`` reports, the change stream's source):
  one per created transfer (single-phase, pending, post, void; imported too) and one per expiry,
  in timestamp order, each with both accounts' balances and flags right after it. The event's
  amount is what moved: the transfer's stored amount (the posted, or the clamped balancing amount)
  or, for an expiry, the amount released; an expiry's transfer is the pending transfer.

Stored objects are appended in timestamp order (non-imported timestamps strictly increase and an
imported one must exceed every existing one of its kind), so every index is a sorted list and a
rollback pops from its end.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Final, NamedTuple, TypeVar

from tigerbeetle import (
    Account,
    AccountBalance,
    AccountFilter,
    AccountFilterFlags,
    AccountFlags,
    CreateAccountResult,
    CreateAccountStatus,
    CreateTransferResult,
    CreateTransferStatus,
    QueryFilter,
    QueryFilterFlags,
    Transfer,
    TransferFlags,
)

from tbledger.errors import InvariantViolationError
from tbledger.limits import EXPIRY_PULSE_EVENTS_MAX, TIMESTAMP_MAX, U128_MAX

__all__ = [
    "AccountEvent",
    "ChangeRecord",
    "StateMachine",
    "TransferEvent",
]

# An account event as the state machine sees it: the Account fields in wire order, including the
# `reserved` field that the official Python client always sends as zero.
# (id, debits_pending, debits_posted, credits_pending, credits_posted, user_data_128,
#  user_data_64, user_data_32, reserved, ledger, code, flags, timestamp)
AccountEvent = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int]
# (id, debit_account_id, credit_account_id, amount, pending_id, user_data_128, user_data_64,
#  user_data_32, timeout, ledger, code, flags, timestamp)
TransferEvent = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int]

_A = CreateAccountStatus
_T = CreateTransferStatus

# Plain ints for the hot path; IntFlag arithmetic is several times slower than int arithmetic.
A_LINKED: Final = int(AccountFlags.LINKED)
A_DEBITS_MUST_NOT_EXCEED_CREDITS: Final = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
A_CREDITS_MUST_NOT_EXCEED_DEBITS: Final = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
A_HISTORY: Final = int(AccountFlags.HISTORY)
A_IMPORTED: Final = int(AccountFlags.IMPORTED)
A_CLOSED: Final = int(AccountFlags.CLOSED)
A_KNOWN: Final = 0x3F

T_LINKED: Final = int(TransferFlags.LINKED)
T_PENDING: Final = int(TransferFlags.PENDING)
T_POST: Final = int(TransferFlags.POST_PENDING_TRANSFER)
T_VOID: Final = int(TransferFlags.VOID_PENDING_TRANSFER)
T_BALANCING_DEBIT: Final = int(TransferFlags.BALANCING_DEBIT)
T_BALANCING_CREDIT: Final = int(TransferFlags.BALANCING_CREDIT)
T_CLOSING_DEBIT: Final = int(TransferFlags.CLOSING_DEBIT)
T_CLOSING_CREDIT: Final = int(TransferFlags.CLOSING_CREDIT)
T_IMPORTED: Final = int(TransferFlags.IMPORTED)
T_KNOWN: Final = 0x1FF
T_NOT_WITH_POST_OR_VOID: Final = (
    T_PENDING | T_BALANCING_DEBIT | T_BALANCING_CREDIT | T_CLOSING_DEBIT | T_CLOSING_CREDIT
)

F_DEBITS: Final = int(AccountFilterFlags.DEBITS)
F_CREDITS: Final = int(AccountFilterFlags.CREDITS)
F_REVERSED: Final = int(AccountFilterFlags.REVERSED)
Q_REVERSED: Final = int(QueryFilterFlags.REVERSED)

AMOUNT_MAX: Final = U128_MAX
NS_PER_S: Final = 1_000_000_000

# Statuses that depend on mutable state: a transfer failing with one burns its id.
TRANSIENT_STATUSES: Final = frozenset(
    {
        _T.DEBIT_ACCOUNT_NOT_FOUND,
        _T.CREDIT_ACCOUNT_NOT_FOUND,
        _T.PENDING_TRANSFER_NOT_FOUND,
        _T.EXCEEDS_CREDITS,
        _T.EXCEEDS_DEBITS,
        _T.DEBIT_ACCOUNT_ALREADY_CLOSED,
        _T.CREDIT_ACCOUNT_ALREADY_CLOSED,
    }
)

# Resolution states of a pending transfer (internal; never returned to clients).
NOT_PENDING: Final = 0
PENDING: Final = 1
POSTED: Final = 2
VOIDED: Final = 3
EXPIRED: Final = 4


# The change event types, numbered as TigerBeetle's `ChangeEventType`.
CHANGE_SINGLE_PHASE: Final = 0
CHANGE_TWO_PHASE_PENDING: Final = 1
CHANGE_TWO_PHASE_POSTED: Final = 2
CHANGE_TWO_PHASE_VOIDED: Final = 3
CHANGE_TWO_PHASE_EXPIRED: Final = 4

# The change log keeps, per event, `_CHANGE_WIDTH` ints in a flat run, in timestamp order:
# (timestamp, transfer_id, dr_debits_pending, dr_debits_posted, dr_credits_pending,
#  dr_credits_posted, dr_flags, cr_debits_pending, cr_debits_posted, cr_credits_pending,
#  cr_credits_posted, cr_flags)
# Only what changes over time; the transfer's and the accounts' immutable fields are looked up when
# the log is read. For every event but an expiry the transfer is the one created at `timestamp`;
# for an expiry it is the pending transfer, created before it.
# Why flat, and sealed in tuples: every surviving container counts towards the garbage collector's
# next collection, and each full collection visits every item of every tracked container. A tuple
# per event made collections more frequent (measured: +40% on create_transfers); one flat list
# made each full collection visit every logged int (+15%). The open run is a list; after a write,
# once it holds `_CHANGE_RUN_INTS` ints, it is sealed into a tuple of ints, which the collector
# stops tracking, so the log adds nothing for it to visit but the open run.
_CHANGE_WIDTH: Final = 12
_CHANGE_RUN_INTS: Final = _CHANGE_WIDTH * 4096


class ChangeRecord(NamedTuple):
    """One change event, flat as TigerBeetle's ``ChangeEvent``: the event, its transfer (for an
    expiry, the pending transfer; `transfer_amount` is what the event moved) and both accounts
    with their balances and flags as of right after the event."""

    timestamp: int
    type: int
    ledger: int
    transfer_id: int
    transfer_amount: int
    transfer_pending_id: int
    transfer_user_data_128: int
    transfer_user_data_64: int
    transfer_user_data_32: int
    transfer_timeout: int
    transfer_code: int
    transfer_flags: int
    transfer_timestamp: int
    debit_account_id: int
    debit_account_debits_pending: int
    debit_account_debits_posted: int
    debit_account_credits_pending: int
    debit_account_credits_posted: int
    debit_account_user_data_128: int
    debit_account_user_data_64: int
    debit_account_user_data_32: int
    debit_account_code: int
    debit_account_flags: int
    debit_account_timestamp: int
    credit_account_id: int
    credit_account_debits_pending: int
    credit_account_debits_posted: int
    credit_account_credits_pending: int
    credit_account_credits_posted: int
    credit_account_user_data_128: int
    credit_account_user_data_64: int
    credit_account_user_data_32: int
    credit_account_code: int
    credit_account_flags: int
    credit_account_timestamp: int


class _Account:
    """A stored account. Mutable fields: the four balances and the ``closed`` flag."""

    __slots__ = (
        "balances",
        "code",
        "credits_pending",
        "credits_posted",
        "debits_pending",
        "debits_posted",
        "entries",
        "flags",
        "id",
        "ledger",
        "timestamp",
        "user_data_32",
        "user_data_64",
        "user_data_128",
    )

    def __init__(self, e: AccountEvent, timestamp: int) -> None:
        self.id = e[0]
        self.debits_pending = 0
        self.debits_posted = 0
        self.credits_pending = 0
        self.credits_posted = 0
        self.user_data_128 = e[5]
        self.user_data_64 = e[6]
        self.user_data_32 = e[7]
        self.ledger = e[9]
        self.code = e[10]
        self.flags = e[11]
        self.timestamp = timestamp
        # The transfers touching this account in timestamp order, and, only when the account has
        # the `history` flag, the account's balance right after each (a parallel list). No tuple
        # per entry: the garbage collector visits every container object on each full
        # collection, and pauses every request meanwhile; tuples of ints alone it stops tracking.
        self.entries: list[_Transfer] = []
        self.balances: list[tuple[int, int, int, int]] | None = (
            [] if self.flags & A_HISTORY else None
        )

    def to_account(self) -> Account:
        return Account(
            id=self.id,
            debits_pending=self.debits_pending,
            debits_posted=self.debits_posted,
            credits_pending=self.credits_pending,
            credits_posted=self.credits_posted,
            user_data_128=self.user_data_128,
            user_data_64=self.user_data_64,
            user_data_32=self.user_data_32,
            ledger=self.ledger,
            code=self.code,
            flags=AccountFlags(self.flags),
            timestamp=self.timestamp,
        )


class _Transfer:
    """A stored transfer. Immutable but for the internal pending resolution state."""

    __slots__ = (
        "amount",
        "code",
        "credit_account_id",
        "debit_account_id",
        "expires_at",
        "flags",
        "id",
        "ledger",
        "pending_id",
        "state",
        "timeout",
        "timestamp",
        "user_data_32",
        "user_data_64",
        "user_data_128",
    )

    def __init__(
        self,
        id_: int,
        debit_account_id: int,
        credit_account_id: int,
        amount: int,
        pending_id: int,
        user_data_128: int,
        user_data_64: int,
        user_data_32: int,
        timeout: int,
        ledger: int,
        code: int,
        flags: int,
        timestamp: int,
    ) -> None:
        self.id = id_
        self.debit_account_id = debit_account_id
        self.credit_account_id = credit_account_id
        self.amount = amount
        self.pending_id = pending_id
        self.user_data_128 = user_data_128
        self.user_data_64 = user_data_64
        self.user_data_32 = user_data_32
        self.timeout = timeout
        self.ledger = ledger
        self.code = code
        self.flags = flags
        self.timestamp = timestamp
        self.state = PENDING if flags & T_PENDING else NOT_PENDING
        self.expires_at = timestamp + timeout * NS_PER_S if (flags & T_PENDING and timeout) else 0

    def to_transfer(self) -> Transfer:
        return Transfer(
            id=self.id,
            debit_account_id=self.debit_account_id,
            credit_account_id=self.credit_account_id,
            amount=self.amount,
            pending_id=self.pending_id,
            user_data_128=self.user_data_128,
            user_data_64=self.user_data_64,
            user_data_32=self.user_data_32,
            timeout=self.timeout,
            ledger=self.ledger,
            code=self.code,
            flags=TransferFlags(self.flags),
            timestamp=self.timestamp,
        )


# Undo-log entries: a closure that reverts one change. Chains are short and rare compared with
# plain events, so closures keep the hot path (no chain open) free of bookkeeping.
_Undo = Callable[[], None]


class StateMachine:
    """TigerBeetle's state machine over in-memory state.

    Writes (``create_accounts``, ``create_transfers``, ``pulse``) take the engine clock reading and
    are deterministic in it. Reads never change anything but ``last_timestamp``.
    """

    def __init__(self) -> None:
        self.accounts: dict[int, _Account] = {}
        self.transfers: dict[int, _Transfer] = {}
        # Creation order is timestamp order (see the module docstring).
        self.accounts_ordered: list[_Account] = []
        self.transfers_ordered: list[_Transfer] = []
        self.burned_transfer_ids: set[int] = set()
        # (expires_at, timestamp, id) of pending transfers with a timeout; stale entries (rolled
        # back or already resolved) are skipped when popped.
        self.expiry_heap: list[tuple[int, int, int]] = []
        # The change log (see `_CHANGE_WIDTH`): sealed runs with their first timestamps, and the
        # open run. A write only ever appends to (or, rolling a chain back, pops from) the open
        # run: runs are sealed between writes.
        self.change_runs: list[tuple[int, ...]] = []
        self.change_runs_first: list[int] = []
        self.changes: list[int] = []
        self.last_timestamp = 0
        self._undo: list[_Undo] | None = None

    # -- clock ---------------------------------------------------------------------------------

    def _reserve(self, now_ns: int, slots: int) -> int:
        """Return T0 for a write of `slots` events and advance the clock past its last slot."""
        t0 = max(self.last_timestamp + 1, now_ns)
        self.last_timestamp = t0 + slots
        return t0

    def tick(self, now_ns: int) -> None:
        """A read: advances the clock by at least one nanosecond, allots no slots."""
        self._reserve(now_ns, 0)

    # -- expiry --------------------------------------------------------------------------------

    def next_expiry_ns(self) -> int | None:
        """The earliest `expires_at` of a pending transfer that may still need releasing."""
        heap = self.expiry_heap
        while heap:
            expires_at, timestamp, id_ = heap[0]
            t = self.transfers.get(id_)
            if t is not None and t.timestamp == timestamp and t.state == PENDING:
                return expires_at
            heapq.heappop(heap)
        return None

    def pulse_due(self, now_ns: int) -> bool:
        """Whether a pulse at `now_ns` would release anything."""
        nxt = self.next_expiry_ns()
        return nxt is not None and nxt <= max(self.last_timestamp + 1, now_ns)

    def pulse(self, now_ns: int, *, reserve: bool = True) -> int:
        """Release pending transfers whose timeout has passed; return how many were released.

        Like TigerBeetle's pulse: it reserves `EXPIRY_PULSE_EVENTS_MAX` slots after ``T0`` and
        releases, in ascending `(expires_at, timestamp)`, at most that many transfers due by the
        last slot, ``T_pulse``; the releases take the last slots of the range, so the clock ends
        at ``T_pulse``. An expiry voids the reservation and reopens accounts closed by the
        transfer; it creates no transfer and no history entry, but it is a change event.

        ``reserve=False`` replays a pulse journaled before pulses reserved slots: releases due by
        ``T0`` itself, each consuming one slot after it.
        """
        t0 = max(self.last_timestamp + 1, now_ns)
        t_pulse = t0 + EXPIRY_PULSE_EVENTS_MAX if reserve else t0
        heap = self.expiry_heap
        due: list[_Transfer] = []
        while heap and len(due) < EXPIRY_PULSE_EVENTS_MAX:
            expires_at, timestamp, id_ = heap[0]
            if expires_at > t_pulse:
                break
            heapq.heappop(heap)
            p = self.transfers.get(id_)
            if p is None or p.timestamp != timestamp or p.state != PENDING:
                continue
            due.append(p)
        released = len(due)
        # The timestamp of the first release: the range's last slots, or (legacy) the first ones.
        first = t_pulse - released + 1 if reserve else t0 + 1
        changes = self.changes
        for index, p in enumerate(due):
            p.state = EXPIRED
            dr = self.accounts[p.debit_account_id]
            cr = self.accounts[p.credit_account_id]
            dr.debits_pending -= p.amount
            cr.credits_pending -= p.amount
            if p.flags & T_CLOSING_DEBIT:
                dr.flags &= ~A_CLOSED
            if p.flags & T_CLOSING_CREDIT:
                cr.flags &= ~A_CLOSED
            changes += (
                first + index,
                p.id,
                dr.debits_pending,
                dr.debits_posted,
                dr.credits_pending,
                dr.credits_posted,
                dr.flags,
                cr.debits_pending,
                cr.debits_posted,
                cr.credits_pending,
                cr.credits_posted,
                cr.flags,
            )
        self.last_timestamp = t_pulse if reserve else t0 + released
        self._seal_changes()
        return released

    # -- linked chains -------------------------------------------------------------------------

    def _run_batch(
        self,
        n: int,
        linked_flags: Sequence[int],
        t0: int,
        execute: Callable[[int, int], tuple[int, int]],
        created: int,
        linked_event_failed: int,
        linked_event_chain_open: int,
    ) -> list[tuple[int, int]]:
        """Execute events `0..n-1` with TigerBeetle's chain rules; return (timestamp, status)s.

        `execute(i, slot)` validates and applies one event and returns (timestamp, status). It logs
        reversible changes to `self._undo` while a chain is open.
        """
        results: list[tuple[int, int]] = [(0, 0)] * n
        chain_start = -1
        chain_broken = False
        last = n - 1
        for i in range(n):
            slot = t0 + 1 + i
            linked = linked_flags[i]
            if chain_start < 0 and linked:
                chain_start = i
                self._undo = []
            if linked and i == last:
                result = (slot, linked_event_chain_open)
            elif chain_broken:
                result = (slot, linked_event_failed)
            else:
                result = execute(i, slot)
            results[i] = result
            if chain_start < 0:
                continue
            if result[1] != created and not chain_broken:
                chain_broken = True
                self._rollback()
                for j in range(chain_start, i):
                    results[j] = (results[j][0], linked_event_failed)
            if not linked or i == last:
                self._undo = None
                chain_start = -1
                chain_broken = False
        return results

    def _rollback(self) -> None:
        undo = self._undo
        if undo is None:
            raise InvariantViolationError("rollback without an open chain")
        self._undo = None
        while undo:
            undo.pop()()
        self._undo = []

    # -- create_accounts -----------------------------------------------------------------------

    def create_accounts(self, events: Sequence[AccountEvent], now_ns: int) -> list[tuple[int, int]]:
        """Apply a batch of account events; return one (timestamp, status) per event."""
        n = len(events)
        if n == 0:
            self.tick(now_ns)
            return []
        t0 = self._reserve(now_ns, n)
        t_batch = t0 + n
        batch_imported = events[0][11] & A_IMPORTED

        def execute(i: int, slot: int) -> tuple[int, int]:
            return self._create_account(events[i], slot, t_batch, batch_imported)

        return self._run_batch(
            n,
            [e[11] & A_LINKED for e in events],
            t0,
            execute,
            _A.CREATED,
            _A.LINKED_EVENT_FAILED,
            _A.LINKED_EVENT_CHAIN_OPEN,
        )

    def _create_account(
        self, e: AccountEvent, slot: int, t_batch: int, batch_imported: int
    ) -> tuple[int, int]:
        (id_, dp, dpo, cp, cpo, _, _, _, reserved, ledger, code, flags, timestamp) = e
        imported = flags & A_IMPORTED
        if batch_imported and not imported:
            return slot, _A.IMPORTED_EVENT_EXPECTED
        if imported and not batch_imported:
            return slot, _A.IMPORTED_EVENT_NOT_EXPECTED
        if not imported:
            if timestamp != 0:
                return slot, _A.TIMESTAMP_MUST_BE_ZERO
        else:
            if timestamp == 0 or timestamp > TIMESTAMP_MAX:
                return slot, _A.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE
            if timestamp >= t_batch:
                return slot, _A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE
        if reserved != 0:
            return slot, _A.RESERVED_FIELD
        if flags & ~A_KNOWN:
            return slot, _A.RESERVED_FLAG
        if id_ == 0:
            return slot, _A.ID_MUST_NOT_BE_ZERO
        if id_ == U128_MAX:
            return slot, _A.ID_MUST_NOT_BE_INT_MAX
        existing = self.accounts.get(id_)
        if existing is not None:
            status = self._account_exists(existing, e)
            # Only `exists` reports the existing account's timestamp; a mismatch is a failure
            # like any other and reports the event's slot (as TigerBeetle's `execute_create`).
            return (existing.timestamp if status == _A.EXISTS else slot), status
        if flags & A_DEBITS_MUST_NOT_EXCEED_CREDITS and flags & A_CREDITS_MUST_NOT_EXCEED_DEBITS:
            return slot, _A.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if dp != 0:
            return slot, _A.DEBITS_PENDING_MUST_BE_ZERO
        if dpo != 0:
            return slot, _A.DEBITS_POSTED_MUST_BE_ZERO
        if cp != 0:
            return slot, _A.CREDITS_PENDING_MUST_BE_ZERO
        if cpo != 0:
            return slot, _A.CREDITS_POSTED_MUST_BE_ZERO
        if ledger == 0:
            return slot, _A.LEDGER_MUST_NOT_BE_ZERO
        if code == 0:
            return slot, _A.CODE_MUST_NOT_BE_ZERO
        if imported and (
            (self.accounts_ordered and timestamp <= self.accounts_ordered[-1].timestamp)
            or self._transfer_has_timestamp(timestamp)
        ):
            return slot, _A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS

        ts = timestamp if imported else slot
        account = _Account(e, ts)
        self.accounts[id_] = account
        self.accounts_ordered.append(account)
        if self._undo is not None:
            self._undo.append(lambda: self._unappend_account(account))
        return ts, _A.CREATED

    @staticmethod
    def _account_exists(a: _Account, e: AccountEvent) -> int:
        if a.flags != e[11]:
            return _A.EXISTS_WITH_DIFFERENT_FLAGS
        if a.user_data_128 != e[5]:
            return _A.EXISTS_WITH_DIFFERENT_USER_DATA_128
        if a.user_data_64 != e[6]:
            return _A.EXISTS_WITH_DIFFERENT_USER_DATA_64
        if a.user_data_32 != e[7]:
            return _A.EXISTS_WITH_DIFFERENT_USER_DATA_32
        if a.ledger != e[9]:
            return _A.EXISTS_WITH_DIFFERENT_LEDGER
        if a.code != e[10]:
            return _A.EXISTS_WITH_DIFFERENT_CODE
        return _A.EXISTS

    def _unappend_account(self, account: _Account) -> None:
        popped = self.accounts_ordered.pop()
        if popped is not account:
            raise InvariantViolationError("account rollback out of order")
        del self.accounts[account.id]

    # -- create_transfers ----------------------------------------------------------------------

    def create_transfers(
        self, events: Sequence[TransferEvent], now_ns: int
    ) -> list[tuple[int, int]]:
        """Apply a batch of transfer events; return one (timestamp, status) per event."""
        n = len(events)
        if n == 0:
            self.tick(now_ns)
            return []
        t0 = self._reserve(now_ns, n)
        t_batch = t0 + n
        batch_imported = events[0][11] & T_IMPORTED
        burned = self.burned_transfer_ids

        def execute(i: int, slot: int) -> tuple[int, int]:
            e = events[i]
            result = self._create_transfer(e, slot, t_batch, batch_imported)
            if result[1] in TRANSIENT_STATUSES:
                burned.add(e[0])
            return result

        linked_flags = [e[11] & T_LINKED for e in events]
        if not any(linked_flags):
            # The common case: no chain, no undo log, no per-event chain bookkeeping.
            results = [execute(i, t0 + 1 + i) for i in range(n)]
        else:
            results = self._run_batch(
                n,
                linked_flags,
                t0,
                execute,
                _T.CREATED,
                _T.LINKED_EVENT_FAILED,
                _T.LINKED_EVENT_CHAIN_OPEN,
            )
        self._seal_changes()
        return results

    def _create_transfer(
        self, e: TransferEvent, slot: int, t_batch: int, batch_imported: int
    ) -> tuple[int, int]:
        """The common prefix of both paths, then path S (single-phase/pending) or path V."""
        id_ = e[0]
        flags = e[11]
        timestamp = e[12]
        imported = flags & T_IMPORTED
        if batch_imported and not imported:
            return slot, _T.IMPORTED_EVENT_EXPECTED
        if imported and not batch_imported:
            return slot, _T.IMPORTED_EVENT_NOT_EXPECTED
        if not imported:
            if timestamp != 0:
                return slot, _T.TIMESTAMP_MUST_BE_ZERO
        else:
            if timestamp == 0 or timestamp > TIMESTAMP_MAX:
                return slot, _T.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE
            if timestamp >= t_batch:
                return slot, _T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE
        if flags & ~T_KNOWN:
            return slot, _T.RESERVED_FLAG
        if id_ == 0:
            return slot, _T.ID_MUST_NOT_BE_ZERO
        if id_ == U128_MAX:
            return slot, _T.ID_MUST_NOT_BE_INT_MAX
        existing = self.transfers.get(id_)
        if existing is not None:
            status = self._transfer_exists(existing, e)
            # As for accounts: only `exists` reports the existing transfer's timestamp.
            return (existing.timestamp if status == _T.EXISTS else slot), status
        if id_ in self.burned_transfer_ids:
            return slot, _T.ID_ALREADY_FAILED
        ts = timestamp if imported else slot
        if flags & (T_POST | T_VOID):
            return self._post_or_void(e, slot, ts)
        return self._single_or_pending(e, slot, ts)

    def _single_or_pending(self, e: TransferEvent, slot: int, ts: int) -> tuple[int, int]:
        (_, dr_id, cr_id, amount, pending_id, _, _, _, timeout, ledger, code, flags, _) = e
        if dr_id == 0:
            return slot, _T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if dr_id == U128_MAX:
            return slot, _T.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if cr_id == 0:
            return slot, _T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO
        if cr_id == U128_MAX:
            return slot, _T.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX
        if dr_id == cr_id:
            return slot, _T.ACCOUNTS_MUST_BE_DIFFERENT
        if pending_id != 0:
            return slot, _T.PENDING_ID_MUST_BE_ZERO
        pending = flags & T_PENDING
        if not pending:
            if timeout != 0:
                return slot, _T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
            if flags & (T_CLOSING_DEBIT | T_CLOSING_CREDIT):
                return slot, _T.CLOSING_TRANSFER_MUST_BE_PENDING
        if ledger == 0:
            return slot, _T.LEDGER_MUST_NOT_BE_ZERO
        if code == 0:
            return slot, _T.CODE_MUST_NOT_BE_ZERO
        accounts = self.accounts
        dr = accounts.get(dr_id)
        if dr is None:
            return slot, _T.DEBIT_ACCOUNT_NOT_FOUND
        cr = accounts.get(cr_id)
        if cr is None:
            return slot, _T.CREDIT_ACCOUNT_NOT_FOUND
        if dr.ledger != cr.ledger:
            return slot, _T.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
        if ledger != dr.ledger:
            return slot, _T.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
        if flags & T_IMPORTED:
            if (
                self.transfers_ordered and ts <= self.transfers_ordered[-1].timestamp
            ) or self._account_has_timestamp(ts):
                return slot, _T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS
            if ts <= dr.timestamp:
                return slot, _T.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_DEBIT_ACCOUNT
            if ts <= cr.timestamp:
                return slot, _T.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_CREDIT_ACCOUNT
            if timeout != 0:
                return slot, _T.IMPORTED_EVENT_TIMEOUT_MUST_BE_ZERO
        if dr.flags & A_CLOSED:
            return slot, _T.DEBIT_ACCOUNT_ALREADY_CLOSED
        if cr.flags & A_CLOSED:
            return slot, _T.CREDIT_ACCOUNT_ALREADY_CLOSED

        if flags & T_BALANCING_DEBIT:
            room = dr.credits_posted - dr.debits_posted - dr.debits_pending
            amount = min(amount, room if room > 0 else 0)
        if flags & T_BALANCING_CREDIT:
            room = cr.debits_posted - cr.credits_posted - cr.credits_pending
            amount = min(amount, room if room > 0 else 0)

        if pending:
            if amount + dr.debits_pending > U128_MAX:
                return slot, _T.OVERFLOWS_DEBITS_PENDING
            if amount + cr.credits_pending > U128_MAX:
                return slot, _T.OVERFLOWS_CREDITS_PENDING
        if amount + dr.debits_posted > U128_MAX:
            return slot, _T.OVERFLOWS_DEBITS_POSTED
        if amount + cr.credits_posted > U128_MAX:
            return slot, _T.OVERFLOWS_CREDITS_POSTED
        if amount + dr.debits_pending + dr.debits_posted > U128_MAX:
            return slot, _T.OVERFLOWS_DEBITS
        if amount + cr.credits_pending + cr.credits_posted > U128_MAX:
            return slot, _T.OVERFLOWS_CREDITS
        if ts + timeout * NS_PER_S > TIMESTAMP_MAX:
            return slot, _T.OVERFLOWS_TIMEOUT
        if (
            dr.flags & A_DEBITS_MUST_NOT_EXCEED_CREDITS
            and dr.debits_pending + dr.debits_posted + amount > dr.credits_posted
        ):
            return slot, _T.EXCEEDS_CREDITS
        if (
            cr.flags & A_CREDITS_MUST_NOT_EXCEED_DEBITS
            and cr.credits_pending + cr.credits_posted + amount > cr.debits_posted
        ):
            return slot, _T.EXCEEDS_DEBITS

        t = _Transfer(
            e[0], dr_id, cr_id, amount, 0, e[5], e[6], e[7], timeout, ledger, code, flags, ts
        )
        undo = self._undo
        if undo is not None:
            self._log_account_state(undo, dr)
            self._log_account_state(undo, cr)
        if pending:
            dr.debits_pending += amount
            cr.credits_pending += amount
            if flags & T_CLOSING_DEBIT:
                dr.flags |= A_CLOSED
            if flags & T_CLOSING_CREDIT:
                cr.flags |= A_CLOSED
            if timeout:
                heapq.heappush(self.expiry_heap, (t.expires_at, ts, t.id))
        else:
            dr.debits_posted += amount
            cr.credits_posted += amount
        self._insert_transfer(t, dr, cr)
        return ts, _T.CREATED

    def _post_or_void(self, e: TransferEvent, slot: int, ts: int) -> tuple[int, int]:
        (
            id_,
            dr_id,
            cr_id,
            amount,
            pending_id,
            ud128,
            ud64,
            ud32,
            timeout,
            ledger,
            code,
            flags,
            _,
        ) = e
        post = flags & T_POST
        void = flags & T_VOID
        if (post and void) or flags & T_NOT_WITH_POST_OR_VOID:
            return slot, _T.FLAGS_ARE_MUTUALLY_EXCLUSIVE
        if pending_id == 0:
            return slot, _T.PENDING_ID_MUST_NOT_BE_ZERO
        if pending_id == U128_MAX:
            return slot, _T.PENDING_ID_MUST_NOT_BE_INT_MAX
        if pending_id == id_:
            return slot, _T.PENDING_ID_MUST_BE_DIFFERENT
        if timeout != 0:
            return slot, _T.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        p = self.transfers.get(pending_id)
        if p is None:
            return slot, _T.PENDING_TRANSFER_NOT_FOUND
        if not p.flags & T_PENDING:
            return slot, _T.PENDING_TRANSFER_NOT_PENDING
        if dr_id not in (0, p.debit_account_id):
            return slot, _T.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
        if cr_id not in (0, p.credit_account_id):
            return slot, _T.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
        if ledger not in (0, p.ledger):
            return slot, _T.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER
        if code not in (0, p.code):
            return slot, _T.PENDING_TRANSFER_HAS_DIFFERENT_CODE
        if void:
            resolved = p.amount if amount == 0 else amount
        else:
            resolved = p.amount if amount == AMOUNT_MAX else amount
        if resolved > p.amount:
            return slot, _T.EXCEEDS_PENDING_TRANSFER_AMOUNT
        if void and resolved < p.amount:
            return slot, _T.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
        if p.state == POSTED:
            return slot, _T.PENDING_TRANSFER_ALREADY_POSTED
        if p.state == VOIDED:
            return slot, _T.PENDING_TRANSFER_ALREADY_VOIDED
        # Expiry is judged against the event's slot (cluster time), even for an imported event.
        if p.state == EXPIRED or (p.expires_at and p.expires_at <= slot):
            return slot, _T.PENDING_TRANSFER_EXPIRED
        if flags & T_IMPORTED and (
            (self.transfers_ordered and ts <= self.transfers_ordered[-1].timestamp)
            or self._account_has_timestamp(ts)
        ):
            return slot, _T.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS
        dr = self.accounts[p.debit_account_id]
        cr = self.accounts[p.credit_account_id]
        if post and dr.flags & A_CLOSED:
            return slot, _T.DEBIT_ACCOUNT_ALREADY_CLOSED
        if post and cr.flags & A_CLOSED:
            return slot, _T.CREDIT_ACCOUNT_ALREADY_CLOSED

        t = _Transfer(
            id_,
            p.debit_account_id,
            p.credit_account_id,
            resolved,
            pending_id,
            ud128 or p.user_data_128,
            ud64 or p.user_data_64,
            ud32 or p.user_data_32,
            0,
            p.ledger,
            p.code,
            flags,
            ts,
        )
        undo = self._undo
        if undo is not None:
            self._log_account_state(undo, dr)
            self._log_account_state(undo, cr)
            undo.append(self._restore_state(p, p.state))
        dr.debits_pending -= p.amount
        cr.credits_pending -= p.amount
        if post:
            dr.debits_posted += resolved
            cr.credits_posted += resolved
            p.state = POSTED
        else:
            if p.flags & T_CLOSING_DEBIT:
                dr.flags &= ~A_CLOSED
            if p.flags & T_CLOSING_CREDIT:
                cr.flags &= ~A_CLOSED
            p.state = VOIDED
        self._insert_transfer(t, dr, cr)
        return ts, _T.CREATED

    def _transfer_exists(self, t: _Transfer, e: TransferEvent) -> int:
        (
            _,
            dr_id,
            cr_id,
            amount,
            pending_id,
            ud128,
            ud64,
            ud32,
            timeout,
            ledger,
            code,
            flags,
            _,
        ) = e
        if t.flags != flags:
            return _T.EXISTS_WITH_DIFFERENT_FLAGS
        if t.pending_id != pending_id:
            return _T.EXISTS_WITH_DIFFERENT_PENDING_ID
        if t.timeout != timeout:
            return _T.EXISTS_WITH_DIFFERENT_TIMEOUT
        if flags & (T_POST | T_VOID):
            p = self.transfers[t.pending_id]
            if dr_id not in (0, t.debit_account_id):
                return _T.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
            if cr_id not in (0, t.credit_account_id):
                return _T.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
            full = amount == 0 if flags & T_VOID else amount == AMOUNT_MAX
            if (t.amount != p.amount) if full else (amount != t.amount):
                return _T.EXISTS_WITH_DIFFERENT_AMOUNT
            if (t.user_data_128 != p.user_data_128) if ud128 == 0 else (ud128 != t.user_data_128):
                return _T.EXISTS_WITH_DIFFERENT_USER_DATA_128
            if (t.user_data_64 != p.user_data_64) if ud64 == 0 else (ud64 != t.user_data_64):
                return _T.EXISTS_WITH_DIFFERENT_USER_DATA_64
            if (t.user_data_32 != p.user_data_32) if ud32 == 0 else (ud32 != t.user_data_32):
                return _T.EXISTS_WITH_DIFFERENT_USER_DATA_32
            if ledger not in (0, t.ledger):
                return _T.EXISTS_WITH_DIFFERENT_LEDGER
            if code not in (0, t.code):
                return _T.EXISTS_WITH_DIFFERENT_CODE
            return _T.EXISTS
        if dr_id != t.debit_account_id:
            return _T.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
        if cr_id != t.credit_account_id:
            return _T.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
        if flags & (T_BALANCING_DEBIT | T_BALANCING_CREDIT):
            if amount < t.amount:
                return _T.EXISTS_WITH_DIFFERENT_AMOUNT
        elif amount != t.amount:
            return _T.EXISTS_WITH_DIFFERENT_AMOUNT
        if ud128 != t.user_data_128:
            return _T.EXISTS_WITH_DIFFERENT_USER_DATA_128
        if ud64 != t.user_data_64:
            return _T.EXISTS_WITH_DIFFERENT_USER_DATA_64
        if ud32 != t.user_data_32:
            return _T.EXISTS_WITH_DIFFERENT_USER_DATA_32
        if ledger != t.ledger:
            return _T.EXISTS_WITH_DIFFERENT_LEDGER
        if code != t.code:
            return _T.EXISTS_WITH_DIFFERENT_CODE
        return _T.EXISTS

    def _insert_transfer(self, t: _Transfer, dr: _Account, cr: _Account) -> None:
        self.transfers[t.id] = t
        self.transfers_ordered.append(t)
        # The entry's layout is `_CHANGE_WIDTH`'s, as `pulse` writes it too; spelled out here
        # rather than built by a shared function, which cost about 3% of create_transfers
        # (measured, paired runs).
        change = (
            t.timestamp,
            t.id,
            dr.debits_pending,
            dr.debits_posted,
            dr.credits_pending,
            dr.credits_posted,
            dr.flags,
            cr.debits_pending,
            cr.debits_posted,
            cr.credits_pending,
            cr.credits_posted,
            cr.flags,
        )
        changes = self.changes
        if t.flags & T_IMPORTED and self._change_last_timestamp() > t.timestamp:
            # An imported transfer postdates every transfer but maybe not every expiry.
            self._insert_change(change)
        else:
            changes += change
        dr.entries.append(t)
        if dr.balances is not None:
            dr.balances.append(
                (dr.debits_pending, dr.debits_posted, dr.credits_pending, dr.credits_posted)
            )
        cr.entries.append(t)
        if cr.balances is not None:
            cr.balances.append(
                (cr.debits_pending, cr.debits_posted, cr.credits_pending, cr.credits_posted)
            )
        if self._undo is not None:
            self._undo.append(lambda: self._unappend_transfer(t, dr, cr))

    def _unappend_transfer(self, t: _Transfer, dr: _Account, cr: _Account) -> None:
        if self.transfers_ordered.pop() is not t:
            raise InvariantViolationError("transfer rollback out of order")
        if dr.entries.pop() is not t or cr.entries.pop() is not t:
            raise InvariantViolationError("account entry rollback out of order")
        for account in (dr, cr):
            if account.balances is not None:
                account.balances.pop()
        changes = self.changes
        at = len(changes) - _CHANGE_WIDTH
        if at < 0 or changes[at] != t.timestamp:
            # Only an imported transfer may have been filed before an expiry.
            at = _run_index(changes, t.timestamp) * _CHANGE_WIDTH
            if at == len(changes) or changes[at] != t.timestamp:
                raise InvariantViolationError("change rollback out of order")
        del changes[at : at + _CHANGE_WIDTH]
        del self.transfers[t.id]
        # A stale expiry-heap entry is left behind; `pulse` skips entries whose transfer is gone.

    @staticmethod
    def _log_account_state(undo: list[_Undo], a: _Account) -> None:
        saved = (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, a.flags)

        def restore() -> None:
            (
                a.debits_pending,
                a.debits_posted,
                a.credits_pending,
                a.credits_posted,
                a.flags,
            ) = saved

        undo.append(restore)

    @staticmethod
    def _restore_state(p: _Transfer, state: int) -> _Undo:
        def restore() -> None:
            p.state = state

        return restore

    def _seal_changes(self) -> None:
        """Seal the open run of the change log if it is full (between writes only)."""
        if len(self.changes) >= _CHANGE_RUN_INTS:
            self.change_runs.append(tuple(self.changes))
            self.change_runs_first.append(self.changes[0])
            self.changes = []

    def _change_last_timestamp(self) -> int:
        run = self.changes or (self.change_runs[-1] if self.change_runs else ())
        return run[-_CHANGE_WIDTH] if run else 0

    def _insert_change(self, change: tuple[int, ...]) -> None:
        """File a change before later ones: reopen the sealed runs it falls in (rare: an imported
        transfer dated before an expiry), so that a rollback finds it in the open run."""
        runs, firsts = self.change_runs, self.change_runs_first
        keep = bisect_right(firsts, change[0]) - 1
        if keep >= 0 and keep < len(runs):
            reopened: list[int] = []
            for run in runs[keep:]:
                reopened += run
            self.changes = reopened + self.changes
            del runs[keep:]
            del firsts[keep:]
        changes = self.changes
        at = _run_index(changes, change[0]) * _CHANGE_WIDTH
        changes[at:at] = change

    def _transfer_has_timestamp(self, ts: int) -> bool:
        ordered = self.transfers_ordered
        i = bisect_left(ordered, ts, key=_timestamp_of)
        return i < len(ordered) and ordered[i].timestamp == ts

    def _account_has_timestamp(self, ts: int) -> bool:
        ordered = self.accounts_ordered
        i = bisect_left(ordered, ts, key=_timestamp_of)
        return i < len(ordered) and ordered[i].timestamp == ts

    # -- reads ---------------------------------------------------------------------------------

    def lookup_accounts(self, ids: Iterable[int]) -> list[Account]:
        accounts = self.accounts
        return [accounts[i].to_account() for i in ids if i in accounts]

    def lookup_transfers(self, ids: Iterable[int]) -> list[Transfer]:
        transfers = self.transfers
        return [transfers[i].to_transfer() for i in ids if i in transfers]

    def _account_entries(
        self, f: AccountFilter
    ) -> tuple[_Account, list[tuple[_Transfer, tuple[int, int, int, int] | None]]] | None:
        """The entries `get_account_transfers` would return for `f`, or None if `f` is invalid."""
        flags = int(f.flags) & 0xFFFFFFFF
        if f.account_id in (0, U128_MAX):
            return None
        if not flags & (F_DEBITS | F_CREDITS) or flags & ~(F_DEBITS | F_CREDITS | F_REVERSED):
            return None
        if not _valid_range(f.timestamp_min, f.timestamp_max) or f.limit < 1:
            return None
        account = self.accounts.get(f.account_id)
        if account is None:
            return None
        window = _timestamp_window(account.entries, f.timestamp_min, f.timestamp_max)
        want_debits = flags & F_DEBITS
        want_credits = flags & F_CREDITS
        account_id = f.account_id
        ud128, ud64, ud32, code = f.user_data_128, f.user_data_64, f.user_data_32, f.code
        if flags & F_REVERSED:
            window = window[::-1]
        entries, balances = account.entries, account.balances
        out: list[tuple[_Transfer, tuple[int, int, int, int] | None]] = []
        limit = f.limit
        for index in window:
            t = entries[index]
            if not (
                (want_debits and t.debit_account_id == account_id)
                or (want_credits and t.credit_account_id == account_id)
            ):
                continue
            if (
                (ud128 and t.user_data_128 != ud128)
                or (ud64 and t.user_data_64 != ud64)
                or (ud32 and t.user_data_32 != ud32)
                or (code and t.code != code)
            ):
                continue
            out.append((t, None if balances is None else balances[index]))
            if len(out) >= limit:
                break
        return account, out

    def get_account_transfers(self, f: AccountFilter) -> list[Transfer]:
        found = self._account_entries(f)
        if found is None:
            return []
        return [t.to_transfer() for t, _ in found[1]]

    def get_account_balances(self, f: AccountFilter) -> list[AccountBalance]:
        found = self._account_entries(f)
        if found is None or not found[0].flags & A_HISTORY:
            return []
        out = []
        for t, balance in found[1]:
            if balance is None:
                raise InvariantViolationError("history account without a balance snapshot")
            out.append(
                AccountBalance(
                    debits_pending=balance[0],
                    debits_posted=balance[1],
                    credits_pending=balance[2],
                    credits_posted=balance[3],
                    timestamp=t.timestamp,
                )
            )
        return out

    def query_accounts(self, f: QueryFilter) -> list[Account]:
        return [a.to_account() for a in _query(self.accounts_ordered, f)]

    def query_transfers(self, f: QueryFilter) -> list[Transfer]:
        return [t.to_transfer() for t in _query(self.transfers_ordered, f)]

    def change_events(self, timestamp_min: int, limit: int) -> list[ChangeRecord]:
        """Up to `limit` change events with a timestamp of at least `timestamp_min`, oldest first
        (TigerBeetle's ``get_change_events`` with no upper bound)."""
        if limit < 1:
            return []
        runs = [*self.change_runs, self.changes]
        first = bisect_right(self.change_runs_first, timestamp_min) - 1 if timestamp_min else 0
        first = max(first, 0)
        out: list[ChangeRecord] = []
        for run in runs[first:]:
            start = _run_index(run, timestamp_min) * _CHANGE_WIDTH if timestamp_min else 0
            stop = min(len(run), start + (limit - len(out)) * _CHANGE_WIDTH)
            for i in range(start, stop, _CHANGE_WIDTH):
                out.append(self._change_record(run[i : i + _CHANGE_WIDTH]))
            if len(out) >= limit:
                break
        return out

    def _change_record(self, change: Sequence[int]) -> ChangeRecord:
        (ts, transfer_id, ddp, ddpo, dcp, dcpo, dflags, cdp, cdpo, ccp, ccpo, cflags) = change
        t = self.transfers[transfer_id]
        flags = t.flags
        if t.timestamp != ts:
            kind = CHANGE_TWO_PHASE_EXPIRED
        elif flags & T_PENDING:
            kind = CHANGE_TWO_PHASE_PENDING
        elif flags & T_POST:
            kind = CHANGE_TWO_PHASE_POSTED
        elif flags & T_VOID:
            kind = CHANGE_TWO_PHASE_VOIDED
        else:
            kind = CHANGE_SINGLE_PHASE
        dr = self.accounts[t.debit_account_id]
        cr = self.accounts[t.credit_account_id]
        return ChangeRecord(
            timestamp=ts,
            type=kind,
            ledger=t.ledger,
            transfer_id=t.id,
            transfer_amount=t.amount,
            transfer_pending_id=t.pending_id,
            transfer_user_data_128=t.user_data_128,
            transfer_user_data_64=t.user_data_64,
            transfer_user_data_32=t.user_data_32,
            transfer_timeout=t.timeout,
            transfer_code=t.code,
            transfer_flags=flags,
            transfer_timestamp=t.timestamp,
            debit_account_id=dr.id,
            debit_account_debits_pending=ddp,
            debit_account_debits_posted=ddpo,
            debit_account_credits_pending=dcp,
            debit_account_credits_posted=dcpo,
            debit_account_user_data_128=dr.user_data_128,
            debit_account_user_data_64=dr.user_data_64,
            debit_account_user_data_32=dr.user_data_32,
            debit_account_code=dr.code,
            debit_account_flags=dflags,
            debit_account_timestamp=dr.timestamp,
            credit_account_id=cr.id,
            credit_account_debits_pending=cdp,
            credit_account_debits_posted=cdpo,
            credit_account_credits_pending=ccp,
            credit_account_credits_posted=ccpo,
            credit_account_user_data_128=cr.user_data_128,
            credit_account_user_data_64=cr.user_data_64,
            credit_account_user_data_32=cr.user_data_32,
            credit_account_code=cr.code,
            credit_account_flags=cflags,
            credit_account_timestamp=cr.timestamp,
        )

    # -- invariants ----------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Verify the global money invariants; raise InvariantViolationError on the first failure.

        Checks survive ``python -O`` (no ``assert``): debits equal credits per ledger, no balance
        past its flag's bound, no counter past u128.
        """
        per_ledger: dict[int, list[int]] = {}
        for a in self.accounts_ordered:
            sums = per_ledger.setdefault(a.ledger, [0, 0, 0, 0])
            sums[0] += a.debits_pending
            sums[1] += a.credits_pending
            sums[2] += a.debits_posted
            sums[3] += a.credits_posted
            if a.debits_pending + a.debits_posted > U128_MAX:
                raise InvariantViolationError(f"account {a.id:#x}: debits overflow")
            if a.credits_pending + a.credits_posted > U128_MAX:
                raise InvariantViolationError(f"account {a.id:#x}: credits overflow")
            if min(a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) < 0:
                raise InvariantViolationError(f"account {a.id:#x}: negative balance")
            if (
                a.flags & A_DEBITS_MUST_NOT_EXCEED_CREDITS
                and a.debits_pending + a.debits_posted > a.credits_posted
            ):
                raise InvariantViolationError(f"account {a.id:#x}: debits exceed credits")
            if (
                a.flags & A_CREDITS_MUST_NOT_EXCEED_DEBITS
                and a.credits_pending + a.credits_posted > a.debits_posted
            ):
                raise InvariantViolationError(f"account {a.id:#x}: credits exceed debits")
        for ledger, (dp, cp, dpo, cpo) in per_ledger.items():
            if dp != cp:
                raise InvariantViolationError(f"ledger {ledger}: pending debits != pending credits")
            if dpo != cpo:
                raise InvariantViolationError(f"ledger {ledger}: posted debits != posted credits")


_O = TypeVar("_O", "_Account", "_Transfer")


def _timestamp_of(obj: _Account | _Transfer) -> int:
    return obj.timestamp


def _run_index(run: Sequence[int], ts: int) -> int:
    """The index of the first change in a flat run with a timestamp of at least `ts`."""
    return bisect_left(range(len(run) // _CHANGE_WIDTH), ts, key=lambda i: run[i * _CHANGE_WIDTH])


def _valid_range(ts_min: int, ts_max: int) -> bool:
    if ts_min > TIMESTAMP_MAX or ts_max > TIMESTAMP_MAX:
        return False
    return not (ts_max != 0 and ts_min > ts_max)


def _timestamp_window(entries: list[_Transfer], ts_min: int, ts_max: int) -> range:
    """The indexes of `entries` (in timestamp order) within [ts_min, ts_max] (0: unbounded)."""
    lo = bisect_left(entries, ts_min, key=_timestamp_of) if ts_min else 0
    hi = bisect_right(entries, ts_max, key=_timestamp_of) if ts_max else len(entries)
    return range(lo, hi)


def _query(ordered: list[_O], f: QueryFilter) -> list[_O]:
    flags = int(f.flags) & 0xFFFFFFFF
    if flags & ~Q_REVERSED or not _valid_range(f.timestamp_min, f.timestamp_max) or f.limit < 1:
        return []
    lo = bisect_left(ordered, f.timestamp_min, key=_timestamp_of) if f.timestamp_min else 0
    hi = (
        bisect_right(ordered, f.timestamp_max, key=_timestamp_of)
        if f.timestamp_max
        else len(ordered)
    )
    ud128, ud64, ud32, ledger, code = (
        f.user_data_128,
        f.user_data_64,
        f.user_data_32,
        f.ledger,
        f.code,
    )
    indices = range(hi - 1, lo - 1, -1) if flags & Q_REVERSED else range(lo, hi)
    out: list[_O] = []
    limit = f.limit
    for i in indices:
        o = ordered[i]
        if (
            (ud128 and o.user_data_128 != ud128)
            or (ud64 and o.user_data_64 != ud64)
            or (ud32 and o.user_data_32 != ud32)
            or (ledger and o.ledger != ledger)
            or (code and o.code != code)
        ):
            continue
        out.append(o)
        if len(out) >= limit:
            break
    return out


def to_results_accounts(pairs: list[tuple[int, int]]) -> list[CreateAccountResult]:
    """Dense account results as the official client returns them."""
    status = CreateAccountStatus
    return [CreateAccountResult(timestamp=ts, status=status(s)) for ts, s in pairs]


def to_results_transfers(pairs: list[tuple[int, int]]) -> list[CreateTransferResult]:
    """Dense transfer results as the official client returns them."""
    status = CreateTransferStatus
    return [CreateTransferResult(timestamp=ts, status=status(s)) for ts, s in pairs]
