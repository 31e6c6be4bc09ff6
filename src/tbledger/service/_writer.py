"""The write pipeline: intents down to the engine once, outcomes back once (DESIGN §3 and §6).

A call's intents are claimed (`Claims`), queued, and taken by a writer with every other queued
call that fits in one engine request: the group's intents are persisted in one INSERT with their
``submitted`` events, submitted as one engine request through the gateway, and their outcomes
recorded in one INSERT (`Recorder`). Groups are pipelined: once a group is persisted the next may
start persisting while this one is with the engine, at most ``WRITE_GROUPS_IN_FLIGHT_MAX`` at a
time. A replay (the same id or idempotency key with the same request) gets the original outcome:
waited for while its original is in flight, read from the store once recorded, or settled by
recovery when it never was; the same key or id with another request is a conflict. A caller's
deadline covers the whole call and never cancels the write: past it the caller is told the
outcome is unknown while the writer carries on and records it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import tigerbeetle as tb

from tbledger.config import Settings
from tbledger.errors import (
    CircuitOpenError,
    DuplicateRecordError,
    IdempotencyConflictError,
    OutcomeUnknownError,
    TigerBeetleError,
    ValidationError,
)
from tbledger.events import EventBus, LedgerEvent
from tbledger.ids import format_id
from tbledger.limits import (
    BATCH_EVENTS_MAX,
    CALL_DEADLINE_SLACK_S,
    WRITE_GROUPS_IN_FLIGHT_MAX,
    WRITE_KEY_LOOKUP_EVENTS_MIN,
)
from tbledger.model import TransferIntent, request_hash_of
from tbledger.resilience import CircuitState
from tbledger.service._accounts import AccountStatuses
from tbledger.service._claims import Claims
from tbledger.service._gateway import EngineGateway
from tbledger.service._intents import link_chain
from tbledger.service._outcomes import (
    ACCOUNT_FROZEN,
    CLOSED_STATUSES,
    INSUFFICIENT_STATUSES,
    outcome_kind,
    result_from_event,
    status_name,
    transfer_error,
)
from tbledger.service._recorder import Recorder, own_outcome
from tbledger.service._recovery import Recovery
from tbledger.service._values import TransferResult
from tbledger.store import Store

__all__ = ["Writer"]

log = logging.getLogger("tbledger.service")

_T = TypeVar("_T")
_S = tb.CreateTransferStatus
# A flag value as a plain int: IntFlag arithmetic costs microseconds per operation.
_LINKED = int(tb.TransferFlags.LINKED)


class Writer:
    """Writes transfers: claims, the writer queue and its groups, persist, submit, record."""

    def __init__(
        self,
        *,
        store: Store,
        gateway: EngineGateway,
        bus: EventBus,
        settings: Settings,
        claims: Claims,
        recorder: Recorder,
        recovery: Recovery,
        statuses: AccountStatuses,
    ) -> None:
        self._store = store
        self._gateway = gateway
        self._bus = bus
        self._audit = settings.audit
        self._claims = claims
        self._recorder = recorder
        self._recovery = recovery
        self._statuses = statuses
        # Transfers the writer is recording as refused by the open circuit: their callers are
        # told so, not "unknown" (see `_submit`).
        self._refusing: set[int] = set()
        # Calls waiting for a writer (`_enqueue`); the writer tasks; whether one of them is
        # taking a group or persisting its intents (the next group waits for that step only).
        self._queue: collections.deque[_WriteCall] = collections.deque()
        self._writers: set[asyncio.Task[None]] = set()
        self._persisting = False
        # Work no caller waits for: late outcomes, replays whose caller stopped waiting.
        self._background: set[asyncio.Task[Any]] = set()

    # -- calls ----------------------------------------------------------------------------------

    async def write(self, intents: list[TransferIntent], *, atomic: bool) -> list[TransferResult]:
        """Persist intents, submit them, record outcomes; one result per intent, in order."""
        if not intents:
            return []
        if atomic:
            if len(intents) > BATCH_EVENTS_MAX:
                raise ValidationError(f"an atomic batch holds at most {BATCH_EVENTS_MAX} transfers")
            intents = link_chain(intents)
        if not atomic and any(intent.flags & _LINKED for intent in intents):
            raise ValidationError("use atomic=True to link transfers")
        results: list[TransferResult] = []
        for start in range(0, len(intents), BATCH_EVENTS_MAX):
            results.extend(await self._write_chunk(intents[start : start + BATCH_EVENTS_MAX]))
        return results

    async def write_one(self, intent: TransferIntent) -> TransferResult:
        """Write one transfer; raise the typed error if the engine refuses it."""
        (result,) = await self.write([intent], atomic=False)
        if result.ok:
            return result
        raise await self._error_for(result, intent)

    async def settle(self) -> None:
        """Wait for the background work in flight now: late outcomes being recorded, replays
        whose caller stopped waiting (the service is closing)."""
        if self._background:
            await asyncio.gather(*tuple(self._background), return_exceptions=True)

    async def _error_for(self, result: TransferResult, intent: TransferIntent) -> TigerBeetleError:
        status = _S.__members__.get(result.status.upper())
        available: int | None = None
        if status in INSUFFICIENT_STATUSES:
            side_id = (
                intent.debit_account_id
                if status == _S.EXCEEDS_CREDITS
                else intent.credit_account_id
            )
            with contextlib.suppress(Exception):
                accounts = await self._gateway.lookup_accounts([side_id])
                if accounts:
                    a = accounts[0]
                    if status == _S.EXCEEDS_CREDITS:
                        available = a.credits_posted - a.debits_posted - a.debits_pending
                    else:
                        available = a.debits_posted - a.credits_posted - a.credits_pending
        frozen = False
        if status in CLOSED_STATUSES:
            frozen = (
                await self._statuses.refusal_code(
                    result.status,
                    debit_account_id=intent.debit_account_id,
                    credit_account_id=intent.credit_account_id,
                )
                == ACCOUNT_FROZEN
            )
        return transfer_error(result, intent, available, frozen=frozen)

    async def _write_chunk(self, intents: list[TransferIntent]) -> list[TransferResult]:
        keyed = any(i.idempotency_key is not None for i in intents)
        if keyed and not self._audit:
            raise ValidationError("idempotency keys need the audit trail (audit=True)")
        breaker = self._gateway.breaker
        if breaker.state is CircuitState.OPEN:
            # Fail before persisting anything: nothing would be submitted.
            await breaker.before_call()
        if keyed:
            intents = [_hashed(i) for i in intents]
            if len(intents) >= WRITE_KEY_LOOKUP_EVENTS_MIN:
                # A large keyed call is looked up before it is queued: a replay is answered here,
                # from the store in bulk, and never takes the writer that persists every other
                # key's intents.
                twins = await self._stored_twins(intents)
                if any(twin is not None for twin in twins):
                    return await self._write_replayed(intents, twins)
        # Claim the ids before the intents become visible in the store, so that a concurrent call
        # with the same id waits for this one instead of submitting or resolving it again.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[TransferResult]] = loop.create_future()
        own, claimed = self._claims.claim(intents, future)
        # The caller's deadline covers the whole call: queueing behind another group, the store
        # and the engine. Past it the caller gets OutcomeUnknownError while the writer carries
        # on; the ids stay claimed until the writer settles them, so a retry with the same id or
        # key waits for that outcome instead of submitting the transfer again.
        deadline = loop.time() + self._gateway.timeout_s + CALL_DEADLINE_SLACK_S
        enqueued = False
        try:
            if own and claimed and intents[0].chain_id is not None:
                raise IdempotencyConflictError(
                    "part of this atomic batch is being submitted by another call",
                    code="idempotency_conflict",
                )
            for intent, entry in claimed:
                _check_same_request(intent, entry.intent)
            if not claimed:
                self._enqueue(own, future)
                enqueued = True
                return await _until(future, deadline, own)
            outcomes: dict[int, TransferResult] = {}
            if own:
                self._enqueue(own, future)
                enqueued = True
                # In order; a replayed key's result carries the original transfer's id.
                results = await _until(future, deadline, own)
                for intent, result in zip(own, results, strict=True):
                    outcomes[intent.id] = result
            for intent, entry in claimed:
                result = (await _until(entry.future, deadline, [intent]))[entry.index]
                outcomes[intent.id] = replace(result, replayed=True)
            return [outcomes[i.id] for i in intents]
        except OutcomeUnknownError:
            if enqueued and not future.done() and own[0].id in self._refusing:
                # The writer is recording these as refused by the open circuit (never submitted):
                # that, not "unknown", is what this caller must be told.
                await asyncio.wait({future})
            if enqueued and future.done() and not future.cancelled() and future.exception():
                raise future.exception() from None  # type: ignore[misc]
            self._claims.abandon(own, future)
            own = []
            raise
        except BaseException as exc:
            if enqueued and not future.done():
                self._claims.abandon(own, future)
                own = []
            else:
                _fail(future, exc)
            raise
        finally:
            self._claims.release(own, future)

    # -- the writer queue -----------------------------------------------------------------------

    def _enqueue(
        self, intents: list[TransferIntent], future: asyncio.Future[list[TransferResult]]
    ) -> None:
        """Queue one call's intents for a writer; concurrent calls are written as one group.

        A writer takes every queued call that fits in one engine request, persists the group's
        intents in one INSERT, submits them as one engine request and records the outcomes in
        one INSERT (DESIGN §6). Groups are pipelined: once a group's intents are persisted, the
        next group may start persisting while this one is with the engine (at most
        WRITE_GROUPS_IN_FLIGHT_MAX groups in flight). `future` is settled by the writer; a caller
        that stops waiting does not stop the write.
        """
        self._queue.append(_WriteCall(intents, future))
        self._start_writer()

    def _start_writer(self) -> None:
        """Start a writer for the queue unless one is already taking or persisting a group."""
        if self._persisting or not self._queue:
            return
        if len(self._writers) >= WRITE_GROUPS_IN_FLIGHT_MAX:
            return  # a writer finishing its group looks at the queue again
        self._persisting = True
        task = asyncio.create_task(self._drain_writes())
        self._writers.add(task)
        task.add_done_callback(self._writer_done)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        self._writers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a transfer writer failed", exc_info=task.exception())
        self._start_writer()

    def _persisted(self, stage: _Stage) -> None:
        """A writer's intents are persisted (or failed to be): the next group may start."""
        if stage.persisted:
            return
        stage.persisted = True
        self._persisting = False
        self._start_writer()

    async def _drain_writes(self) -> None:
        """Write one group of queued calls (a writer per group; see `_enqueue`)."""
        queue = self._queue
        stage = _Stage()
        try:
            call = queue.popleft()
        except IndexError:
            self._persisted(stage)
            return
        group = [call]
        size = len(call.intents)
        while queue and size + len(queue[0].intents) <= BATCH_EVENTS_MAX:
            call = queue.popleft()
            size += len(call.intents)
            group.append(call)
        try:
            if not self._audit:
                self._persisted(stage)  # nothing to persist
                await self._write_group_unaudited(group)
            elif len(group) == 1:
                await _settle(group[0].future, self._write_isolated(group[0].intents, stage))
            else:
                await self._write_group(group, stage)
        finally:
            self._persisted(stage)

    # -- groups ---------------------------------------------------------------------------------

    async def _write_group(self, group: list[_WriteCall], stage: _Stage) -> None:
        """Several calls' intents as one INSERT, one engine request and one outcome INSERT."""
        intents = [i for call in group for i in call.intents]
        try:
            await self._store.insert_intents(intents, returning=False)
        except DuplicateRecordError:
            # A call in the group replays a stored id or key: settle each call on its own.
            for call in group:
                await _settle(call.future, self._write_isolated(call.intents, stage))
            return
        except Exception as exc:
            for call in group:
                _fail(call.future, exc)
            return
        self._persisted(stage)
        try:
            results = await self._submit(intents)
        except Exception as exc:
            for call in group:
                _fail(call.future, exc)
            return
        _hand_out(group, results)

    async def _write_group_unaudited(self, group: list[_WriteCall]) -> None:
        """Audit off: straight to the engine; outcomes are returned and emitted, not stored."""
        intents = group[0].intents if len(group) == 1 else [i for c in group for i in c.intents]
        try:
            engine_results = await self._gateway.create_transfers(
                [i.to_transfer() for i in intents]
            )
        except Exception as exc:
            for call in group:
                _fail(call.future, exc)
            return
        self._gateway.observe_timestamps(engine_results)
        results = [
            TransferResult(i.id, status_name(r.status), r.timestamp)
            for i, r in zip(intents, engine_results, strict=True)
        ]
        if self._bus.listening:
            self._bus.emit(
                [
                    LedgerEvent(outcome_kind(i, r)[1], i.id, {"status": r.status})
                    for i, r in zip(intents, results, strict=True)
                ]
            )
        _hand_out(group, results)

    async def _write_isolated(
        self, intents: list[TransferIntent], stage: _Stage
    ) -> list[TransferResult]:
        """One call on its own: persist (telling replays apart), submit, record."""
        fresh, replays = await self._persist(intents)
        self._persisted(stage)
        outcomes: dict[int, TransferResult] = {}
        if fresh:
            if len(fresh) == len(intents):
                return await self._submit(fresh)
            for result in await self._submit(fresh):
                outcomes[result.id] = result
        if replays:
            for (intent, _), result in zip(replays, await self._replays(replays), strict=True):
                outcomes[intent.id] = result
        return [outcomes[i.id] for i in intents]

    # -- persist --------------------------------------------------------------------------------

    async def _persist(
        self, intents: list[TransferIntent]
    ) -> tuple[list[TransferIntent], list[tuple[TransferIntent, TransferIntent]]]:
        """Insert the intents; split out the ones that are replays of stored intents.

        A replay is an intent whose id or idempotency key is already stored with the same
        request; the same key or id with a different request is an `IdempotencyConflictError`.
        """
        store = self._store
        try:
            await store.insert_intents(intents, returning=False)
            return intents, []
        except DuplicateRecordError:
            pass
        fresh: list[TransferIntent] = []
        replays: list[tuple[TransferIntent, TransferIntent]] = []
        for intent, previous in zip(intents, await self._stored_twins(intents), strict=True):
            if previous is None:
                fresh.append(intent)
            else:
                replays.append((intent, previous))
        if fresh and replays and any(i.chain_id is not None for i in intents):
            raise IdempotencyConflictError(
                "part of this atomic batch was already submitted with other transfers",
                code="idempotency_conflict",
            )
        if fresh:
            try:
                await store.insert_intents(fresh, returning=False)
            except DuplicateRecordError as exc:
                raise IdempotencyConflictError(
                    "a concurrent request took one of these ids or keys; retry the call",
                    code="idempotency_conflict",
                ) from exc
        return fresh, replays

    async def _stored_twins(self, intents: Sequence[TransferIntent]) -> list[TransferIntent | None]:
        """The stored intent each of these replays (same key, else same id), or None; or a
        conflict. One query by key and one by id for the whole call, however large."""
        keys = [i.idempotency_key for i in intents if i.idempotency_key is not None]
        by_key = await self._store.find_by_idempotency_keys(keys) if keys else {}
        twins: list[TransferIntent | None] = []
        for intent in intents:
            key = intent.idempotency_key
            previous = None if key is None else by_key.get(key)
            if previous is not None and previous.request_hash != intent.request_hash:
                raise IdempotencyConflictError(
                    f"idempotency key {key!r} was used for another request",
                    code="idempotency_conflict",
                    details={"idempotency_key": key},
                )
            twins.append(previous)
        unmatched = [i.id for i, twin in zip(intents, twins, strict=True) if twin is None]
        by_id = await self._store.get_intents(unmatched) if unmatched else {}
        if by_id:
            for k, intent in enumerate(intents):
                previous = by_id.get(intent.id)
                if twins[k] is None and previous is not None:
                    _check_same_request(intent, previous)
                    twins[k] = previous
        return twins

    # -- replays --------------------------------------------------------------------------------

    async def _write_replayed(
        self, intents: list[TransferIntent], twins: list[TransferIntent | None]
    ) -> list[TransferResult]:
        """A call found to replay stored transfers before it was queued: the replays are answered
        from the store in bulk, outside the writer, within the call's deadline; the rest is
        written as a call of its own. Results in the call's order."""
        replays = [(i, twin) for i, twin in zip(intents, twins, strict=True) if twin is not None]
        fresh = [i for i, twin in zip(intents, twins, strict=True) if twin is None]
        if fresh and any(i.chain_id is not None for i in intents):
            raise IdempotencyConflictError(
                "part of this atomic batch was already submitted with other transfers",
                code="idempotency_conflict",
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._gateway.timeout_s + CALL_DEADLINE_SLACK_S
        # A caller that stops waiting (the deadline, a cancellation) leaves the work running: it
        # may be settling unresolved originals with the engine, which must not be cut short.
        work = asyncio.ensure_future(self._replays(replays))
        self._background.add(work)
        work.add_done_callback(_retire(self._background))
        replayed = await _until(work, deadline, [previous for _, previous in replays])
        outcomes = {i.id: r for (i, _), r in zip(replays, replayed, strict=True)}
        if fresh:
            for intent, result in zip(fresh, await self._write_chunk(fresh), strict=True):
                outcomes[intent.id] = result
        return [outcomes[i.id] for i in intents]

    async def _replays(
        self, replays: Sequence[tuple[TransferIntent, TransferIntent]]
    ) -> list[TransferResult]:
        """The original outcomes of replayed requests, in order: waiting for those still in
        flight, then one read of the latest events of the rest (their histories only where the
        latest is not the outcome of creating the transfer), then settling in one go those that
        never had an outcome (a crash, a deadline), with the same ids and fields."""
        found: dict[int, TransferResult] = {}
        stored: dict[int, TransferIntent] = {}
        for intent, previous in replays:
            waiting = self._claims.get(previous.id)
            # A claim holding this very intent is this call's own (same id: the original
            # submission is over); another call's claim is waited for.
            if waiting is not None and waiting.intent is not intent:
                result = (await asyncio.shield(waiting.future))[waiting.index]
                found[previous.id] = replace(result, replayed=True)
            else:
                stored.setdefault(previous.id, previous)
        stored_ids = [t for t in stored if t not in found]
        latest = await self._store.current_status(stored_ids) if stored_ids else {}
        # The latest event is usually the transfer's own outcome; a hold resolved since (or an
        # outcome recorded out of order) needs its history, read for all such at once.
        own = {
            t: e
            for t in stored_ids
            if (e := latest.get(t)) is not None and own_outcome([e]) is not None
        }
        others = [t for t in stored_ids if t not in own]
        if others:
            histories = await self._store.transfer_audits(others)
            for t in others:
                event = own_outcome(histories.get(t, []))
                if event is not None:
                    own[t] = event
        for t, event in own.items():
            found[t] = result_from_event(t, event, replayed=True)
        unresolved = [stored[t] for t in stored_ids if t not in own]
        if unresolved:
            for result in await self._recovery.resolve(unresolved):
                found[result.id] = replace(result, replayed=True)
        return [found[previous.id] for _, previous in replays]

    # -- submit ---------------------------------------------------------------------------------

    async def _submit(self, intents: list[TransferIntent]) -> list[TransferResult]:
        """Submit persisted intents and record their outcomes (steps 3-5)."""
        transfers = [i.to_transfer() for i in intents]

        def late(task: asyncio.Future[list[tb.CreateTransferResult]]) -> None:
            if task.cancelled() or task.exception() is not None:
                return  # left for recovery
            # Recovery or a replay may have recorded the outcome meanwhile: record the rest only.
            self._spawn(self._recorder.record(intents, task.result(), only_unresolved=True))

        try:
            engine_results = await self._gateway.create_transfers(transfers, on_late_result=late)
        except CircuitOpenError as exc:
            # The breaker refused before submitting: persisted but never submitted. Say so, so
            # that recovery does not submit it later, for the callers who are told so; a caller
            # that stopped waiting was told "unknown" instead, so its transfers stay without an
            # outcome and recovery submits them once the circuit closes.
            told = [i for i in intents if not self._claims.abandoned(i.id)]
            unknown = [i for i in intents if self._claims.abandoned(i.id)]
            refusing = {i.id for i in told}
            self._refusing.update(refusing)
            try:
                if told:
                    await self._recorder.record_not_submitted(told)
                if unknown:
                    await self._recorder.record_unknown(unknown, exc)
            finally:
                self._refusing.difference_update(refusing)
            raise
        except (OutcomeUnknownError, tb.ClientEvictedError, tb.ClientClosedError) as exc:
            await self._recorder.record_unknown(intents, exc)
            raise
        return await self._recorder.record(intents, engine_results)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


# -- helpers --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Stage:
    """Where one writer is: `persisted` once its group's intents are in the store."""

    persisted: bool = False


@dataclass(frozen=True, slots=True)
class _WriteCall:
    """One call's intents waiting for the writer, and the future of their results."""

    intents: list[TransferIntent]
    future: asyncio.Future[list[TransferResult]]


def _hashed(intent: TransferIntent) -> TransferIntent:
    if intent.idempotency_key is None or intent.request_hash is not None:
        return intent
    return replace(intent, request_hash=request_hash_of(intent))


def _check_same_request(intent: TransferIntent, previous: TransferIntent) -> None:
    """Refuse an id reused for a different transfer (IdempotencyConflictError)."""
    if previous.to_transfer() != intent.to_transfer():
        raise IdempotencyConflictError(
            f"transfer id {format_id(intent.id)} was used for another transfer",
            code="idempotency_conflict",
            details={"transfer_id": format_id(intent.id)},
        )


async def _until(
    future: asyncio.Future[_T], deadline: float, intents: Sequence[TransferIntent]
) -> _T:
    """Wait for `future` until the loop time `deadline`, never cancelling it; past the deadline,
    `OutcomeUnknownError` naming the intents' transfers.

    A private waiter woken by the future or a timer: what `asyncio.wait` does, at half its cost
    (it runs once per call on the hot path). A cancelled caller cancels only the waiter.
    """
    if not future.done():
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        wake = functools.partial(_wake, waiter)
        future.add_done_callback(wake)
        timer = loop.call_at(deadline, wake)
        try:
            await waiter
        finally:
            timer.cancel()
            future.remove_done_callback(wake)
    if not future.done():
        raise OutcomeUnknownError(
            "the deadline passed before the transfer's outcome was known; it may still be "
            "applied: retry with the same id or idempotency key",
            transfer_ids=[i.id for i in intents],
        )
    return future.result()


def _retire(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    """A done callback that forgets a finished task and observes its exception (a caller that
    stopped waiting for it never reads it)."""

    def retire(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()

    return retire


def _wake(waiter: asyncio.Future[None], *_: object) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
        future.exception()  # observed here: whoever waits on it re-raises it


def _hand_out(group: Sequence[_WriteCall], results: list[TransferResult]) -> None:
    """Give each call of a group its results, in its order (the group's order is the calls')."""
    if len(group) == 1:
        if not group[0].future.done():
            group[0].future.set_result(results)
        return
    start = 0
    for call in group:
        end = start + len(call.intents)
        if not call.future.done():
            call.future.set_result(results[start:end])
        start = end


async def _settle(future: asyncio.Future[_T], work: Awaitable[_T]) -> None:
    """Run `work` and hand its result or exception to `future`."""
    try:
        result = await work
    except Exception as exc:
        _fail(future, exc)
    else:
        if not future.done():
            future.set_result(result)
