"""Deadlines, retries and a circuit breaker for engine calls: bounded waiting without losing money.

The official TigerBeetle client never gives up by itself: a request to an unreachable cluster
waits forever. So every engine call needs a deadline, but the usual tool is a trap here:
``asyncio.wait_for`` cancels the awaiting coroutine, which leaves the official client's internal
bookkeeping behind, and a later ``close()`` then fails. And cancelling would not take the request
back anyway: the cluster may already have applied it. So :func:`within_deadline` waits with
``asyncio.wait({task}, timeout=...)`` and, when the time is up, leaves the request running and
raises :class:`~tbledger.errors.OutcomeUnknownError`: the transfers may or may not exist.

That unknown outcome is settled the way TigerBeetle recommends: resubmit the same transfer ids
with the same fields. ``exists`` means the first attempt was applied, so a write is applied at
most once however often it is sent. This is the only reason :func:`retry` is safe for writes:
the caller's ``fn`` must resubmit exactly the same events on every attempt. Retries are bounded
(``attempts_max`` calls, an optional overall ``deadline_s``) and spaced by exponential backoff
with "full jitter" (each sleep uniform in ``[0, backoff]``), so a fleet of callers that failed
together does not come back together.

When the engine keeps failing, waiting a deadline per call only piles up requests left running
in the client. The :class:`CircuitBreaker` counts consecutive faults and, at a threshold, fails
calls fast with :class:`~tbledger.errors.CircuitOpenError` (nothing submitted) until a health
probe (or a single trial call) shows the engine answers again.

Everything here is free of I/O except sleeping; the clock, the sleep and the random source are
injectable so that tests run instantly and deterministically. One event loop, no threads. A
write path composes the three like this (the breaker outside the retry would count a whole
retried call once; inside, as here, it sees every fault)::

    async def attempt() -> list[CreateTransferResult]:
        await breaker.before_call()  # CircuitOpenError: fail fast, nothing sent
        try:
            results = await within_deadline(client.create_transfers(batch), timeout_s)
        except OutcomeUnknownError:  # and any transport fault of the client in use
            breaker.record_failure()
            raise
        breaker.record_success()  # any answer, even one with failure statuses, is health
        return results

    results = await retry(
        attempt, policy, retryable=lambda exc: isinstance(exc, OutcomeUnknownError)
    )
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from tbledger.errors import CircuitOpenError, ConfigurationError, OutcomeUnknownError
from tbledger.limits import CIRCUIT_PROBE_TIMEOUT_S, RETRY_ATTEMPTS_MAX, RETRY_DELAY_MAX_S

__all__ = ["CircuitBreaker", "CircuitState", "RetryPolicy", "retry", "within_deadline"]

T = TypeVar("T")

# Requests left running past their deadline. The event loop holds tasks only weakly, so a task
# nobody references could be garbage-collected mid-flight; this set keeps it until it finishes.
_left_running: set[asyncio.Future[Any]] = set()

# The default random source of `retry`; jitter needs no cryptographic quality.
_rng = random.Random()


def _settle_left_running(future: asyncio.Future[Any]) -> None:
    _left_running.discard(future)
    # Nobody awaits this future any more; reading its exception marks it retrieved, so asyncio
    # does not log "exception was never retrieved" for an engine fault that came late.
    if not future.cancelled():
        future.exception()


def _leave_running(
    future: asyncio.Future[T], on_late_result: Callable[[asyncio.Future[T]], None] | None
) -> None:
    _left_running.add(future)
    future.add_done_callback(_settle_left_running)
    if on_late_result is not None:
        future.add_done_callback(on_late_result)


async def within_deadline(
    awaitable: Awaitable[T],
    timeout_s: float | None,
    *,
    on_late_result: Callable[[asyncio.Future[T]], None] | None = None,
) -> T:
    """Await `awaitable` for at most `timeout_s` seconds (``None``: no deadline) and return its
    result or raise its exception.

    A coroutine is run as a task; a task or future is taken as it is. It is never cancelled:
    when the deadline passes, it is left running and ``OutcomeUnknownError`` is raised (with
    ``details["timeout_s"]``). If the caller itself is cancelled while waiting, the request is
    likewise left running and the cancellation propagates. In both cases `on_late_result`, if
    given, is called with the finished task when it completes, so the caller can record the late
    outcome (``task.cancelled()``, ``task.exception()``, ``task.result()``); a late exception
    is marked retrieved either way.
    """
    if timeout_s is not None and not timeout_s >= 0:  # `not >=` also refuses NaN
        raise ConfigurationError(f"timeout_s must be None or >= 0, got {timeout_s!r}")
    future = asyncio.ensure_future(awaitable)
    try:
        # Unlike wait_for, asyncio.wait never cancels what it waits for, on timeout or when the
        # waiter is cancelled.
        await asyncio.wait({future}, timeout=timeout_s)
    except BaseException:  # the caller was cancelled: the request stays in flight regardless
        _leave_running(future, on_late_result)
        raise
    if future.done():
        return future.result()
    _leave_running(future, on_late_result)
    raise OutcomeUnknownError(
        f"the engine did not answer within {timeout_s} s; the request was left running and may "
        "still be applied (resubmit the same ids to settle it)",
        details={"timeout_s": timeout_s},
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently :func:`retry` tries again.

    The sleep before retry ``n`` (1-based) is ``min(delay_max_s, delay_initial_s *
    multiplier ** (n - 1))``, or with `jitter` a uniform draw from ``[0, that]`` ("full jitter").
    `attempts_max` counts every call, the first included. `deadline_s`, if given, is an overall
    budget from the first call: no retry is made whose backoff sleep would end past it. It does
    not cut an attempt short; give each attempt its own :func:`within_deadline` for that.
    """

    attempts_max: int = 5
    delay_initial_s: float = 0.05
    delay_max_s: float = 2.0
    multiplier: float = 2.0
    jitter: bool = True
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.attempts_max <= RETRY_ATTEMPTS_MAX:
            raise ConfigurationError(
                f"attempts_max must be in [1, {RETRY_ATTEMPTS_MAX}] (limits.RETRY_ATTEMPTS_MAX), "
                f"got {self.attempts_max!r}"
            )
        if not 0 <= self.delay_initial_s <= self.delay_max_s:
            raise ConfigurationError(
                f"need 0 <= delay_initial_s <= delay_max_s, got {self.delay_initial_s!r} and "
                f"{self.delay_max_s!r}"
            )
        if not self.delay_max_s <= RETRY_DELAY_MAX_S:
            raise ConfigurationError(
                f"delay_max_s must be <= {RETRY_DELAY_MAX_S} s (limits.RETRY_DELAY_MAX_S), "
                f"got {self.delay_max_s!r}"
            )
        if not 1 <= self.multiplier < math.inf:
            raise ConfigurationError(f"multiplier must be finite and >= 1, got {self.multiplier!r}")
        if self.deadline_s is not None and not 0 < self.deadline_s < math.inf:
            raise ConfigurationError(
                f"deadline_s must be None or finite and > 0, got {self.deadline_s!r}"
            )

    def backoff_s(self, retry: int) -> float:
        """The backoff before retry number `retry` (1-based), before jitter."""
        delay = self.delay_initial_s
        for _ in range(retry - 1):  # bounded by attempts_max; stops growing at the cap
            if delay >= self.delay_max_s:
                break
            delay *= self.multiplier
        return min(delay, self.delay_max_s)


async def retry(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    retryable: Callable[[BaseException], bool],
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call `fn` until it returns, a non-retryable exception, or the policy's bounds.

    An ``Exception`` for which `retryable` is true is followed by a backoff sleep and another
    call; anything else (and ``CancelledError``, which is never caught) propagates at once. When
    the attempts or the deadline are spent, the last exception is re-raised as it is, not
    wrapped. `fn` is called at most ``policy.attempts_max`` times. ``on_retry(attempt, exc,
    sleep_s)`` is called before each sleep with the 1-based number of the attempt that failed.

    Retrying a write is only safe if `fn` resubmits the same ids with the same fields each time.
    """
    rng = _rng if rng is None else rng
    started = clock()
    attempt = 1
    while True:
        try:
            return await fn()
        except Exception as exc:
            if attempt >= policy.attempts_max or not retryable(exc):
                raise
            sleep_s = policy.backoff_s(attempt)
            if policy.jitter:
                sleep_s = rng.uniform(0.0, sleep_s)
            if policy.deadline_s is not None and clock() - started + sleep_s > policy.deadline_s:
                raise
            if on_retry is not None:
                on_retry(attempt, exc, sleep_s)
        await sleep(sleep_s)
        attempt += 1


class CircuitState(StrEnum):
    """closed: calls pass. open: calls fail fast. half_open: a probe or one trial call decides."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Fails engine calls fast after `failure_threshold` consecutive faults, for a while.

    Callers bracket each engine call: ``await before_call()`` first (raises ``CircuitOpenError``
    with ``details["retry_after_s"]`` while open), then ``record_success()`` when the engine
    answered (any answer, even one with failure statuses: outcomes are values) or
    ``record_failure()`` on a fault (a passed deadline, a lost connection).

    * closed: calls pass; faults are counted, a success resets the count; the threshold opens.
    * open: calls fail fast until `reset_timeout_s` has passed on `clock`; then the next caller
      moves the circuit to half_open.
    * half_open with a `probe`: the probe runs once (single flight), bounded by
      `probe_timeout_s`. Every caller that arrives meanwhile waits for it rather than failing,
      so the wait is bounded by `probe_timeout_s` too. Success closes the circuit and all of
      them proceed; failure (an exception or the deadline) reopens it with a fresh timer and
      all of them get ``CircuitOpenError``. Records of calls that were already in flight do not
      change a running probe's verdict.
    * half_open without a probe: exactly one trial call passes, other callers fail fast, and
      the next record decides (success closes, failure reopens). A trial that records nothing
      within `reset_timeout_s` is presumed lost and the next caller becomes the trial.

    In the open state, records are ignored: they come from calls started before it opened.
    `on_state_change(old, new)` is called synchronously on every transition; it must not raise.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 5.0,
        probe: Callable[[], Awaitable[None]] | None = None,
        probe_timeout_s: float = CIRCUIT_PROBE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[CircuitState, CircuitState], None] | None = None,
    ) -> None:
        if not failure_threshold >= 1:
            raise ConfigurationError(f"failure_threshold must be >= 1, got {failure_threshold!r}")
        if not 0 <= reset_timeout_s < math.inf:
            raise ConfigurationError(
                f"reset_timeout_s must be finite and >= 0, got {reset_timeout_s!r}"
            )
        if not 0 < probe_timeout_s < math.inf:
            raise ConfigurationError(
                f"probe_timeout_s must be finite and > 0, got {probe_timeout_s!r}"
            )
        self._failure_threshold = failure_threshold
        self._reset_timeout_s = reset_timeout_s
        self._probe = probe
        self._probe_timeout_s = probe_timeout_s
        self._clock = clock
        self._on_state_change = on_state_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_started_at: float | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._probe_error: BaseException | None = None

    @property
    def state(self) -> CircuitState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    async def before_call(self) -> None:
        """Return if a call may go to the engine now; raise ``CircuitOpenError`` if not."""
        if self._state is CircuitState.CLOSED:
            return
        if self._probe_task is not None:
            await self._await_probe(self._probe_task)
            return
        now = self._clock()
        if self._state is CircuitState.HALF_OPEN:
            # No probe: one trial call is out. Let another through only if that one is lost.
            started = self._trial_started_at
            if started is not None and started + self._reset_timeout_s > now:
                raise self._open_error(
                    "a trial call is in flight", started + self._reset_timeout_s - now
                )
            self._trial_started_at = now
            return
        retry_after_s = self._opened_at + self._reset_timeout_s - now
        if retry_after_s > 0:
            raise self._open_error("too many consecutive engine faults", retry_after_s)
        self._transition(CircuitState.HALF_OPEN)
        if self._probe is None:
            self._trial_started_at = now
            return
        # Set before any await, so concurrent callers see the probe in flight and wait for it.
        self._probe_task = asyncio.create_task(self._run_probe(self._probe))
        await self._await_probe(self._probe_task)

    def record_success(self) -> None:
        """The engine answered: reset the fault count (and close a half-open circuit)."""
        if self._state is CircuitState.CLOSED:
            self._failures = 0
        elif self._state is CircuitState.HALF_OPEN and self._probe_task is None:
            self._close()

    def record_failure(self) -> None:
        """The engine faulted: count it; open at the threshold (reopen from half_open)."""
        if self._state is CircuitState.CLOSED:
            self._failures += 1
            if self._failures >= self._failure_threshold:
                self._open()
        elif self._state is CircuitState.HALF_OPEN and self._probe_task is None:
            self._open()

    async def _run_probe(self, probe: Callable[[], Awaitable[None]]) -> None:
        healthy = False
        self._probe_error = None
        try:
            await within_deadline(probe(), self._probe_timeout_s)
            healthy = True
        except Exception as exc:  # any fault of the probe means "not healthy yet"
            self._probe_error = exc
        finally:  # also when cancelled (loop shutdown): never leave the circuit half-open
            self._probe_task = None
            if healthy:
                self._close()
            else:
                self._open()

    async def _await_probe(self, task: asyncio.Task[None]) -> None:
        # asyncio.wait, not `await task`: a waiter that is cancelled must not cancel the probe
        # that other callers share.
        await asyncio.wait({task})
        if self._state is CircuitState.CLOSED:
            return
        retry_after_s = self._opened_at + self._reset_timeout_s - self._clock()
        raise self._open_error("the health probe failed", retry_after_s) from self._probe_error

    def _open_error(self, reason: str, retry_after_s: float) -> CircuitOpenError:
        retry_after_s = max(0.0, retry_after_s)
        return CircuitOpenError(
            f"circuit open ({reason}); nothing was submitted, retry after {retry_after_s:.3f} s",
            code="circuit_open",
            details={"retry_after_s": retry_after_s, "state": str(self._state)},
        )

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._trial_started_at = None
        self._transition(CircuitState.OPEN)

    def _close(self) -> None:
        self._failures = 0
        self._trial_started_at = None
        self._transition(CircuitState.CLOSED)

    def _transition(self, new: CircuitState) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        if self._on_state_change is not None:
            self._on_state_change(old, new)
