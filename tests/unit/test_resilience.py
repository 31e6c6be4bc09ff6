"""Deadlines never cancel an engine request, retries are bounded and back off with full jitter,
and the circuit breaker fails fast after repeated faults until a single probe says otherwise."""

from __future__ import annotations

import asyncio
import gc
import random
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from tbledger.errors import (
    CircuitOpenError,
    ConfigurationError,
    OutcomeUnknownError,
    TigerBeetleError,
)
from tbledger.limits import RETRY_ATTEMPTS_MAX, RETRY_DELAY_MAX_S
from tbledger.resilience import (
    CircuitBreaker,
    CircuitState,
    RetryPolicy,
    retry,
    within_deadline,
)

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def catch_loop_errors() -> list[dict[str, Any]]:
    """What the running loop would log (e.g. "Task exception was never retrieved")."""
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    return errors


async def settle() -> None:
    """Let every ready task run until it blocks (a task that starts a task needs a few turns)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def answer_after(gate: asyncio.Event, value: str = "applied") -> str:
    await gate.wait()
    return value


# within_deadline


async def test_deadline_returns_the_result() -> None:
    assert await within_deadline(asyncio.sleep(0, "ok"), 1.0) == "ok"


async def test_deadline_raises_the_requests_own_exception() -> None:
    async def refused() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError, match="down"):
        await within_deadline(refused(), 1.0)


async def test_passed_deadline_raises_outcome_unknown_and_leaves_the_request_running() -> None:
    loop = asyncio.get_running_loop()
    gate = asyncio.Event()
    request = asyncio.ensure_future(answer_after(gate))
    late: asyncio.Future[asyncio.Future[str]] = loop.create_future()

    started = loop.time()
    with pytest.raises(OutcomeUnknownError) as info:
        await within_deadline(request, 0.01, on_late_result=late.set_result)

    assert loop.time() - started < 0.5
    assert info.value.details == {"timeout_s": 0.01}
    assert info.value.code == "outcome_unknown"
    assert not request.done()  # not cancelled: still in flight
    gate.set()
    finished = await asyncio.wait_for(late, 1.0)  # our own future, not the request
    assert finished is request
    assert finished.result() == "applied"


async def test_a_coroutine_past_its_deadline_also_completes_later() -> None:
    gate = asyncio.Event()
    late: list[str] = []

    with pytest.raises(OutcomeUnknownError):
        await within_deadline(
            answer_after(gate), 0.01, on_late_result=lambda task: late.append(task.result())
        )

    gate.set()
    await settle()
    assert late == ["applied"]


async def test_a_late_exception_is_retrieved_so_asyncio_logs_nothing() -> None:
    errors = catch_loop_errors()
    gate = asyncio.Event()
    finished = asyncio.Event()
    refs: list[weakref.ref[asyncio.Future[None]]] = []

    async def fails_later() -> None:
        await gate.wait()
        raise ConnectionError("late fault")

    def on_late_result(task: asyncio.Future[None]) -> None:
        refs.append(weakref.ref(task))
        finished.set()

    with pytest.raises(OutcomeUnknownError):
        await within_deadline(fails_later(), 0.01, on_late_result=on_late_result)
    gate.set()
    await finished.wait()
    await asyncio.sleep(0)
    gc.collect()

    assert refs[0]() is None  # the task was collected, so asyncio had its chance to complain
    assert errors == []


async def test_the_never_retrieved_check_is_not_vacuous() -> None:
    errors = catch_loop_errors()

    async def fails() -> None:
        raise ConnectionError("lost")

    task = asyncio.ensure_future(fails())
    await asyncio.wait({task})
    del task
    gc.collect()

    assert [e["message"] for e in errors] == ["Task exception was never retrieved"]


async def test_a_cancelled_caller_leaves_the_request_running() -> None:
    gate = asyncio.Event()
    request = asyncio.ensure_future(answer_after(gate))
    waiter = asyncio.ensure_future(within_deadline(request, None))
    await settle()

    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert not request.cancelled()
    gate.set()
    assert await request == "applied"


async def test_no_deadline_waits_for_the_answer() -> None:
    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "eventually"

    assert await within_deadline(slow(), None) == "eventually"


@pytest.mark.parametrize("timeout_s", [-1.0, float("nan")])
async def test_a_negative_or_nan_deadline_is_refused(timeout_s: float) -> None:
    coro = asyncio.sleep(0)
    with pytest.raises(ConfigurationError):
        await within_deadline(coro, timeout_s)
    coro.close()


# retry


class FakeTime:
    """A clock that only moves when the code under test sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky:
    """Raises `failures` fresh exceptions made by `make`, then returns "ok"."""

    def __init__(
        self, failures: int, make: Callable[[], Exception] = lambda: ConnectionError("x")
    ) -> None:
        self.failures = failures
        self.make = make
        self.calls = 0
        self.raised: list[Exception] = []

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            self.raised.append(self.make())
            raise self.raised[-1]
        return "ok"


def is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, ConnectionError)


async def run(fn: Flaky, policy: RetryPolicy, fake: FakeTime, **kw: Any) -> str:
    kw.setdefault("retryable", is_connection_error)
    return await retry(fn, policy, sleep=fake.sleep, clock=fake.clock, **kw)


@pytest.mark.parametrize("failures", [0, 1, 4])
async def test_retry_succeeds_after_k_failures_with_exactly_k_sleeps(failures: int) -> None:
    fake, fn = FakeTime(), Flaky(failures)
    assert await run(fn, RetryPolicy(attempts_max=5), fake) == "ok"
    assert fn.calls == failures + 1
    assert len(fake.sleeps) == failures


async def test_retry_gives_up_after_attempts_max_and_reraises_the_last_exception() -> None:
    fake, fn = FakeTime(), Flaky(failures=100)
    with pytest.raises(ConnectionError) as info:
        await run(fn, RetryPolicy(attempts_max=3), fake)
    assert info.value is fn.raised[-1]  # the original exception, not a wrapper
    assert fn.calls == 3
    assert len(fake.sleeps) == 2


async def test_a_non_retryable_exception_is_raised_immediately() -> None:
    fake, fn = FakeTime(), Flaky(failures=1, make=lambda: ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        await run(fn, RetryPolicy(), fake)
    assert fn.calls == 1
    assert fake.sleeps == []


async def test_cancellation_is_never_retried() -> None:
    fake, fn = FakeTime(), Flaky(failures=1, make=asyncio.CancelledError)  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await run(fn, RetryPolicy(), fake, retryable=lambda _: True)
    assert fn.calls == 1


async def test_backoff_grows_by_the_multiplier_and_is_capped() -> None:
    fake, fn = FakeTime(), Flaky(failures=5)
    policy = RetryPolicy(
        attempts_max=6, delay_initial_s=0.1, multiplier=2.0, delay_max_s=0.5, jitter=False
    )
    await run(fn, policy, fake)
    assert fake.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


async def test_full_jitter_sleeps_uniformly_between_zero_and_the_backoff() -> None:
    policy = RetryPolicy(attempts_max=RETRY_ATTEMPTS_MAX, delay_initial_s=0.1, delay_max_s=1.0)
    runs = []
    for _ in range(2):
        fake = FakeTime()
        await run(Flaky(failures=9), policy, fake, rng=random.Random(42))
        runs.append(fake.sleeps)

    assert runs[0] == runs[1]  # a seeded rng makes the schedule reproducible
    ceilings = [policy.backoff_s(n) for n in range(1, RETRY_ATTEMPTS_MAX)]
    assert all(0.0 <= s <= c for s, c in zip(runs[0], ceilings, strict=True))
    assert runs[0] != ceilings  # jittered, not the plain backoff


async def test_retry_never_sleeps_past_the_overall_deadline() -> None:
    fake, fn = FakeTime(), Flaky(failures=100)
    policy = RetryPolicy(
        attempts_max=10, delay_initial_s=0.4, multiplier=1.0, jitter=False, deadline_s=1.0
    )
    with pytest.raises(ConnectionError):
        await run(fn, policy, fake)
    # Attempts at 0.0, 0.4 and 0.8 s; a third sleep would end at 1.2 s, past the budget.
    assert fake.sleeps == [0.4, 0.4]
    assert fn.calls == 3
    assert fake.now <= 1.0


async def test_on_retry_is_told_each_failed_attempt_and_its_sleep() -> None:
    fake, fn = FakeTime(), Flaky(failures=2)
    seen: list[tuple[int, BaseException, float]] = []
    policy = RetryPolicy(delay_initial_s=0.1, jitter=False)
    await run(fn, policy, fake, on_retry=lambda *args: seen.append(args))
    assert seen == [(1, fn.raised[0], 0.1), (2, fn.raised[1], 0.2)]


@pytest.mark.parametrize(
    "fields",
    [
        {"attempts_max": 0},
        {"attempts_max": RETRY_ATTEMPTS_MAX + 1},
        {"delay_max_s": RETRY_DELAY_MAX_S + 1},
        {"delay_initial_s": 3.0, "delay_max_s": 2.0},
        {"multiplier": 0.5},
        {"deadline_s": 0.0},
    ],
)
def test_a_policy_out_of_bounds_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**fields)


# CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Probe:
    """A health probe that counts its runs, can fail, and can be held until released."""

    def __init__(self, *, fails: bool = False, held: bool = False) -> None:
        self.fails = fails
        self.runs = 0
        self.gate = asyncio.Event()
        if not held:
            self.gate.set()

    async def __call__(self) -> None:
        self.runs += 1
        await self.gate.wait()
        if self.fails:
            raise ConnectionError("still down")


def breaker(clock: FakeClock, probe: Probe | None = None, **kw: Any) -> CircuitBreaker:
    kw.setdefault("failure_threshold", 3)
    return CircuitBreaker(reset_timeout_s=5.0, probe=probe, clock=clock, **kw)


def trip(b: CircuitBreaker) -> None:
    while b.state is CLOSED:
        b.record_failure()


async def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    b = breaker(FakeClock())
    b.record_failure()
    b.record_failure()
    assert b.state is CLOSED
    await b.before_call()

    b.record_failure()
    assert b.state is OPEN
    with pytest.raises(CircuitOpenError):
        await b.before_call()


async def test_a_success_resets_the_consecutive_failure_count() -> None:
    b = breaker(FakeClock())
    b.record_failure()
    b.record_failure()
    b.record_success()
    assert b.consecutive_failures == 0
    b.record_failure()
    b.record_failure()
    assert b.state is CLOSED


async def test_open_circuit_fails_fast_saying_when_to_retry() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    clock.advance(2.0)

    with pytest.raises(CircuitOpenError) as info:
        await b.before_call()

    assert isinstance(info.value, TigerBeetleError)
    assert info.value.code == "circuit_open"
    assert info.value.details["retry_after_s"] == pytest.approx(3.0)


async def test_after_the_reset_timeout_the_probe_runs_once_and_closes_the_circuit() -> None:
    clock, probe = FakeClock(), Probe()
    b = breaker(clock, probe)
    trip(b)
    clock.advance(5.0)

    await b.before_call()

    assert probe.runs == 1
    assert b.state is CLOSED
    assert b.consecutive_failures == 0
    await b.before_call()
    assert probe.runs == 1


async def test_a_failed_probe_reopens_the_circuit_with_a_fresh_timer() -> None:
    clock, probe = FakeClock(), Probe(fails=True)
    b = breaker(clock, probe)
    trip(b)
    clock.advance(5.0)

    with pytest.raises(CircuitOpenError) as info:
        await b.before_call()

    assert isinstance(info.value.__cause__, ConnectionError)
    assert info.value.details["retry_after_s"] == pytest.approx(5.0)
    assert b.state is OPEN
    clock.advance(4.9)
    with pytest.raises(CircuitOpenError):
        await b.before_call()
    assert probe.runs == 1
    clock.advance(0.1)
    with pytest.raises(CircuitOpenError):
        await b.before_call()
    assert probe.runs == 2


async def test_a_probe_past_its_deadline_counts_as_a_failure() -> None:
    clock, probe = FakeClock(), Probe(held=True)
    b = breaker(clock, probe, probe_timeout_s=0.01)
    trip(b)
    clock.advance(5.0)

    with pytest.raises(CircuitOpenError) as info:
        await b.before_call()

    assert isinstance(info.value.__cause__, OutcomeUnknownError)
    assert b.state is OPEN
    probe.gate.set()  # the probe was left running, not cancelled; let it finish


async def test_callers_during_the_probe_wait_for_it_and_proceed_when_it_succeeds() -> None:
    clock, probe = FakeClock(), Probe(held=True)
    b = breaker(clock, probe)
    trip(b)
    clock.advance(5.0)

    callers = [asyncio.ensure_future(b.before_call()) for _ in range(5)]
    await settle()
    assert b.state is HALF_OPEN
    assert probe.runs == 1  # single flight
    assert not any(c.done() for c in callers)

    probe.gate.set()
    assert await asyncio.gather(*callers) == [None] * 5
    assert probe.runs == 1
    assert b.state is CLOSED


async def test_callers_during_the_probe_all_fail_when_it_fails() -> None:
    clock, probe = FakeClock(), Probe(fails=True, held=True)
    b = breaker(clock, probe)
    trip(b)
    clock.advance(5.0)

    callers = [asyncio.ensure_future(b.before_call()) for _ in range(3)]
    await settle()
    probe.gate.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)

    assert all(isinstance(o, CircuitOpenError) for o in outcomes)
    assert probe.runs == 1
    assert b.state is OPEN


async def test_a_cancelled_waiter_does_not_cancel_the_shared_probe() -> None:
    clock, probe = FakeClock(), Probe(held=True)
    b = breaker(clock, probe)
    trip(b)
    clock.advance(5.0)
    first = asyncio.ensure_future(b.before_call())
    second = asyncio.ensure_future(b.before_call())
    await settle()

    first.cancel()
    probe.gate.set()

    await second
    assert first.cancelled()
    assert b.state is CLOSED


async def test_records_of_older_calls_do_not_override_a_running_probe() -> None:
    clock, probe = FakeClock(), Probe(held=True)
    b = breaker(clock, probe)
    trip(b)
    clock.advance(5.0)
    caller = asyncio.ensure_future(b.before_call())
    await settle()

    b.record_failure()  # a call started before the circuit opened, failing late
    probe.gate.set()
    await caller

    assert b.state is CLOSED


async def test_without_a_probe_exactly_one_trial_call_passes_and_its_success_closes() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    clock.advance(5.0)

    await b.before_call()  # the trial
    assert b.state is HALF_OPEN
    with pytest.raises(CircuitOpenError):
        await b.before_call()

    b.record_success()
    assert b.state is CLOSED
    await b.before_call()


async def test_without_a_probe_a_failed_trial_reopens_with_a_fresh_timer() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    clock.advance(5.0)
    await b.before_call()

    b.record_failure()

    assert b.state is OPEN
    with pytest.raises(CircuitOpenError) as info:
        await b.before_call()
    assert info.value.details["retry_after_s"] == pytest.approx(5.0)


async def test_without_a_probe_a_trial_that_never_reports_is_replaced() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    clock.advance(5.0)
    await b.before_call()  # this trial's caller never records an outcome

    clock.advance(5.0)
    await b.before_call()  # the next caller becomes the trial

    assert b.state is HALF_OPEN


async def test_records_while_open_are_ignored() -> None:
    clock = FakeClock()
    b = breaker(clock)
    trip(b)
    clock.advance(4.0)

    b.record_success()
    b.record_failure()

    assert b.state is OPEN
    with pytest.raises(CircuitOpenError) as info:
        await b.before_call()
    assert info.value.details["retry_after_s"] == pytest.approx(1.0)  # timer not restarted


async def test_on_state_change_is_called_with_old_and_new_state() -> None:
    clock, changes = FakeClock(), []
    b = breaker(clock, Probe(), on_state_change=lambda old, new: changes.append((old, new)))
    trip(b)
    clock.advance(5.0)
    await b.before_call()

    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


@pytest.mark.parametrize(
    "fields",
    [{"failure_threshold": 0}, {"reset_timeout_s": -1.0}, {"probe_timeout_s": 0.0}],
)
def test_a_breaker_out_of_bounds_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        CircuitBreaker(**fields)
