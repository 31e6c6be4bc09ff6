"""Drop-in replacements for ``tigerbeetle.ClientSync`` and ``tigerbeetle.ClientAsync``.

Both facades share one ``Replica``: the I/O-free state machine, the engine clock and (when a path
is given) the journal. The facades add exactly what the official client does on the client side,
so code written against it behaves the same here: integer range checks that raise
``IntegerOverflowError`` before anything is sent, ``TooMuchDataError`` above the batch limit or a
query limit above the reply capacity, ``ClientClosedError`` after ``close()``, and flags truncated
to their field width (lookup ids likewise, to 128 bits).

``ClientAsync`` never runs a large batch or an fsync on the event loop: such work goes to the
engine's single worker thread (one thread, so writes stay in submission order). A small batch on an
in-memory engine takes microseconds and runs inline when the engine is free.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Generic, Protocol, Self, TypeVar

from tigerbeetle import (
    Account,
    AccountBalance,
    AccountFilter,
    ClientClosedError,
    CreateAccountResult,
    CreateTransferResult,
    IntegerOverflowError,
    QueryFilter,
    TooMuchDataError,
    Transfer,
)

from tbledger.embedded import journal as jr
from tbledger.embedded.state_machine import (
    AccountEvent,
    ChangeRecord,
    StateMachine,
    TransferEvent,
    to_results_accounts,
    to_results_transfers,
)
from tbledger.errors import ConfigurationError, JournalError
from tbledger.limits import BATCH_EVENTS_MAX, QUERY_LIMIT_MAX, U128_MAX

__all__ = ["ClientAsync", "ClientSync", "ManualClock", "Replica"]

_A = TypeVar("_A")  # an operation's argument, as the caller passes it
_E = TypeVar("_E")  # what the replica gets for it, after the client-side checks
_R = TypeVar("_R")  # its result
_M128 = U128_MAX
_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
_M16 = (1 << 16) - 1

# (field, bits) in the official client's validation order; `flags` is not range-checked there.
_ACCOUNT_FIELDS = (
    ("id", 128),
    ("debits_pending", 128),
    ("debits_posted", 128),
    ("credits_pending", 128),
    ("credits_posted", 128),
    ("user_data_128", 128),
    ("user_data_64", 64),
    ("user_data_32", 32),
    ("ledger", 32),
    ("code", 16),
    ("timestamp", 64),
)
_TRANSFER_FIELDS = (
    ("id", 128),
    ("debit_account_id", 128),
    ("credit_account_id", 128),
    ("amount", 128),
    ("pending_id", 128),
    ("user_data_128", 128),
    ("user_data_64", 64),
    ("user_data_32", 32),
    ("timeout", 32),
    ("ledger", 32),
    ("code", 16),
    ("timestamp", 64),
)
_ACCOUNT_FILTER_FIELDS = (
    ("account_id", 128),
    ("user_data_128", 128),
    ("user_data_64", 64),
    ("user_data_32", 32),
    ("code", 16),
    ("timestamp_min", 64),
    ("timestamp_max", 64),
    ("limit", 32),
)
_QUERY_FILTER_FIELDS = (
    ("user_data_128", 128),
    ("user_data_64", 64),
    ("user_data_32", 32),
    ("ledger", 32),
    ("code", 16),
    ("timestamp_min", 64),
    ("timestamp_max", 64),
    ("limit", 32),
)

# Below this many events a write on an in-memory engine runs inline on the event loop: it takes
# less time than handing it to a thread would.
_INLINE_EVENTS_MAX = 256


def _validate_uint(name: str, bits: int, value: Any) -> int:
    """The official client's check: raise IntegerOverflowError outside [0, 2^bits - 1]."""
    if not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value > (1 << bits) - 1:
        raise IntegerOverflowError(f"{name}=={value} is too large to fit in {bits} bits")
    if value < 0:
        raise IntegerOverflowError(f"{name}=={value} cannot be negative")
    return int(value)


def _slow_fields(obj: Any, fields: Sequence[tuple[str, int]]) -> list[int]:
    return [_validate_uint(name, bits, getattr(obj, name)) for name, bits in fields]


def account_event(a: Account) -> AccountEvent:
    """Validate an Account as the official client does and return it as a plain-int tuple."""
    e = (
        a.id,
        a.debits_pending,
        a.debits_posted,
        a.credits_pending,
        a.credits_posted,
        a.user_data_128,
        a.user_data_64,
        a.user_data_32,
        a.ledger,
        a.code,
        a.timestamp,
    )
    if (
        e[0].__class__ is int
        and e[1].__class__ is int
        and e[2].__class__ is int
        and e[3].__class__ is int
        and e[4].__class__ is int
        and e[5].__class__ is int
        and e[6].__class__ is int
        and e[7].__class__ is int
        and e[8].__class__ is int
        and e[9].__class__ is int
        and e[10].__class__ is int
        and 0 <= e[0] <= _M128
        and 0 <= e[1] <= _M128
        and 0 <= e[2] <= _M128
        and 0 <= e[3] <= _M128
        and 0 <= e[4] <= _M128
        and 0 <= e[5] <= _M128
        and 0 <= e[6] <= _M64
        and 0 <= e[7] <= _M32
        and 0 <= e[8] <= _M32
        and 0 <= e[9] <= _M16
        and 0 <= e[10] <= _M64
    ):
        return (*e[:8], 0, e[8], e[9], int(a.flags) & _M16, e[10])
    v = _slow_fields(a, _ACCOUNT_FIELDS)
    # The official client never sends `reserved`: it is always zero on the wire.
    return (*v[:8], 0, v[8], v[9], int(a.flags) & _M16, v[10])  # type: ignore[return-value]


def transfer_event(t: Transfer) -> TransferEvent:
    """Validate a Transfer as the official client does and return it as a plain-int tuple."""
    e = (
        t.id,
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        t.pending_id,
        t.user_data_128,
        t.user_data_64,
        t.user_data_32,
        t.timeout,
        t.ledger,
        t.code,
        t.timestamp,
    )
    if (
        e[0].__class__ is int
        and e[1].__class__ is int
        and e[2].__class__ is int
        and e[3].__class__ is int
        and e[4].__class__ is int
        and e[5].__class__ is int
        and e[6].__class__ is int
        and e[7].__class__ is int
        and e[8].__class__ is int
        and e[9].__class__ is int
        and e[10].__class__ is int
        and e[11].__class__ is int
        and 0 <= e[0] <= _M128
        and 0 <= e[1] <= _M128
        and 0 <= e[2] <= _M128
        and 0 <= e[3] <= _M128
        and 0 <= e[4] <= _M128
        and 0 <= e[5] <= _M128
        and 0 <= e[6] <= _M64
        and 0 <= e[7] <= _M32
        and 0 <= e[8] <= _M32
        and 0 <= e[9] <= _M32
        and 0 <= e[10] <= _M16
        and 0 <= e[11] <= _M64
    ):
        return (*e[:11], int(t.flags) & _M16, e[11])
    v = _slow_fields(t, _TRANSFER_FIELDS)
    return (*v[:11], int(t.flags) & _M16, v[11])  # type: ignore[return-value]


def _validate_ids(ids: Sequence[int]) -> list[int]:
    """Lookup ids as the official client sends them: not range-checked but truncated to 128 bits.

    Its ``c_uint128.from_param`` stores ``id >> 64`` and ``id & (2^64 - 1)`` in two u64 fields,
    which ctypes truncates silently: -1 becomes 2^128 - 1 and 2^128 + x becomes x (verified
    against a real 0.17.9 cluster). A non-int fails the shift with a TypeError, as there.
    """
    return [i if i.__class__ is int and 0 <= i <= _M128 else _wrap_id(i) for i in ids]


def _wrap_id(value: Any) -> int:
    if not isinstance(value, int):
        raise TypeError(f"id must be an int, not {type(value).__name__}")
    return int(value) & _M128


class ManualClock:
    """An engine clock that moves only when told to: for tests of timeouts and expiry.

    Call it for the current time in nanoseconds; `advance` moves it forward.
    """

    def __init__(self, start_ns: int | None = None) -> None:
        self._now_ns = time.time_ns() if start_ns is None else start_ns
        self._lock = threading.Lock()

    def __call__(self) -> int:
        return self._now_ns

    def advance(self, seconds: float = 0, *, ns: int = 0) -> int:
        """Move the clock forward by `seconds` (and/or `ns`); return the new time."""
        delta = int(seconds * 1_000_000_000) + ns
        if delta < 0:
            raise ValueError("the engine clock never goes backwards")
        with self._lock:
            self._now_ns += delta
            return self._now_ns


# How the replica applies each journaled write: live, and again when it replays the journal.
_Apply = Callable[[StateMachine, Sequence[jr.Event], int], list[tuple[int, int]]]
_WRITES: Final[dict[int, _Apply]] = {
    jr.OP_CREATE_ACCOUNTS: StateMachine.create_accounts,
    jr.OP_CREATE_TRANSFERS: StateMachine.create_transfers,
}


def _change_events(sm: StateMachine, argument: tuple[int, int]) -> list[ChangeRecord]:
    return sm.change_events(*argument)


class Replica:
    """The state machine plus its clock and journal, shared by the sync and async facades: what
    a TigerBeetle replica is to the official client (named so, and not "engine", which is the
    port every engine implements).

    Every operation runs under one lock: TigerBeetle executes requests one after another, and so
    does the replica. A write is applied, journaled and fsynced before its results are returned.
    """

    def __init__(
        self,
        *,
        cluster_id: int = 0,
        path: str | os.PathLike[str] | None = None,
        clock: Callable[[], int] | None = None,
        batch_events_max: int = BATCH_EVENTS_MAX,
        fsync: bool = True,
    ) -> None:
        _validate_uint("cluster_id", 128, cluster_id)
        if not 1 <= batch_events_max <= BATCH_EVENTS_MAX:
            raise ConfigurationError(f"batch_events_max must be in [1, {BATCH_EVENTS_MAX}]")
        self.cluster_id = cluster_id
        self.path = None if path is None else os.fspath(path)
        self.batch_events_max = batch_events_max
        self._clock = clock or time.time_ns
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[tuple[Callable[[list[bytes]], Any], Future[Any]]] = []
        self._draining = False
        self._executor: ThreadPoolExecutor | None = None
        self._failed: BaseException | None = None
        self.sm = StateMachine()
        self.journal: jr.Journal | None = None
        if self.path is not None:
            self._open_journal(self.path, fsync)

    def _open_journal(self, path: str, fsync: bool) -> None:
        journal = jr.Journal(path, cluster_id=self.cluster_id, fsync=fsync)
        sm = self.sm
        try:
            for record in journal.open():
                if record.operation == jr.OP_PULSE:
                    sm.pulse(record.timestamp_ns)
                elif record.operation == jr.OP_PULSE_UNRESERVED:
                    sm.pulse(record.timestamp_ns, reserve=False)
                else:
                    # A replayed write runs exactly as it ran live: same function, same timestamp.
                    _WRITES[record.operation](
                        sm, jr.unpack_events(record.body), record.timestamp_ns
                    )
        except BaseException:
            journal.close()
            raise
        self.journal = journal

    # -- execution -----------------------------------------------------------------------------

    @property
    def durable(self) -> bool:
        return self.journal is not None

    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tbledger-engine")
        return self._executor

    def try_lock(self) -> bool:
        return self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        self._lock.release()

    def run(self, op: Callable[[list[bytes]], _R]) -> _R:
        """Run one operation now, under the engine lock, and make its records durable."""
        with self._lock:
            records: list[bytes] = []
            result = op(records)
            self._commit(records)
            return result

    def submit(self, op: Callable[[list[bytes]], _R]) -> Future[_R]:
        """Queue an operation for the worker thread, which commits queued operations in groups.

        Operations run in submission order. The worker applies every operation queued at the time,
        then makes all their records durable with one fsync, and only then releases their results:
        concurrent writers share an fsync, and nobody sees a result that is not on disk yet.
        """
        future: Future[_R] = Future()
        with self._queue_lock:
            self._queue.append((op, future))
            start = not self._draining
            self._draining = True
        if start:
            self.executor().submit(self._drain)
        return future

    def _drain(self) -> None:
        while True:
            with self._queue_lock:
                group = self._queue
                if not group:
                    self._draining = False
                    return
                self._queue = []
            done: list[tuple[Future[Any], Any, BaseException | None]] = []
            with self._lock:
                records: list[bytes] = []
                for op, future in group:
                    if not future.set_running_or_notify_cancel():
                        continue  # cancelled before it ran: nothing was applied
                    try:
                        done.append((future, op(records), None))
                    except BaseException as exc:
                        done.append((future, None, exc))
                try:
                    self._commit(records)
                except JournalError as exc:
                    done = [(future, None, exc) for future, _, _ in done]
            for future, result, error in done:
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)

    def _now(self) -> int:
        """The timestamp base for the next operation: never behind the engine's last timestamp."""
        return max(self.sm.last_timestamp + 1, self._clock())

    def _pulse(self, records: list[bytes]) -> None:
        now = self._now()
        if self.sm.pulse_due(now):
            self.sm.pulse(now)
            if self.journal is not None:
                records.append(jr.encode_record(jr.OP_PULSE, now, b""))

    def _commit(self, records: list[bytes]) -> None:
        if self.journal is not None and records:
            try:
                self.journal.append(records)
            except OSError as exc:
                # Memory is now ahead of the disk: refuse everything from here on.
                self._failed = exc
                raise JournalError(f"journal write failed: {exc}") from exc

    def check_usable(self) -> None:
        if self._failed is not None:
            raise JournalError("the engine stopped after a journal write failure")

    # The two operations below run under the engine lock and append the journal records that must
    # be durable before their results are released; `run` and `submit` commit those records.

    def write_op(
        self, operation: int, events: list[jr.Event], records: list[bytes]
    ) -> list[tuple[int, int]]:
        """Apply one write (a journal operation: create accounts or transfers) and journal it.

        Returns the state machine's (timestamp, status) pair for each event.
        """
        self.check_usable()
        self._pulse(records)
        now = self._now()
        pairs = _WRITES[operation](self.sm, events, now)
        if self.journal is not None and events:
            records.append(jr.encode_record(operation, now, jr.pack_events(events)))
        return pairs

    def read_op(
        self, query: Callable[[StateMachine, _E], _R], argument: _E, records: list[bytes]
    ) -> _R:
        """Answer one lookup or query, after any expiry that is due by now."""
        self.check_usable()
        self._pulse(records)
        self.sm.tick(self._now())
        return query(self.sm, argument)

    def change_events(self, timestamp_min: int, limit: int) -> list[ChangeRecord]:
        """Up to `limit` change events from `timestamp_min` on (TigerBeetle's
        ``get_change_events``), run like a read: under the engine lock, after any expiry that is
        due by now, so that expiries show up even when nobody writes. Everything returned is
        durable: a write's records are committed before the lock is released."""
        return self.run(
            lambda records: self.read_op(_change_events, (timestamp_min, limit), records)
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            if self.journal is not None:
                self.journal.close()
                self.journal = None


# The operation table. Each of the eight operations is one row: the official client's integer
# checks on its argument (run while the request is built, before anything else), what its size
# limit bounds, and how the replica runs it, which also fixes whether it writes (and journals) or
# reads, and the shape of its result. Both facades funnel every operation through one `_submit`
# over a row, so a rule about order, limits or threading is written once.


class _Limited(Protocol):
    @property
    def limit(self) -> int: ...


@dataclass(frozen=True, slots=True)
class _Operation(Generic[_A, _E, _R]):
    """One row of the operation table.

    ``check`` takes the caller's argument and returns what the replica gets (validated events,
    truncated ids, or the checked filter); ``count`` is what the size limit bounds: the events of a
    batch, against the replica's ``batch_events_max``, or for a query (``query=True``) its
    ``limit``, against the reply capacity ``QUERY_LIMIT_MAX``; ``run`` executes it on the replica
    under the engine lock, appending the journal records it needs to ``records``.
    """

    name: str
    check: Callable[[_A], _E]
    count: Callable[[_E], int]
    query: bool
    run: Callable[[Replica, _E, list[bytes]], _R]


def _write(
    operation: int, results: Callable[[list[tuple[int, int]]], _R]
) -> Callable[[Replica, list[jr.Event], list[bytes]], _R]:
    """A write row's `run`: apply the events as journal `operation`, then shape the results."""

    def run(replica: Replica, events: list[jr.Event], records: list[bytes]) -> _R:
        return results(replica.write_op(operation, events, records))

    return run


def _read(
    query: Callable[[StateMachine, _E], _R],
) -> Callable[[Replica, _E, list[bytes]], _R]:
    """A read row's `run`: answer `query` from the state machine."""

    def run(replica: Replica, argument: _E, records: list[bytes]) -> _R:
        return replica.read_op(query, argument, records)

    return run


def _account_events(accounts: Sequence[Account]) -> list[AccountEvent]:
    return [account_event(a) for a in accounts]


def _transfer_events(transfers: Sequence[Transfer]) -> list[TransferEvent]:
    return [transfer_event(t) for t in transfers]


def _account_filter(f: AccountFilter) -> AccountFilter:
    _slow_fields(f, _ACCOUNT_FILTER_FIELDS)
    return f


def _query_filter(f: QueryFilter) -> QueryFilter:
    _slow_fields(f, _QUERY_FILTER_FIELDS)
    return f


def _limit(f: _Limited) -> int:
    return f.limit


_CREATE_ACCOUNTS: Final = _Operation(
    "create_accounts",
    check=_account_events,
    count=len,
    query=False,
    run=_write(jr.OP_CREATE_ACCOUNTS, to_results_accounts),
)
_CREATE_TRANSFERS: Final = _Operation(
    "create_transfers",
    check=_transfer_events,
    count=len,
    query=False,
    run=_write(jr.OP_CREATE_TRANSFERS, to_results_transfers),
)
_LOOKUP_ACCOUNTS: Final[_Operation[Sequence[int], list[int], list[Account]]] = _Operation(
    "lookup_accounts",
    check=_validate_ids,
    count=len,
    query=False,
    run=_read(StateMachine.lookup_accounts),
)
_LOOKUP_TRANSFERS: Final[_Operation[Sequence[int], list[int], list[Transfer]]] = _Operation(
    "lookup_transfers",
    check=_validate_ids,
    count=len,
    query=False,
    run=_read(StateMachine.lookup_transfers),
)
_GET_ACCOUNT_TRANSFERS: Final = _Operation(
    "get_account_transfers",
    check=_account_filter,
    count=_limit,
    query=True,
    run=_read(StateMachine.get_account_transfers),
)
_GET_ACCOUNT_BALANCES: Final = _Operation(
    "get_account_balances",
    check=_account_filter,
    count=_limit,
    query=True,
    run=_read(StateMachine.get_account_balances),
)
_QUERY_ACCOUNTS: Final = _Operation(
    "query_accounts",
    check=_query_filter,
    count=_limit,
    query=True,
    run=_read(StateMachine.query_accounts),
)
_QUERY_TRANSFERS: Final = _Operation(
    "query_transfers",
    check=_query_filter,
    count=_limit,
    query=True,
    run=_read(StateMachine.query_transfers),
)


class _Base:
    """What both facades share: construction, the closed state, request preparation."""

    def __init__(
        self,
        cluster_id: int = 0,
        replica_addresses: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        clock: Callable[[], int] | None = None,
        batch_events_max: int = BATCH_EVENTS_MAX,
        fsync: bool = True,
        replica: Replica | None = None,
    ) -> None:
        # `replica_addresses` is accepted (and ignored) so that construction code written for the
        # official client works unchanged.
        del replica_addresses
        if replica is None:
            replica = Replica(
                cluster_id=cluster_id,
                path=path,
                clock=clock,
                batch_events_max=batch_events_max,
                fsync=fsync,
            )
            self._owns_replica = True
        else:
            self._owns_replica = False
        self._replica = replica
        self._closed = False

    @property
    def replica(self) -> Replica:
        return self._replica

    def _check_open(self) -> Replica:
        if self._closed:
            raise ClientClosedError()
        return self._replica

    def _request(self, operation: _Operation[_A, _E, Any], argument: _A) -> tuple[_E, int]:
        """Build a request as the official client does, in its order: integer checks while it
        builds the request, then a closed client (its submit refuses it), and only then size
        limits (reported by its I/O thread). So a closed client raises ClientClosedError even for
        an oversized batch or query limit. Returns what the replica gets and its count.
        """
        request = operation.check(argument)
        replica = self._check_open()
        count = operation.count(request)
        if count > (QUERY_LIMIT_MAX if operation.query else replica.batch_events_max):
            raise TooMuchDataError()
        return request, count

    def _close_replica(self) -> None:
        self._closed = True
        if self._owns_replica:
            self._replica.close()


class ClientSync(_Base):
    """A drop-in for ``tigerbeetle.ClientSync`` backed by the embedded engine.

    ``ClientSync(cluster_id=0, path=None)`` keeps state in memory; with a path, every acknowledged
    write is in an fsynced journal and survives a restart. ``clock`` injects the engine clock
    (nanoseconds since the epoch), e.g. a ``ManualClock`` for expiry tests.
    """

    def _submit(self, operation: _Operation[_A, _E, _R], argument: _A) -> _R:
        """Run one operation of the table now, on the calling thread, under the engine lock."""
        request, _ = self._request(operation, argument)
        replica = self._check_open()
        run = operation.run
        return replica.run(lambda records: run(replica, request, records))

    def create_accounts(self, accounts: list[Account]) -> list[CreateAccountResult]:
        return self._submit(_CREATE_ACCOUNTS, accounts)

    def create_transfers(self, transfers: list[Transfer]) -> list[CreateTransferResult]:
        return self._submit(_CREATE_TRANSFERS, transfers)

    def lookup_accounts(self, accounts: list[int]) -> list[Account]:
        return self._submit(_LOOKUP_ACCOUNTS, accounts)

    def lookup_transfers(self, transfers: list[int]) -> list[Transfer]:
        return self._submit(_LOOKUP_TRANSFERS, transfers)

    def get_account_transfers(self, filter: AccountFilter) -> list[Transfer]:
        return self._submit(_GET_ACCOUNT_TRANSFERS, filter)

    def get_account_balances(self, filter: AccountFilter) -> list[AccountBalance]:
        return self._submit(_GET_ACCOUNT_BALANCES, filter)

    def query_accounts(self, query_filter: QueryFilter) -> list[Account]:
        return self._submit(_QUERY_ACCOUNTS, query_filter)

    def query_transfers(self, query_filter: QueryFilter) -> list[Transfer]:
        return self._submit(_QUERY_TRANSFERS, query_filter)

    def close(self) -> None:
        self._close_replica()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()


class ClientAsync(_Base):
    """A drop-in for ``tigerbeetle.ClientAsync`` backed by the embedded engine.

    Work that could hold the event loop (a large batch, an fsync) runs on the engine's worker
    thread; the coroutine awaits it.
    """

    async def _submit(self, operation: _Operation[_A, _E, _R], argument: _A) -> _R:
        """Run one operation of the table: inline when that is cheap, else on the worker thread."""
        request, count = self._request(operation, argument)
        replica = self._check_open()
        run = operation.run

        def op(records: list[bytes]) -> _R:
            return run(replica, request, records)

        if not replica.durable and count <= _INLINE_EVENTS_MAX and replica.try_lock():
            # Nothing to fsync and little to do: cheaper than a hop to the worker thread.
            try:
                records: list[bytes] = []
                return op(records)
            finally:
                replica.unlock()
        return await asyncio.wrap_future(replica.submit(op))

    async def create_accounts(self, accounts: list[Account]) -> list[CreateAccountResult]:
        return await self._submit(_CREATE_ACCOUNTS, accounts)

    async def create_transfers(self, transfers: list[Transfer]) -> list[CreateTransferResult]:
        return await self._submit(_CREATE_TRANSFERS, transfers)

    async def lookup_accounts(self, accounts: list[int]) -> list[Account]:
        return await self._submit(_LOOKUP_ACCOUNTS, accounts)

    async def lookup_transfers(self, transfers: list[int]) -> list[Transfer]:
        return await self._submit(_LOOKUP_TRANSFERS, transfers)

    async def get_account_transfers(self, filter: AccountFilter) -> list[Transfer]:
        return await self._submit(_GET_ACCOUNT_TRANSFERS, filter)

    async def get_account_balances(self, filter: AccountFilter) -> list[AccountBalance]:
        return await self._submit(_GET_ACCOUNT_BALANCES, filter)

    async def query_accounts(self, query_filter: QueryFilter) -> list[Account]:
        return await self._submit(_QUERY_ACCOUNTS, query_filter)

    async def query_transfers(self, query_filter: QueryFilter) -> list[Transfer]:
        return await self._submit(_QUERY_TRANSFERS, query_filter)

    async def close(self) -> None:
        if self._owns_replica and self._replica._executor is not None:
            # Let queued work finish off the loop before the engine shuts its worker down.
            await asyncio.get_running_loop().run_in_executor(None, self._close_replica)
        else:
            self._close_replica()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close()
