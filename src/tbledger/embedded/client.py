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
from types import TracebackType
from typing import Any, Self, TypeVar

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
    StateMachine,
    TransferEvent,
    to_results_accounts,
    to_results_transfers,
)
from tbledger.errors import ConfigurationError, JournalError
from tbledger.limits import BATCH_EVENTS_MAX, QUERY_LIMIT_MAX, U128_MAX

__all__ = ["ClientAsync", "ClientSync", "ManualClock", "Replica"]

_R = TypeVar("_R")
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
                if record.operation == jr.OP_CREATE_ACCOUNTS:
                    sm.create_accounts(jr.unpack_accounts(record.body), record.timestamp_ns)
                elif record.operation == jr.OP_CREATE_TRANSFERS:
                    sm.create_transfers(jr.unpack_transfers(record.body), record.timestamp_ns)
                else:
                    sm.pulse(record.timestamp_ns)
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

    # The operations below run under the engine lock and append the journal records that must be
    # durable before their results are released; `run` and `submit` commit those records.

    def create_accounts_op(
        self, events: list[AccountEvent], records: list[bytes]
    ) -> list[CreateAccountResult]:
        self.check_usable()
        self._pulse(records)
        now = self._now()
        pairs = self.sm.create_accounts(events, now)
        if self.journal is not None and events:
            records.append(jr.encode_record(jr.OP_CREATE_ACCOUNTS, now, jr.pack_accounts(events)))
        return to_results_accounts(pairs)

    def create_transfers_op(
        self, events: list[TransferEvent], records: list[bytes]
    ) -> list[CreateTransferResult]:
        self.check_usable()
        self._pulse(records)
        now = self._now()
        pairs = self.sm.create_transfers(events, now)
        if self.journal is not None and events:
            body = jr.pack_transfers(events)
            records.append(jr.encode_record(jr.OP_CREATE_TRANSFERS, now, body))
        return to_results_transfers(pairs)

    def read_op(self, read: Callable[[StateMachine], _R], records: list[bytes]) -> _R:
        self.check_usable()
        self._pulse(records)
        self.sm.tick(self._now())
        return read(self.sm)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._lock:
            if self.journal is not None:
                self.journal.close()
                self.journal = None


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

    # The official client's order: integer checks while it builds the request, then a closed
    # client (submit refuses it), and only then size limits (reported by its I/O thread). So a
    # closed client raises ClientClosedError even for an oversized batch or query limit.

    def _accounts(self, accounts: Sequence[Account]) -> list[AccountEvent]:
        events = [account_event(a) for a in accounts]
        self._check_open()
        if len(events) > self._replica.batch_events_max:
            raise TooMuchDataError()
        return events

    def _transfers(self, transfers: Sequence[Transfer]) -> list[TransferEvent]:
        events = [transfer_event(t) for t in transfers]
        self._check_open()
        if len(events) > self._replica.batch_events_max:
            raise TooMuchDataError()
        return events

    def _ids(self, ids: Sequence[int]) -> list[int]:
        checked = _validate_ids(ids)
        self._check_open()
        if len(checked) > self._replica.batch_events_max:
            raise TooMuchDataError()
        return checked

    def _check_account_filter(self, f: AccountFilter) -> None:
        _slow_fields(f, _ACCOUNT_FILTER_FIELDS)
        self._check_open()
        if f.limit > QUERY_LIMIT_MAX:
            raise TooMuchDataError()

    def _check_query_filter(self, f: QueryFilter) -> None:
        _slow_fields(f, _QUERY_FILTER_FIELDS)
        self._check_open()
        if f.limit > QUERY_LIMIT_MAX:
            raise TooMuchDataError()

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

    def _call(self, op: Callable[[list[bytes]], _R]) -> _R:
        return self._check_open().run(op)

    def create_accounts(self, accounts: list[Account]) -> list[CreateAccountResult]:
        events = self._accounts(accounts)
        return self._call(lambda r: self._replica.create_accounts_op(events, r))

    def create_transfers(self, transfers: list[Transfer]) -> list[CreateTransferResult]:
        events = self._transfers(transfers)
        return self._call(lambda r: self._replica.create_transfers_op(events, r))

    def lookup_accounts(self, accounts: list[int]) -> list[Account]:
        ids = self._ids(accounts)
        return self._call(lambda r: self._replica.read_op(lambda sm: sm.lookup_accounts(ids), r))

    def lookup_transfers(self, transfers: list[int]) -> list[Transfer]:
        ids = self._ids(transfers)
        return self._call(lambda r: self._replica.read_op(lambda sm: sm.lookup_transfers(ids), r))

    def get_account_transfers(self, filter: AccountFilter) -> list[Transfer]:
        self._check_account_filter(filter)
        return self._call(
            lambda r: self._replica.read_op(lambda sm: sm.get_account_transfers(filter), r)
        )

    def get_account_balances(self, filter: AccountFilter) -> list[AccountBalance]:
        self._check_account_filter(filter)
        return self._call(
            lambda r: self._replica.read_op(lambda sm: sm.get_account_balances(filter), r)
        )

    def query_accounts(self, query_filter: QueryFilter) -> list[Account]:
        self._check_query_filter(query_filter)
        return self._call(
            lambda r: self._replica.read_op(lambda sm: sm.query_accounts(query_filter), r)
        )

    def query_transfers(self, query_filter: QueryFilter) -> list[Transfer]:
        self._check_query_filter(query_filter)
        return self._call(
            lambda r: self._replica.read_op(lambda sm: sm.query_transfers(query_filter), r)
        )

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

    async def _call(self, op: Callable[[list[bytes]], _R], events: int) -> _R:
        replica = self._check_open()
        if not replica.durable and events <= _INLINE_EVENTS_MAX and replica.try_lock():
            # Nothing to fsync and little to do: cheaper than a hop to the worker thread.
            try:
                records: list[bytes] = []
                return op(records)
            finally:
                replica.unlock()
        return await asyncio.wrap_future(replica.submit(op))

    async def create_accounts(self, accounts: list[Account]) -> list[CreateAccountResult]:
        events = self._accounts(accounts)
        return await self._call(lambda r: self._replica.create_accounts_op(events, r), len(events))

    async def create_transfers(self, transfers: list[Transfer]) -> list[CreateTransferResult]:
        events = self._transfers(transfers)
        return await self._call(lambda r: self._replica.create_transfers_op(events, r), len(events))

    async def lookup_accounts(self, accounts: list[int]) -> list[Account]:
        ids = self._ids(accounts)
        return await self._call(
            lambda r: self._replica.read_op(lambda sm: sm.lookup_accounts(ids), r), len(ids)
        )

    async def lookup_transfers(self, transfers: list[int]) -> list[Transfer]:
        ids = self._ids(transfers)
        return await self._call(
            lambda r: self._replica.read_op(lambda sm: sm.lookup_transfers(ids), r), len(ids)
        )

    async def get_account_transfers(self, filter: AccountFilter) -> list[Transfer]:
        self._check_account_filter(filter)
        return await self._call(
            lambda r: self._replica.read_op(lambda sm: sm.get_account_transfers(filter), r),
            filter.limit,
        )

    async def get_account_balances(self, filter: AccountFilter) -> list[AccountBalance]:
        self._check_account_filter(filter)
        return await self._call(
            lambda r: self._replica.read_op(lambda sm: sm.get_account_balances(filter), r),
            filter.limit,
        )

    async def query_accounts(self, query_filter: QueryFilter) -> list[Account]:
        self._check_query_filter(query_filter)
        return await self._call(
            lambda r: self._replica.read_op(lambda sm: sm.query_accounts(query_filter), r),
            query_filter.limit,
        )

    async def query_transfers(self, query_filter: QueryFilter) -> list[Transfer]:
        self._check_query_filter(query_filter)
        return await self._call(
            lambda r: self._replica.read_op(lambda sm: sm.query_transfers(query_filter), r),
            query_filter.limit,
        )

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
