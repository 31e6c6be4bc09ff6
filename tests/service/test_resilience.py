"""Deadlines and the circuit breaker: bounded waiting, and never a transfer applied twice.

A request that outlives `request_timeout_ms` is not cancelled (the engine may apply it anyway):
the caller gets `OutcomeUnknownError`, the intent gets an ``outcome_unknown`` event, and the late
answer is recorded when it comes — or `recover()` settles it by asking the engine. After
`breaker_failure_threshold` consecutive engine faults the breaker opens: calls fail fast with
`CircuitOpenError` and submit nothing, until `breaker_reset_timeout_s` has passed and a health
probe succeeds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import tigerbeetle as tb

from tbledger.errors import CircuitOpenError, OutcomeUnknownError
from tbledger.limits import CALL_DEADLINE_SLACK_S
from tbledger.resilience import CircuitState
from tbledger.service import LedgerService
from tbledger.store import EventKind, TransferIntent
from tests.service.conftest import Ledger
from tests.service.helpers import EngineWrapper, Recorder, deposit, one_store, request, wait_until
from tests.support.book import ServiceBook, open_service_book

DEADLINE_MS = 100
# The circuit breaker's tests need requests to fail (a hung engine, past the deadline) and then
# writes to succeed on the same service once the circuit closes; a write persists its intent and
# its outcome within the call's deadline, which a loaded machine can take longer than 100 ms to
# do. How long the deadline is is not what those tests are about.
BREAKER_DEADLINE_MS = 1000


async def kinds(service: LedgerService, transfer_id: int) -> list[str]:
    return [e.kind.value for e in await service.get_transfer_audit(transfer_id)]


async def funded(ledger: Ledger) -> ServiceBook:
    book = await open_service_book(ledger.service)
    await deposit(ledger.service, book, book.alice, 100)
    return book


# -- deadlines -----------------------------------------------------------------------------------


async def test_a_late_answer_raises_outcome_unknown_and_is_recorded_when_it_comes(
    ledger: Ledger,
) -> None:
    book = await funded(ledger)
    slow = EngineWrapper(ledger.client)
    async with ledger.open_service(engine=slow, request_timeout_ms=DEADLINE_MS) as service:
        seen = Recorder()
        service.on("transfer_posted", seen)
        # Applied at once, answered only when the test says: the call cannot have waited for
        # the answer, however slow the machine, because there is none until after it returns.
        slow.answer_gate = asyncio.Event()
        transfer_id = tb.id()
        with pytest.raises(OutcomeUnknownError) as caught:
            await service.create_transfer(
                request(book.alice, book.bob, 10, transfer_id=transfer_id)
            )
        assert slow.applied == 1
        assert caught.value.transfer_ids == [transfer_id]
        assert caught.value.code == "outcome_unknown"
        assert await kinds(service, transfer_id) == ["submitted", "outcome_unknown"]
        assert service.stats["outcome_unknown"] == 1
        slow.answer_gate.set()  # the late answer comes
        await wait_until(lambda: _last_is(service, transfer_id, "posted"))
        assert await kinds(service, transfer_id) == ["submitted", "outcome_unknown", "posted"]
        assert seen.of(transfer_id) == ["transfer_posted"]
        assert (await service.recover(grace_s=0)).examined == 0
    assert len(await ledger.client.lookup_transfers([transfer_id])) == 1
    (bob,) = await ledger.client.lookup_accounts([book.bob])
    assert bob.credits_posted == 10


async def test_a_call_queued_behind_a_stuck_request_answers_within_its_own_deadline(
    ledger: Ledger,
) -> None:
    """The deadline covers the whole call, not each engine request: a call that waits behind
    another group's stuck request gets OutcomeUnknownError in time (before, it waited for the
    stuck request's deadline and then its own), and a retry with the same id afterwards finds
    the one transfer instead of making a second."""
    book = await funded(ledger)
    gated = EngineWrapper(ledger.client)
    # Long enough that a loaded machine's lateness stays well inside the margin below.
    deadline_s = 1.0
    async with ledger.open_service(
        engine=gated, request_timeout_ms=int(deadline_s * 1000)
    ) as service:
        gated.gate = asyncio.Event()  # requests hang until the gate opens
        first = asyncio.create_task(
            service.create_transfer(request(book.alice, book.bob, 1, transfer_id=tb.id()))
        )
        # The writer is stuck on the first call's request once it has reached the engine.
        await wait_until(lambda: gated.create_transfers_calls == 1)
        second_id = tb.id()
        started = time.monotonic()
        with pytest.raises(OutcomeUnknownError) as caught:
            await service.create_transfer(request(book.alice, book.bob, 2, transfer_id=second_id))
        waited = time.monotonic() - started
        # Its own deadline: about deadline + slack. Waiting for the stuck request's deadline and
        # then its own would take about twice the deadline; half a deadline tells them apart.
        assert waited < deadline_s + CALL_DEADLINE_SLACK_S + deadline_s / 2
        assert caught.value.transfer_ids == [second_id]
        with pytest.raises(OutcomeUnknownError):
            await first
        gated.gate.set()
        await wait_until(lambda: _last_is(service, second_id, "posted"), timeout_s=5)
        retried = await service.create_transfer(
            request(book.alice, book.bob, 2, transfer_id=second_id)
        )
        assert retried.ok
        assert retried.replayed
    assert len(await ledger.client.lookup_transfers([second_id])) == 1


async def _last_is(service: LedgerService, transfer_id: int, kind: str) -> bool:
    return (await kinds(service, transfer_id))[-1:] == [kind]


async def test_a_request_not_yet_applied_at_the_deadline_is_applied_once_later(
    ledger: Ledger,
) -> None:
    book = await funded(ledger)
    gated = EngineWrapper(ledger.client)
    gated.gate = asyncio.Event()
    async with ledger.open_service(engine=gated, request_timeout_ms=DEADLINE_MS) as service:
        transfer_id = tb.id()
        with pytest.raises(OutcomeUnknownError):
            await service.create_transfer(
                request(book.alice, book.bob, 10, transfer_id=transfer_id)
            )
        assert await ledger.client.lookup_transfers([transfer_id]) == []
        gated.gate.set()
        await wait_until(lambda: _last_is(service, transfer_id, "posted"))
    assert len(await ledger.client.lookup_transfers([transfer_id])) == 1
    (bob,) = await ledger.client.lookup_accounts([book.bob])
    assert bob.credits_posted == 10


async def test_recover_settles_an_unknown_outcome_from_the_engine(ledger: Ledger) -> None:
    book = await funded(ledger)
    slow = EngineWrapper(ledger.client)
    async with ledger.open_service(engine=slow, request_timeout_ms=DEADLINE_MS) as service:
        slow.delay_s = 0.3
        transfer_id = tb.id()
        with pytest.raises(OutcomeUnknownError):
            await service.create_transfer(
                request(book.alice, book.bob, 10, transfer_id=transfer_id)
            )
        report = await service.recover(grace_s=0)
        assert (report.examined, report.found_in_engine, report.resubmitted) == (1, 1, 0)
        audit = await service.get_transfer_audit(transfer_id)
        assert [e.kind for e in audit][:3] == [
            EventKind.SUBMITTED,
            EventKind.OUTCOME_UNKNOWN,
            EventKind.POSTED,
        ]
        assert audit[2].status == "exists"
        await asyncio.sleep(0.4)  # the late answer arrives
    assert slow.applied == 1
    assert len(await ledger.client.lookup_transfers([transfer_id])) == 1
    (bob,) = await ledger.client.lookup_accounts([book.bob])
    assert bob.credits_posted == 10


async def test_an_outcome_settled_by_recovery_is_not_recorded_again_when_the_answer_comes(
    ledger: Ledger,
) -> None:
    book = await funded(ledger)
    slow = EngineWrapper(ledger.client)
    seen = Recorder()
    async with ledger.open_service(engine=slow, request_timeout_ms=DEADLINE_MS) as service:
        service.on("transfer_posted", seen)
        slow.delay_s = 0.3
        transfer_id = tb.id()
        with pytest.raises(OutcomeUnknownError):
            await service.create_transfer(
                request(book.alice, book.bob, 10, transfer_id=transfer_id)
            )
        await service.recover(grace_s=0)
        await wait_until(lambda: slow.applied == 1)
        await asyncio.sleep(0.4)  # the late answer arrives; close() waits for its recording
    assert await kinds(ledger.service, transfer_id) == ["submitted", "outcome_unknown", "posted"]
    assert seen.of(transfer_id) == ["transfer_posted"]


async def test_a_replay_after_an_unknown_outcome_returns_what_the_engine_did(
    ledger: Ledger,
) -> None:
    book = await funded(ledger)
    slow = EngineWrapper(ledger.client)
    async with ledger.open_service(engine=slow, request_timeout_ms=DEADLINE_MS) as service:
        slow.answer_gate = asyncio.Event()  # applied at once, answered when the test says
        transfer_id = tb.id()
        with pytest.raises(OutcomeUnknownError):
            await service.create_transfer(
                request(book.alice, book.bob, 10, transfer_id=transfer_id)
            )
        # The caller retries while the answer is still out. The retry reaches a service with
        # the suite's generous deadline (a retry may reach any process of the service): the
        # short deadline is the first call's point, not the retry's, which on a loaded machine
        # may take longer than 100 ms to read the store and the engine.
        again = await ledger.service.create_transfer(
            request(book.alice, book.bob, 10, transfer_id=transfer_id)
        )
        assert (again.id, again.ok, again.replayed) == (transfer_id, True, True)
        slow.answer_gate.set()  # the late answer finds the outcome recorded
    assert await kinds(ledger.service, transfer_id) == ["submitted", "outcome_unknown", "posted"]
    assert slow.applied == 1
    (bob,) = await ledger.client.lookup_accounts([book.bob])
    assert bob.credits_posted == 10


# -- the circuit breaker -------------------------------------------------------------------------


BREAKER: dict[str, Any] = {
    "request_timeout_ms": BREAKER_DEADLINE_MS,
    "breaker_failure_threshold": 2,
    "breaker_reset_timeout_s": 0.3,
}


@one_store
async def test_repeated_engine_faults_open_the_circuit_and_calls_fail_fast(ledger: Ledger) -> None:
    book = await funded(ledger)
    broken = EngineWrapper(ledger.client)
    async with ledger.open_service(engine=broken, **BREAKER) as service:
        broken.fault = tb.ClientClosedError()
        for _ in range(2):
            with pytest.raises(tb.ClientClosedError):
                await service.create_transfer(request(book.alice, book.bob, 1))
        assert service.breaker.state is CircuitState.OPEN
        calls = broken.create_transfers_calls
        transfer_id = tb.id()
        started = time.monotonic()
        with pytest.raises(CircuitOpenError) as caught:
            await service.create_transfer(request(book.alice, book.bob, 1, transfer_id=transfer_id))
        assert time.monotonic() - started < BREAKER_DEADLINE_MS / 1000
        assert caught.value.code == "circuit_open"
        assert caught.value.details["retry_after_s"] > 0
        assert broken.create_transfers_calls == calls
        # Nothing was submitted, and nothing is left for recovery to submit later.
        assert await kinds(service, transfer_id) == []
        health = await service.health_check()
        assert (health.ok, health.breaker) == (False, CircuitState.OPEN)


@one_store
async def test_hung_requests_open_the_circuit(ledger: Ledger) -> None:
    book = await funded(ledger)
    hung = EngineWrapper(ledger.client)
    hung.gate = asyncio.Event()
    ids = [tb.id(), tb.id()]
    async with ledger.open_service(engine=hung, **BREAKER) as service:
        for transfer_id in ids:
            with pytest.raises(OutcomeUnknownError):
                await service.create_transfer(
                    request(book.alice, book.bob, 1, transfer_id=transfer_id)
                )
        assert service.breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError):
            await service.create_transfer(request(book.alice, book.bob, 1))
        hung.gate.set()  # the hung requests finish and are recorded late
        for transfer_id in ids:
            await wait_until(lambda t=transfer_id: _last_is(service, t, "posted"))
    (bob,) = await ledger.client.lookup_accounts([book.bob])
    assert bob.credits_posted == 2


@one_store
async def test_after_the_reset_timeout_a_successful_probe_closes_the_circuit(
    ledger: Ledger,
) -> None:
    book = await funded(ledger)
    flaky = EngineWrapper(ledger.client)
    async with ledger.open_service(engine=flaky, **BREAKER) as service:
        flaky.fault = tb.ClientClosedError()
        for _ in range(2):
            with pytest.raises(tb.ClientClosedError):
                await service.create_transfer(request(book.alice, book.bob, 1))
        flaky.fault = None
        with pytest.raises(CircuitOpenError):
            await service.create_transfer(request(book.alice, book.bob, 1))
        await asyncio.sleep(BREAKER["breaker_reset_timeout_s"] + 0.05)
        result = await service.create_transfer(request(book.alice, book.bob, 3))
        assert result.ok
        assert service.breaker.state is CircuitState.CLOSED
        assert (await service.health_check()).ok
    (bob,) = await ledger.client.lookup_accounts([book.bob])
    assert bob.credits_posted == 3


@one_store
async def test_a_failed_probe_keeps_the_circuit_open(ledger: Ledger) -> None:
    book = await funded(ledger)
    down = EngineWrapper(ledger.client)
    async with ledger.open_service(engine=down, **BREAKER) as service:
        down.fault = tb.ClientClosedError()
        for _ in range(2):
            with pytest.raises(tb.ClientClosedError):
                await service.create_transfer(request(book.alice, book.bob, 1))

        async def no_answer(ids: list[int]) -> list[tb.Account]:
            raise tb.ClientClosedError()

        down.lookup_accounts = no_answer  # the probe fails too
        await asyncio.sleep(BREAKER["breaker_reset_timeout_s"] + 0.05)
        with pytest.raises(CircuitOpenError):
            await service.create_transfer(request(book.alice, book.bob, 1))
        assert service.breaker.state is CircuitState.OPEN


def open_circuit_after_insert(
    ledger: Ledger, service: LedgerService, monkeypatch: pytest.MonkeyPatch, *, delay_s: float = 0
) -> None:
    """Make the store open `service`'s circuit right after persisting intents (after `delay_s`),
    as if other calls' faults had opened it between persisting and submitting."""
    insert_intents = ledger.store.insert_intents

    async def insert_then_open(intents: list[TransferIntent], **kw: Any) -> Any:
        stored = await insert_intents(intents, **kw)
        if delay_s:
            await asyncio.sleep(delay_s)
        for _ in range(BREAKER["breaker_failure_threshold"]):
            service.breaker.record_failure()
        return stored

    monkeypatch.setattr(ledger.store, "insert_intents", insert_then_open)


async def test_an_intent_persisted_while_the_circuit_opened_is_failed_not_resubmitted(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between persisting the intent and submitting it, other calls' faults opened the circuit.
    book = await funded(ledger)
    counting = EngineWrapper(ledger.client)
    async with ledger.open_service(engine=counting, **BREAKER) as service:
        open_circuit_after_insert(ledger, service, monkeypatch)
        transfer_id = tb.id()
        with pytest.raises(CircuitOpenError):
            await service.create_transfer(request(book.alice, book.bob, 1, transfer_id=transfer_id))
        monkeypatch.undo()
        audit = await service.get_transfer_audit(transfer_id)
        assert [e.kind for e in audit] == [EventKind.SUBMITTED, EventKind.FAILED]
        assert (audit[-1].status, audit[-1].detail) == ("circuit_open", {"submitted": False})
        await asyncio.sleep(BREAKER["breaker_reset_timeout_s"] + 0.05)
        report = await service.recover(grace_s=0)
        assert report.examined == 0
        assert counting.create_transfers_calls == 0
        assert await ledger.client.lookup_transfers([transfer_id]) == []
        # The caller was told the circuit was open (retry later): a retry with the same id, once
        # the circuit closes, submits the transfer once, instead of replaying the refusal.
        service.breaker.record_success()
        retried = await service.create_transfer(
            request(book.alice, book.bob, 1, transfer_id=transfer_id)
        )
        assert (retried.status, retried.replayed) == ("created", True)
        again = await service.create_transfer(
            request(book.alice, book.bob, 1, transfer_id=transfer_id)
        )
        assert (again.status, again.replayed) == ("created", True)
    assert len(await ledger.client.lookup_transfers([transfer_id])) == 1


async def test_a_caller_told_unknown_is_never_recorded_as_refused_by_the_circuit(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The caller's deadline passes while its intent is being persisted; then the circuit opens,
    # and the writer finds it open. The caller was told "outcome unknown" (retry with the same
    # id), not "refused": the transfer stays without an outcome, and recovery submits it once the
    # circuit closes, so it happens exactly once whether or not the caller retries.
    book = await funded(ledger)
    counting = EngineWrapper(ledger.client)
    async with ledger.open_service(engine=counting, **BREAKER) as service:
        # Past the caller's deadline.
        open_circuit_after_insert(
            ledger, service, monkeypatch, delay_s=BREAKER_DEADLINE_MS / 1000 + 0.3
        )
        transfer_id = tb.id()
        with pytest.raises(OutcomeUnknownError):
            await service.create_transfer(request(book.alice, book.bob, 1, transfer_id=transfer_id))
        for _ in range(500):  # the writer finishes on its own
            kinds = [e.kind for e in await service.get_transfer_audit(transfer_id)]
            if len(kinds) > 1:
                break
            await asyncio.sleep(0.02)
        monkeypatch.undo()
        assert kinds == [EventKind.SUBMITTED, EventKind.OUTCOME_UNKNOWN]
        assert counting.create_transfers_calls == 0
        # Recovery settles it once the circuit lets requests through again.
        await asyncio.sleep(BREAKER["breaker_reset_timeout_s"] + 0.05)
        service.breaker.record_success()
        report = await service.recover(grace_s=0)
        assert report.resubmitted == 1
        audit = await service.get_transfer_audit(transfer_id)
        assert [e.kind for e in audit][-1] is EventKind.POSTED
        assert [e.kind for e in audit].count(EventKind.FAILED) == 0
        # A retry by the caller replays that outcome; nothing is applied twice.
        retried = await service.create_transfer(
            request(book.alice, book.bob, 1, transfer_id=transfer_id)
        )
        assert (retried.status, retried.replayed) == ("created", True)
    assert len(await ledger.client.lookup_transfers([transfer_id])) == 1
