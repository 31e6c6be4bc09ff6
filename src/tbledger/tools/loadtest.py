"""An open-loop load generator for tbledger (``tbledger loadtest``).

Open loop, so that a slow service cannot slow the client down and hide its own slowness
(coordinated omission): the whole schedule is computed up front from the arrival process
(constant spacing or Poisson, seeded), every request is launched at its intended start time
whatever is still outstanding, and its latency is *completion time - intended start time*,
recorded in an HDR histogram (microseconds, 3 significant digits). Outstanding requests are
bounded by a generous cap (``connections``); a request due while the cap is reached is not
delayed but counted as the error ``client_saturated``.

The operations, drawn from a mix (``payment=60,hold=20,transfer=20``):

* ``payment``: a payment with a fee through the flows (payer -> merchant, fee -> fee pool, the
  refund allowance); three transfers, one request.
* ``hold``: a pending transfer user -> merchant, captured (posted in full) `capture_delay_s`
  after it was acknowledged; the capture is a request of its own (kind ``capture``), due at that
  instant. `rate` counts requests, captures included: operations arrive at
  ``rate / (1 + hold share)`` a second.
* ``transfer``: a plain transfer between two users.

With `hot_fraction` F, a share F of the operations touches one hot account (user 0); the rest
never do. Every write carries a unique ``Idempotency-Key``.

Before the run, `accounts` users and some merchants are opened and funded by deposits (users
with more than every operation of the run could take from one account, so no request fails for
lack of funds). After it, the ledger is checked:

* ``ledger_balanced``: over every account the run touched (users, merchants, each payment's refund
  allowance account, and the ledger's treasury, fee pool and buffer), the change since the end
  of setup of the sum of debits equals that of credits, posted and pending;
* ``movement_matches``: that change equals what the acknowledged requests moved (payments: amount
  + fee + refund allowance; transfers; captures), and what is still pending equals the holds
  acknowledged but not captured: nothing unacknowledged moved, nothing acknowledged is missing;
* ``acknowledged_in_engine``: every transfer id returned by an acknowledged request exists in
  the engine;
* ``audit_complete``: each of them has an audit history with an outcome (pending or posted) and
  no failure.

The target is a running service over HTTP (`HttpTarget`: balances through ``GET /v1/balances``,
transfers and their audit through ``GET /v1/transfers/{id}``) or the library in this process
(`LibraryTarget`: `LedgerService` and `SpendEngine`). `check_sample` bounds how many transfer ids
the last two checks read (0: all).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import secrets
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tbledger.client import (
    AiohttpTransport,
    AsyncLedgerClient,
    TransferResult,
    TransferSpec,
    answer_of,
)
from tbledger.errors import AccountNotFoundError, ApiAuthError, TbledgerError
from tbledger.tools.loop import run as run_loop

if TYPE_CHECKING:
    # For the types only: the library target imports the flows when it opens.
    from tbledger.flows import SpendEngine

_R = TypeVar("_R")

__all__ = [
    "Arrival",
    "Arrivals",
    "Check",
    "HttpTarget",
    "Kind",
    "LedgerTarget",
    "LibraryTarget",
    "LoadConfig",
    "Mix",
    "Op",
    "OpenLoop",
    "Outcome",
    "Recorder",
    "Report",
    "RequestFailed",
    "arrival_offsets",
    "build_plan",
    "command",
    "render_report",
    "run_loadtest",
]

# Latencies are recorded in microseconds, 1 µs to 1 hour, at 3 significant digits.
LATENCY_US_MIN: Final = 1
LATENCY_US_MAX: Final = 3_600_000_000
LATENCY_DIGITS: Final = 3
PERCENTILES: Final = (50.0, 90.0, 99.0, 99.9)

DEFAULT_MIX: Final = "payment=60,hold=20,transfer=20"
# Operation amounts in minor units (1.00 to 50.00 on a two-decimal ledger) and the payment fee.
AMOUNT_MINOR_MIN: Final = 100
AMOUNT_MINOR_MAX: Final = 5_000
FEE_FIXED_MINOR: Final = 30
FEE_PER_MILLE: Final = 29
MERCHANT_FUNDING_MINOR: Final = 100_000
HTTP_TIMEOUT_S: Final = 30.0
# Idle connections are dropped before the server's keep-alive timeout (uvicorn: 5 s) closes
# them, so a request is never sent on a connection the server is closing.
HTTP_KEEPALIVE_S: Final = 4.0
# The checks' reads are idempotent: retried this often on a transport error.
HTTP_READ_ATTEMPTS: Final = 3
# Balances per GET /v1/balances: the ids travel in the query string, which must stay well under
# the server's header size limit (uvicorn's h11: 16 KiB).
HTTP_BALANCES_PER_CALL: Final = 200
LOOKUP_CHUNK: Final = 1_000
SETUP_CONCURRENCY_MAX: Final = 32
CHECK_CONCURRENCY_MAX: Final = 64
# The schedule starts this long after the run does, so the first requests are not late.
START_LEAD_S: Final = 0.05
TICK_S: Final = 0.5
LOG_EVERY_S: Final = 5.0

SATURATED: Final = "client_saturated"
OUTCOME_KINDS: Final = frozenset({"pending", "posted", "voided", "expired"})


class Arrivals(StrEnum):
    """The arrival process: evenly spaced, or Poisson (exponential gaps, same mean rate)."""

    CONSTANT = "constant"
    POISSON = "poisson"


class Kind(StrEnum):
    """What a request does."""

    PAYMENT = "payment"
    HOLD = "hold"
    CAPTURE = "capture"
    TRANSFER = "transfer"


MIX_KINDS: Final = (Kind.PAYMENT, Kind.HOLD, Kind.TRANSFER)


# -- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mix:
    """Relative weights of payments, holds (each followed by a capture) and plain transfers."""

    payment: float = 60.0
    hold: float = 20.0
    transfer: float = 20.0

    @classmethod
    def parse(cls, text: str) -> Mix:
        """``payment=60,hold=20,transfer=20``; a kind left out weighs 0."""
        weights: dict[str, float] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            name = name.strip().lower()
            if not sep or name not in {k.value for k in MIX_KINDS}:
                raise ValueError(f"mix entry {part!r}: expected payment=N, hold=N or transfer=N")
            if name in weights:
                raise ValueError(f"mix names {name!r} twice")
            try:
                weight = float(value)
            except ValueError:
                raise ValueError(f"mix weight {value!r} of {name} is not a number") from None
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"mix weight of {name} must be a finite number >= 0")
            weights[name] = weight
        mix = cls(**{k.value: weights.get(k.value, 0.0) for k in MIX_KINDS})
        if mix.total <= 0:
            raise ValueError("the mix needs at least one positive weight")
        return mix

    @property
    def total(self) -> float:
        return self.payment + self.hold + self.transfer

    def share(self, kind: Kind) -> float:
        return {Kind.PAYMENT: self.payment, Kind.HOLD: self.hold, Kind.TRANSFER: self.transfer}.get(
            kind, 0.0
        ) / self.total

    def __str__(self) -> str:
        return ",".join(f"{k.value}={getattr(self, k.value):g}" for k in MIX_KINDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadConfig:
    """What to send: rate, duration, arrival process, accounts and mix."""

    rate: float
    duration_s: float
    warmup_s: float = 0.0
    arrivals: Arrivals = Arrivals.CONSTANT
    seed: int = 1
    accounts: int = 100
    merchants: int | None = None
    hot_fraction: float = 0.0
    mix: Mix = field(default_factory=Mix)
    ledger: str = "USD"
    connections: int = 256
    capture_delay_s: float = 0.05
    check_sample: int = 0

    def __post_init__(self) -> None:
        checks = [
            (math.isfinite(self.rate) and self.rate > 0, "rate must be > 0"),
            (math.isfinite(self.duration_s) and self.duration_s > 0, "duration must be > 0"),
            (math.isfinite(self.warmup_s) and self.warmup_s >= 0, "warmup must be >= 0"),
            (self.accounts >= 3, "accounts must be at least 3"),
            (self.merchants is None or self.merchants >= 1, "merchants must be at least 1"),
            (0.0 <= self.hot_fraction <= 1.0, "hot fraction must be in [0, 1]"),
            (self.connections >= 1, "connections must be at least 1"),
            (
                math.isfinite(self.capture_delay_s) and self.capture_delay_s >= 0,
                "capture delay must be >= 0",
            ),
            (self.check_sample >= 0, "check sample must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def merchant_count(self) -> int:
        return self.merchants if self.merchants is not None else max(1, self.accounts // 10)

    @property
    def operation_rate(self) -> float:
        """Operations a second: each hold brings a capture, and `rate` counts both."""
        return self.rate / (1.0 + self.mix.share(Kind.HOLD))


# -- the schedule (pure) --------------------------------------------------------------------------


def arrival_offsets(
    rate: float, duration_s: float, arrivals: Arrivals, rng: random.Random
) -> list[float]:
    """Intended start times, in seconds from the start, of the arrivals in [0, duration_s)."""
    if rate <= 0 or duration_s <= 0:
        return []
    if arrivals is Arrivals.CONSTANT:
        count = math.ceil(rate * duration_s - 1e-9)
        return [i / rate for i in range(count)]
    offsets: list[float] = []
    t = rng.expovariate(rate)
    while t < duration_s:
        offsets.append(t)
        t += rng.expovariate(rate)
    return offsets


@dataclass(frozen=True, slots=True)
class Op:
    """One operation. `debit` indexes the users; `credit` the merchants (`to_merchant`) or the
    users. A capture carries its hold's id in `ref` and the hold's amount."""

    kind: Kind
    debit: int
    credit: int
    to_merchant: bool
    amount: int
    fee: int = 0
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Arrival:
    offset_s: float
    op: Op


def payment_fee(amount: int) -> int:
    return FEE_FIXED_MINOR + amount * FEE_PER_MILLE // 1000


def _pick(rng: random.Random, mix: Mix) -> Kind:
    x = rng.random() * mix.total
    for kind in MIX_KINDS:
        x -= getattr(mix, kind.value)
        if x < 0:
            return kind
    return next(k for k in reversed(MIX_KINDS) if getattr(mix, k.value) > 0)


def _op(kind: Kind, rng: random.Random, config: LoadConfig) -> Op:
    users, merchants = config.accounts, config.merchant_count
    hot = config.hot_fraction > 0 and rng.random() < config.hot_fraction
    # Cold operations never touch the hot account (user 0) when there is one.
    first = 1 if config.hot_fraction > 0 else 0
    amount = rng.randint(AMOUNT_MINOR_MIN, AMOUNT_MINOR_MAX)
    if kind is Kind.TRANSFER:
        if hot:
            other = rng.randrange(1, users)
            if rng.random() < 0.5:
                return Op(kind, other, 0, False, amount)
            return Op(kind, 0, other, False, amount)
        debit, credit = rng.sample(range(first, users), 2)
        return Op(kind, debit, credit, False, amount)
    debit = 0 if hot else rng.randrange(first, users)
    fee = payment_fee(amount) if kind is Kind.PAYMENT else 0
    return Op(kind, debit, rng.randrange(merchants), True, amount, fee)


def build_plan(config: LoadConfig) -> list[Arrival]:
    """The whole run's arrivals (warm-up included), reproducible from `config.seed`."""
    times = random.Random(f"{config.seed}:arrivals")
    ops = random.Random(f"{config.seed}:operations")
    offsets = arrival_offsets(
        config.operation_rate, config.warmup_s + config.duration_s, config.arrivals, times
    )
    return [Arrival(t, _op(_pick(ops, config.mix), ops, config)) for t in offsets]


def user_funding(operations: int) -> int:
    """What each user is given: more than all the run's operations could take from it."""
    return (operations + 1) * (AMOUNT_MINOR_MAX + payment_fee(AMOUNT_MINOR_MAX)) + 10_000


# -- recording ------------------------------------------------------------------------------------


def _histogram() -> Any:
    return HdrHistogram(LATENCY_US_MIN, LATENCY_US_MAX, LATENCY_DIGITS)


def _ms(us: int | float) -> float:
    return round(float(us) / 1000.0, 3)


def latency_summary(histogram: Any) -> dict[str, float | int]:
    """Count, p50/p90/p99/p99.9, max and mean of a histogram, in milliseconds."""
    count = int(histogram.get_total_count())
    summary: dict[str, float | int] = {"count": count}
    for p in PERCENTILES:
        value = histogram.get_value_at_percentile(p) if count else 0
        summary[f"p{p:g}"] = _ms(int(value))
    summary["max"] = _ms(int(histogram.get_max_value()) if count else 0)
    summary["mean"] = _ms(float(histogram.get_mean_value()) if count else 0.0)
    return summary


class Recorder:
    """Latencies and counts. The main histogram holds acknowledged requests of the measured
    phase; errors are counted by kind, warm-up ones included."""

    def __init__(self, *, keep_samples: bool = False) -> None:
        self.histogram: Any = _histogram()
        self.by_kind: dict[Kind, Any] = {}
        self.window: Any = _histogram()
        self.sent = 0
        self.sent_measured = 0
        self.ok = 0
        self.ok_measured = 0
        self.errors: Counter[str] = Counter()
        self.errors_measured = 0
        self.samples: list[tuple[float, int]] | None = [] if keep_samples else None

    def launched(self, measured: bool) -> None:
        self.sent += 1
        self.sent_measured += measured

    def success(self, kind: Kind, intended_s: float, latency_us: int, measured: bool) -> None:
        value = min(max(latency_us, LATENCY_US_MIN), LATENCY_US_MAX)
        self.ok += 1
        self.window.record_value(value)
        if self.samples is not None:
            self.samples.append((intended_s, latency_us))
        if not measured:
            return
        self.ok_measured += 1
        self.histogram.record_value(value)
        per_kind = self.by_kind.get(kind)
        if per_kind is None:
            per_kind = self.by_kind[kind] = _histogram()
        per_kind.record_value(value)

    def failure(self, error: str, measured: bool) -> None:
        self.errors[error] += 1
        self.errors_measured += measured

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


# -- the open loop --------------------------------------------------------------------------------


class RequestFailed(Exception):  # noqa: N818 (a request's outcome, named for what it says)
    """A request answered with an error; `kind` is how it is counted (``409 exceeds_credits``)."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message or kind)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Outcome:
    """An acknowledged request: the transfer ids it returned, accounts it created, and the
    request it schedules next (a hold's capture)."""

    transfer_ids: tuple[str, ...]
    accounts: tuple[str, ...] = ()
    follow_up: Op | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    op: Op
    outcome: Outcome
    measured: bool


@dataclass(frozen=True, slots=True)
class Progress:
    """A live view of the run."""

    elapsed_s: float
    phase: str
    sent: int
    ok: int
    errors: int
    in_flight: int
    rate: float
    p99_window_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class RunStats:
    started: float
    measure_start: float
    schedule_end: float
    finished: float
    measured_end: float
    interrupted: bool
    cpu_s: float = 0.0  # this process's CPU time over the run (load generation and answers)


Execute = Callable[[Op], Awaitable[Outcome]]


class OpenLoop:
    """Launch each arrival at its intended time; measure from that time, not from the launch.

    `execute` performs one operation and returns its `Outcome` or raises (`RequestFailed`, or
    anything else: counted by exception type). An outcome's `follow_up` is due
    `follow_up_delay_s` after the acknowledgement, and is measured from then.
    """

    def __init__(
        self,
        schedule: Sequence[Arrival],
        execute: Execute,
        *,
        in_flight_max: int,
        warmup_s: float = 0.0,
        follow_up_delay_s: float = 0.0,
        recorder: Recorder | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.schedule = schedule
        self.execute = execute
        self.in_flight_max = in_flight_max
        self.warmup_s = warmup_s
        self.follow_up_delay_s = follow_up_delay_s
        self.recorder = recorder if recorder is not None else Recorder()
        self.acks: list[Ack] = []
        self._stop = stop if stop is not None else asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._follow_ups = 0
        self._t0 = 0.0
        self._measured_end = 0.0

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def stop(self) -> None:
        """Stop launching scheduled arrivals; outstanding requests and captures finish."""
        self._stop.set()

    async def run(
        self, on_tick: Callable[[Progress], None] | None = None, tick_s: float = TICK_S
    ) -> RunStats:
        loop = asyncio.get_running_loop()
        started = loop.time()
        cpu_started = time.process_time()
        self._t0 = t0 = started + START_LEAD_S
        self._measured_end = t0 + self.warmup_s
        ticker = None
        if on_tick is not None:
            ticker = asyncio.create_task(self._tick(on_tick, tick_s))
        interrupted = False
        try:
            for arrival in self.schedule:
                if self._stop.is_set():
                    interrupted = True
                    break
                due = t0 + arrival.offset_s
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._launch(arrival.op, due)
            schedule_end = loop.time()
            while self._tasks or self._follow_ups:
                await asyncio.sleep(0.005)
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            if on_tick is not None:
                on_tick(self.progress(loop.time(), window_s=0.0))
        return RunStats(
            started=started,
            measure_start=t0 + self.warmup_s,
            schedule_end=schedule_end,
            finished=loop.time(),
            measured_end=self._measured_end,
            interrupted=interrupted,
            cpu_s=time.process_time() - cpu_started,
        )

    def _launch(self, op: Op, due: float) -> None:
        measured = due - self._t0 >= self.warmup_s
        if len(self._tasks) >= self.in_flight_max:
            self.recorder.failure(SATURATED, measured)
            return
        self.recorder.launched(measured)
        task = asyncio.get_running_loop().create_task(self._one(op, due, measured))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _follow(self, op: Op, due: float) -> None:
        self._follow_ups -= 1
        self._launch(op, due)

    async def _one(self, op: Op, due: float, measured: bool) -> None:
        loop = asyncio.get_running_loop()
        error: str | None = None
        outcome: Outcome | None = None
        try:
            outcome = await self.execute(op)
        except RequestFailed as exc:
            error = exc.kind
        except Exception as exc:
            error = type(exc).__name__
        done = loop.time()
        if measured:
            self._measured_end = max(self._measured_end, done)
        if outcome is None:
            self.recorder.failure(error or "unknown", measured)
            return
        latency_us = round((done - due) * 1e6)
        self.recorder.success(op.kind, due - self._t0, latency_us, measured)
        self.acks.append(Ack(op, outcome, measured))
        if outcome.follow_up is not None:
            follow_due = done + self.follow_up_delay_s
            self._follow_ups += 1
            loop.call_at(follow_due, self._follow, outcome.follow_up, follow_due)

    def progress(self, now: float, window_s: float) -> Progress:
        r = self.recorder
        window_count = int(r.window.get_total_count())
        p99_window = _ms(int(r.window.get_value_at_percentile(99.0))) if window_count else 0.0
        r.window.reset()
        total = int(r.histogram.get_total_count())
        p99 = _ms(int(r.histogram.get_value_at_percentile(99.0))) if total else 0.0
        elapsed = now - self._t0
        if elapsed < self.warmup_s:
            phase = "warm-up"
        elif self._stop.is_set() or elapsed > self.warmup_s + self._schedule_span():
            phase = "draining"
        else:
            phase = "measuring"
        return Progress(
            elapsed_s=max(elapsed, 0.0),
            phase=phase,
            sent=r.sent,
            ok=r.ok,
            errors=r.error_count,
            in_flight=len(self._tasks),
            rate=window_count / window_s if window_s > 0 else 0.0,
            p99_window_ms=p99_window,
            p99_ms=p99,
        )

    def _schedule_span(self) -> float:
        return (self.schedule[-1].offset_s - self.warmup_s) if self.schedule else 0.0

    async def _tick(self, on_tick: Callable[[Progress], None], tick_s: float) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(tick_s)
            now = loop.time()
            on_tick(self.progress(now, now - last))
            last = now


# -- targets --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counters:
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            self.debits_posted - other.debits_posted,
            self.credits_posted - other.credits_posted,
            self.debits_pending - other.debits_pending,
            self.credits_pending - other.credits_pending,
        )


ZERO: Final = Counters(0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Inspection:
    """A transfer as the target shows it: in the engine or not, its accounts, its audit."""

    transfer_id: str
    in_engine: bool
    debit: str | None = None
    credit: str | None = None
    leg: str | None = None
    audit: tuple[str, ...] = ()


class LedgerTarget(Protocol):
    """What the load generator needs of a ledger: accounts, the four writes, and reads for the
    checks. Ids are strings in the API's form (``0x`` and 32 hex digits)."""

    description: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def open_account(self, owner_id: str, *, merchant: bool) -> str: ...

    async def deposit(self, account: str, amount: int) -> Outcome: ...

    async def pay(self, payer: str, merchant: str, amount: int, fee: int, key: str) -> Outcome: ...

    async def hold(self, debit: str, credit: str, amount: int, key: str) -> Outcome: ...

    async def capture(self, hold_id: str, key: str) -> Outcome: ...

    async def transfer(self, debit: str, credit: str, amount: int, key: str) -> Outcome: ...

    async def inspect(self, transfer_ids: Sequence[str]) -> list[Inspection]: ...

    async def counters(self, account_ids: Sequence[str]) -> dict[str, Counters]: ...


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _bounded(limit: int, jobs: Iterable[Awaitable[Any]]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


class HttpTarget:
    """A running tbledger service, reached with an admin key through `tbledger.client` on its
    aiohttp transport (one pooled session, keep-alive, at most `connections` connections): at
    these rates httpx would spend more CPU per request than the service and measure itself.

    Merchants get the run's fee schedule (`FEE_PER_MILLE` as basis points, `FEE_FIXED_MINOR`),
    so that the platform charges each payment `payment_fee` of its amount: a request never sets
    its own price."""

    def __init__(self, url: str, api_key: str, *, ledger: str, connections: int) -> None:
        self.url = url.rstrip("/")
        self.description = f"http {self.url}"
        self._api_key = api_key
        self._ledger = ledger
        self._connections = connections
        self._client: AsyncLedgerClient | None = None

    async def open(self) -> None:
        transport = AiohttpTransport(
            self.url,
            headers={"Authorization": f"Bearer {self._api_key}"},
            timeout_s=HTTP_TIMEOUT_S,
            connections=self._connections,
            keepalive_s=HTTP_KEEPALIVE_S,
            read_attempts=HTTP_READ_ATTEMPTS,
        )
        self._client = AsyncLedgerClient(transport=transport)
        try:
            await self.client.get_balances(["0x1"])
        except ApiAuthError as exc:
            await self.close()
            kind = f"{exc.status} {exc.code}"
            raise RequestFailed(kind, "the API key was refused (an admin key?)") from None
        except AccountNotFoundError:
            pass  # the key works: 0x1 is nobody's account
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> AsyncLedgerClient:
        if self._client is None:
            raise RuntimeError("the target is not open")
        return self._client

    @staticmethod
    async def _call(work: Awaitable[_R]) -> _R:
        """`work`'s answer; an error answer as `RequestFailed`, counted by status and code
        (``409 exceeds_credits``), no answer by the transport's exception."""
        try:
            return await work
        except TbledgerError as exc:
            answer = answer_of(exc)
            if answer is None:
                raise
            if answer.status is None:
                cause = exc.__cause__
                raise RequestFailed(type(cause or exc).__name__, str(exc)) from exc
            raise RequestFailed(f"{answer.status} {answer.code}", str(exc)) from exc

    async def open_account(self, owner_id: str, *, merchant: bool) -> str:
        account = await self._call(
            self.client.create_account(
                ledger=self._ledger,
                account_type="merchant" if merchant else "user",
                owner_id=owner_id,
            )
        )
        if merchant:
            await self._call(
                self.client.set_fee_schedule(
                    account.id,
                    fee_bps=FEE_PER_MILLE * 10,
                    fee_fixed=FEE_FIXED_MINOR,
                    fee_payer="payer",
                )
            )
        return account.id

    async def deposit(self, account: str, amount: int) -> Outcome:
        # The amounts are ints of minor units: the client reads an int as the flows do.
        result = await self._call(
            self.client.deposit(account_id=account, amount=amount, ledger=self._ledger)
        )
        return _flow_outcome(result.transfers)

    async def pay(self, payer: str, merchant: str, amount: int, fee: int, key: str) -> Outcome:
        # `fee` is what the merchant's schedule charges (set when it was opened): the platform
        # prices the payment, the request does not.
        result = await self._call(
            self.client.pay(
                payer_id=payer,
                merchant_id=merchant,
                amount=amount,
                ledger=self._ledger,
                idempotency_key=key,
            )
        )
        if int(result.details.fee_minor) != fee:
            raise RequestFailed("fee_mismatch", f"charged {result.details.fee_minor}, not {fee}")
        outcome = _flow_outcome(result.transfers)
        return replace(outcome, accounts=(result.details.refundable_account_id,))

    def _spec(self, debit: str, credit: str, amount: int) -> TransferSpec:
        return TransferSpec(
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            ledger=self._ledger,
        )

    async def hold(self, debit: str, credit: str, amount: int, key: str) -> Outcome:
        spec = self._spec(debit, credit, amount)
        result = await self._call(self.client.create_pending_transfer(spec, idempotency_key=key))
        return _result_outcome(result)

    async def capture(self, hold_id: str, key: str) -> Outcome:
        result = await self._call(self.client.post_pending_transfer(hold_id, idempotency_key=key))
        return _result_outcome(result)

    async def transfer(self, debit: str, credit: str, amount: int, key: str) -> Outcome:
        spec = self._spec(debit, credit, amount)
        result = await self._call(self.client.create_transfer(spec, idempotency_key=key))
        return _result_outcome(result)

    async def _inspect_one(self, transfer_id: str) -> Inspection:
        try:
            found = await self._call(self.client.get_transfer(transfer_id))
        except RequestFailed as exc:
            if exc.kind.startswith("404"):
                return Inspection(transfer_id, in_engine=False)
            raise
        leg = found.metadata.get("leg")
        return Inspection(
            transfer_id,
            in_engine=found.timestamp is not None,
            debit=found.debit_account_id,
            credit=found.credit_account_id,
            leg=leg if isinstance(leg, str) else None,
            audit=tuple(e.kind for e in found.audit),
        )

    async def inspect(self, transfer_ids: Sequence[str]) -> list[Inspection]:
        limit = min(self._connections, CHECK_CONCURRENCY_MAX)
        return await _bounded(limit, (self._inspect_one(t) for t in transfer_ids))

    async def _balances(self, ids: Sequence[str]) -> dict[str, Counters]:
        balances = await self._call(self.client.get_balances(ids))
        return {
            b.account_id: Counters(
                int(b.debits_posted),
                int(b.credits_posted),
                int(b.debits_pending),
                int(b.credits_pending),
            )
            for b in balances
        }

    async def counters(self, account_ids: Sequence[str]) -> dict[str, Counters]:
        limit = min(self._connections, SETUP_CONCURRENCY_MAX)
        pages = await _bounded(
            limit, (self._balances(c) for c in _chunks(account_ids, HTTP_BALANCES_PER_CALL))
        )
        return {k: v for page in pages for k, v in page.items()}


def _result_outcome(result: TransferResult) -> Outcome:
    if not result.ok:
        raise RequestFailed(f"refused {result.status}")
    return Outcome((result.id,))


def _flow_outcome(results: Sequence[TransferResult]) -> Outcome:
    failed = [r for r in results if not r.ok]
    if failed:
        raise RequestFailed(f"refused {failed[0].status}")
    return Outcome(tuple(r.id for r in results))


class LibraryTarget:
    """`LedgerService` and `SpendEngine` in this process (engine and store from URLs)."""

    def __init__(self, engine_url: str, database_url: str | None, *, ledger: str) -> None:
        self._engine_url = engine_url
        self._database_url = database_url
        self._ledger_ref = ledger
        self._tmp: str | None = None
        self.description = f"library {engine_url}"
        # Set by open().
        self._service: Any = None
        self._spend: SpendEngine | None = None
        self._ledger = 0
        self._code = 0

    async def open(self) -> None:
        from tbledger.config import Settings  # noqa: PLC0415 (the library is heavy to import)
        from tbledger.flows import SpendEngine  # noqa: PLC0415
        from tbledger.service import LedgerService  # noqa: PLC0415

        database_url = self._database_url
        if database_url is None:
            self._tmp = tempfile.mkdtemp(prefix="tbledger-loadtest-")
            database_url = f"sqlite:///{Path(self._tmp) / 'tbledger.db'}"
        self.description = f"library engine {self._engine_url}, store {database_url}"
        service = LedgerService(Settings(engine_url=self._engine_url, database_url=database_url))
        await service.connect(background=True)
        self._service = service
        spend = self._spend = SpendEngine(service)
        book = spend.chart.ledger(self._ledger_ref)
        self._ledger = int(book.code)
        self._code = int(spend.chart.transfer_code("PAYMENT").code)
        await spend.ensure_system_accounts([self._ledger])

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()
            self._service = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    async def _guarded(self, work: Awaitable[Any]) -> Any:
        try:
            return await work
        except TbledgerError as exc:
            code = getattr(exc, "code", None)
            kind = type(exc).__name__ + (f" {code}" if code else "")
            raise RequestFailed(kind, str(exc)) from exc

    @property
    def _flows(self) -> SpendEngine:
        if self._spend is None:
            raise RuntimeError("the library target is not open")
        return self._spend

    async def open_account(self, owner_id: str, *, merchant: bool) -> str:
        from tbledger.ids import format_id  # noqa: PLC0415

        info = await self._guarded(
            self._flows.open_account(
                owner_id, ledger=self._ledger, account_type="merchant" if merchant else "user"
            )
        )
        return format_id(info.id)

    async def deposit(self, account: str, amount: int) -> Outcome:
        # The load generator's amounts are ints of minor units, as the flows read an int.
        result = await self._guarded(
            self._flows.deposit(account=account, amount=amount, ledger=self._ledger)
        )
        return _library_outcome(result.transfers)

    async def pay(self, payer: str, merchant: str, amount: int, fee: int, key: str) -> Outcome:
        from tbledger.ids import format_id  # noqa: PLC0415

        result = await self._guarded(
            self._flows.pay(
                payer=payer,
                merchant=merchant,
                amount=amount,
                ledger=self._ledger,
                fee=fee,
                idempotency_key=key,
            )
        )
        outcome = _library_outcome(result.transfers)
        return replace(outcome, accounts=(format_id(result.refundable_account_id),))

    def _request(self, debit: str, credit: str, amount: int, key: str, *, pending: bool) -> Any:
        from tbledger.service import TransferRequest  # noqa: PLC0415

        return TransferRequest(
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            ledger=self._ledger,
            code=self._code,
            pending=pending,
            idempotency_key=key,
        )

    async def hold(self, debit: str, credit: str, amount: int, key: str) -> Outcome:
        request = self._request(debit, credit, amount, key, pending=True)
        result = await self._guarded(self._service.create_pending_transfer(request))
        return _library_outcome([result])

    async def capture(self, hold_id: str, key: str) -> Outcome:
        result = await self._guarded(
            self._service.post_pending_transfer(hold_id, idempotency_key=key)
        )
        return _library_outcome([result])

    async def transfer(self, debit: str, credit: str, amount: int, key: str) -> Outcome:
        request = self._request(debit, credit, amount, key, pending=False)
        result = await self._guarded(self._service.create_transfer(request))
        return _library_outcome([result])

    async def inspect(self, transfer_ids: Sequence[str]) -> list[Inspection]:
        from tbledger.ids import format_id, parse_id  # noqa: PLC0415

        service = self._service
        found: list[Inspection] = []
        for chunk in _chunks(transfer_ids, LOOKUP_CHUNK):
            ids = [parse_id(t) for t in chunk]
            engine = {t.id: t for t in await service.get_transfers(ids)}
            intents = await service.store.get_intents(ids)
            for text, ident in zip(chunk, ids, strict=True):
                audit = await service.get_transfer_audit(ident)
                source = engine.get(ident) or intents.get(ident)
                intent = intents.get(ident)
                found.append(
                    Inspection(
                        text,
                        in_engine=ident in engine,
                        debit=None if source is None else format_id(source.debit_account_id),
                        credit=None if source is None else format_id(source.credit_account_id),
                        leg=None if intent is None else intent.metadata.get("leg"),
                        audit=tuple(e.kind.value for e in audit),
                    )
                )
        return found

    async def counters(self, account_ids: Sequence[str]) -> dict[str, Counters]:
        from tbledger.ids import format_id  # noqa: PLC0415

        out: dict[str, Counters] = {}
        for chunk in _chunks(account_ids, LOOKUP_CHUNK):
            for b in await self._service.get_balances(list(chunk)):
                out[format_id(b.account_id)] = Counters(
                    b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending
                )
        return out


def _library_outcome(results: Iterable[Any]) -> Outcome:
    from tbledger.ids import format_id  # noqa: PLC0415

    results = list(results)
    failed = [r for r in results if not r.ok]
    if failed:
        raise RequestFailed(f"refused {failed[0].status}")
    return Outcome(tuple(format_id(r.id) for r in results))


# -- setup, driver, checks ------------------------------------------------------------------------


@dataclass
class Setup:
    """The accounts of the run and the ledger's counters once they are funded."""

    users: list[str]
    merchants: list[str]
    roles: dict[str, str]
    baseline: dict[str, Counters]
    funding_minor: int
    seconds: float


async def prepare(target: LedgerTarget, config: LoadConfig, run_id: str, operations: int) -> Setup:
    """Open and fund the accounts; find the ledger's system accounts; snapshot the counters."""
    started = time.monotonic()
    limit = min(config.connections, SETUP_CONCURRENCY_MAX)
    users = await _bounded(
        limit,
        (
            target.open_account(f"loadtest-{run_id}-user-{i}", merchant=False)
            for i in range(config.accounts)
        ),
    )
    merchants = await _bounded(
        limit,
        (
            target.open_account(f"loadtest-{run_id}-merchant-{i}", merchant=True)
            for i in range(config.merchant_count)
        ),
    )
    funding = user_funding(operations)
    deposits = await _bounded(
        limit,
        itertools.chain(
            (target.deposit(u, funding) for u in users),
            (target.deposit(m, MERCHANT_FUNDING_MINOR) for m in merchants),
        ),
    )
    # One payment before the run shows the fee pool and buffer (and proves the path works).
    probe = await target.pay(
        users[-1], merchants[0], AMOUNT_MINOR_MIN, payment_fee(AMOUNT_MINOR_MIN), f"{run_id}-probe"
    )
    inspected = await target.inspect([deposits[0].transfer_ids[0], *probe.transfer_ids])
    # The system accounts are found from the transfers' shape, not from what a caller could
    # write: a deposit's one leg is debited to the treasury; of the payment's legs, the one
    # from the payer to another account than the merchant credits the fee pool, and the one
    # crediting the payment's refund allowance is debited to the buffer.
    roles: dict[str, str] = {}
    payer, merchant, allowance = users[-1], merchants[0], probe.accounts[0]
    for found in inspected:
        if found.transfer_id == deposits[0].transfer_ids[0] and found.debit:
            roles["treasury"] = found.debit
        elif found.debit == payer and found.credit not in (None, merchant):
            roles["fee_pool"] = str(found.credit)
        elif found.credit == allowance and found.debit:
            roles["buffer"] = found.debit
    missing = {"treasury", "fee_pool", "buffer"} - set(roles)
    if missing:
        raise RuntimeError(f"cannot find the ledger's {', '.join(sorted(missing))} account(s)")
    known = [*users, *merchants, *roles.values(), *probe.accounts]
    baseline = await target.counters(known)
    return Setup(users, merchants, roles, baseline, funding, time.monotonic() - started)


class Driver:
    """Turns an `Op` into a target call, with its accounts and a unique idempotency key."""

    def __init__(self, target: LedgerTarget, setup: Setup, run_id: str) -> None:
        self.target = target
        self.users = setup.users
        self.merchants = setup.merchants
        self.run_id = run_id
        self._seq = itertools.count(1)

    async def execute(self, op: Op) -> Outcome:
        key = f"{self.run_id}-{next(self._seq)}"
        debit = self.users[op.debit]
        credit = self.merchants[op.credit] if op.to_merchant else self.users[op.credit]
        if op.kind is Kind.PAYMENT:
            return await self.target.pay(debit, credit, op.amount, op.fee, key)
        if op.kind is Kind.HOLD:
            outcome = await self.target.hold(debit, credit, op.amount, key)
            capture = replace(op, kind=Kind.CAPTURE, ref=outcome.transfer_ids[0])
            return replace(outcome, follow_up=capture)
        if op.kind is Kind.CAPTURE:
            if op.ref is None:
                raise RequestFailed("capture without a hold")
            return await self.target.capture(op.ref, key)
        return await self.target.transfer(debit, credit, op.amount, key)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


def expected_movement(acks: Iterable[Ack]) -> tuple[int, int]:
    """What the acknowledged requests moved: (posted, still pending), summed over transfers."""
    posted = 0
    holds: dict[str, int] = {}
    captured: set[str] = set()
    for ack in acks:
        op = ack.op
        if op.kind is Kind.PAYMENT:
            # payment leg + fee leg + refund allowance leg (memo units, same ledger)
            posted += 2 * op.amount + op.fee
        elif op.kind is Kind.TRANSFER:
            posted += op.amount
        elif op.kind is Kind.CAPTURE:
            posted += op.amount
            if op.ref is not None:
                captured.add(op.ref)
        elif op.kind is Kind.HOLD:
            holds[ack.outcome.transfer_ids[0]] = op.amount
    pending = sum(amount for hold_id, amount in holds.items() if hold_id not in captured)
    return posted, pending


async def verify(
    target: LedgerTarget, config: LoadConfig, setup: Setup, acks: Sequence[Ack]
) -> tuple[list[Check], dict[str, Any]]:
    """The ledger checks after the run (see the module docstring)."""
    started = time.monotonic()
    accounts = list(
        dict.fromkeys([*setup.baseline, *(a for ack in acks for a in ack.outcome.accounts)])
    )
    after = await target.counters(accounts)
    missing_accounts = [a for a in accounts if a not in after]
    delta = ZERO
    absolute = ZERO
    for account in accounts:
        now = after.get(account, ZERO)
        absolute = Counters(
            absolute.debits_posted + now.debits_posted,
            absolute.credits_posted + now.credits_posted,
            absolute.debits_pending + now.debits_pending,
            absolute.credits_pending + now.credits_pending,
        )
        change = now - setup.baseline.get(account, ZERO)
        delta = Counters(
            delta.debits_posted + change.debits_posted,
            delta.credits_posted + change.credits_posted,
            delta.debits_pending + change.debits_pending,
            delta.credits_pending + change.credits_pending,
        )
    balanced = (
        not missing_accounts
        and delta.debits_posted == delta.credits_posted
        and delta.debits_pending == delta.credits_pending
    )
    checks = [
        Check(
            "ledger_balanced",
            balanced,
            f"{len(accounts)} accounts (users, merchants, refund allowances, treasury, fee pool, "
            f"buffer), change since setup: debits posted {delta.debits_posted} = credits posted "
            f"{delta.credits_posted}, debits pending {delta.debits_pending} = credits pending "
            f"{delta.credits_pending}"
            + (f"; {len(missing_accounts)} accounts not found" if missing_accounts else ""),
        )
    ]
    posted, pending = expected_movement(acks)
    checks.append(
        Check(
            "movement_matches",
            delta.debits_posted == posted and delta.debits_pending == pending,
            f"acknowledged requests moved {posted} posted and left {pending} pending (minor "
            f"units); the ledger moved {delta.debits_posted} posted, {delta.debits_pending} "
            "pending",
        )
    )
    ids = list(dict.fromkeys(t for ack in acks for t in ack.outcome.transfer_ids))
    sampled = ids
    if config.check_sample and len(ids) > config.check_sample:
        sampled = random.Random(f"{config.seed}:check").sample(ids, config.check_sample)
    inspected = await target.inspect(sampled)
    absent = [i.transfer_id for i in inspected if not i.in_engine]
    incomplete = [
        i.transfer_id
        for i in inspected
        if not OUTCOME_KINDS.intersection(i.audit) or "failed" in i.audit
    ]
    scope = f"{len(sampled)} of {len(ids)}" if len(sampled) < len(ids) else f"all {len(ids)}"
    checks.append(
        Check(
            "acknowledged_in_engine",
            not absent,
            f"{scope} acknowledged transfer ids looked up; {len(absent)} missing"
            + (f" (e.g. {absent[0]})" if absent else ""),
        )
    )
    checks.append(
        Check(
            "audit_complete",
            not incomplete,
            f"{scope} acknowledged transfer ids have an audit history with an outcome; "
            f"{len(incomplete)} without" + (f" (e.g. {incomplete[0]})" if incomplete else ""),
        )
    )
    info = {
        "accounts_checked": len(accounts),
        "absolute_totals": asdict(absolute),
        "change_since_setup": asdict(delta),
        "transfer_ids_acknowledged": len(ids),
        "transfer_ids_inspected": len(sampled),
        "seconds": round(time.monotonic() - started, 3),
    }
    return checks, info


# -- the run and its report -----------------------------------------------------------------------


@dataclass
class Report:
    target: str
    config: dict[str, Any]
    setup: dict[str, Any]
    requests: dict[str, int]
    rate: dict[str, float]
    latency_ms: dict[str, float | int]
    latency_by_kind_ms: dict[str, dict[str, float | int]]
    errors: dict[str, int]
    checks: list[Check]
    check_info: dict[str, Any]
    interrupted: bool = False
    histogram: Any = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return not self.errors and all(c.ok for c in self.checks) and not self.interrupted

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "config": self.config,
            "setup": self.setup,
            "requests": self.requests,
            "rate": self.rate,
            "latency_ms": self.latency_ms,
            "latency_by_kind_ms": self.latency_by_kind_ms,
            "errors": self.errors,
            "checks": [asdict(c) for c in self.checks],
            "check_info": self.check_info,
            "interrupted": self.interrupted,
            "passed": self.passed,
        }


def _config_json(config: LoadConfig) -> dict[str, Any]:
    data = asdict(config)
    data["mix"] = str(config.mix)
    data["arrivals"] = config.arrivals.value
    data["merchants"] = config.merchant_count
    data["operation_rate"] = round(config.operation_rate, 3)
    return data


async def run_loadtest(
    target: LedgerTarget,
    config: LoadConfig,
    *,
    on_tick: Callable[[Progress], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> Report:
    """Set up, run the open loop, check the ledger; the target is opened and closed here."""
    say = on_phase or (lambda _text: None)
    run_id = f"lt{secrets.token_hex(4)}"
    plan = build_plan(config)
    await target.open()
    try:
        say(
            f"setup: {config.accounts} users and {config.merchant_count} merchants on "
            f"{config.ledger}, funded by deposits ({target.description})"
        )
        setup = await prepare(target, config, run_id, len(plan))
        say(
            f"run: {len(plan)} operations at {config.rate:g} requests/s ({config.arrivals}), "
            f"{config.warmup_s:g} s warm-up + {config.duration_s:g} s"
        )
        recorder = Recorder()
        loop = OpenLoop(
            plan,
            Driver(target, setup, run_id).execute,
            in_flight_max=config.connections,
            warmup_s=config.warmup_s,
            follow_up_delay_s=config.capture_delay_s,
            recorder=recorder,
            stop=stop,
        )
        stats = await loop.run(on_tick)
        say("checking the ledger")
        try:
            checks, info = await verify(target, config, setup, loop.acks)
        except Exception as exc:  # the report says the checks failed, and why
            checks = [Check("checks_ran", False, f"the checks could not run: {exc!r}")]
            info = {}
    finally:
        await target.close()
    measured_s = max(stats.measured_end - stats.measure_start, 1e-9)
    window_s = config.duration_s
    return Report(
        target=target.description,
        config=_config_json(config),
        setup={
            "users": len(setup.users),
            "merchants": len(setup.merchants),
            "user_funding_minor": setup.funding_minor,
            "system_accounts": setup.roles,
            "seconds": round(setup.seconds, 3),
        },
        requests={
            "sent": recorder.sent,
            "ok": recorder.ok,
            "errors": recorder.error_count,
            "sent_measured": recorder.sent_measured,
            "ok_measured": recorder.ok_measured,
            "errors_measured": recorder.errors_measured,
        },
        rate={
            "target": config.rate,
            "offered": round(recorder.sent_measured / window_s, 2),
            "achieved": round(recorder.ok_measured / measured_s, 2),
            "measured_seconds": round(measured_s, 3),
            # The load generator's own CPU per request sent: far below the service's, or the
            # generator is what is measured.
            "client_cpu_us_per_request": round(stats.cpu_s / max(recorder.sent, 1) * 1e6, 1),
            "client_cpu_cores": round(stats.cpu_s / max(stats.finished - stats.started, 1e-9), 3),
        },
        latency_ms=latency_summary(recorder.histogram),
        latency_by_kind_ms={
            kind.value: latency_summary(h) for kind, h in sorted(recorder.by_kind.items())
        },
        errors=dict(recorder.errors.most_common()),
        checks=checks,
        check_info=info,
        interrupted=stats.interrupted,
        histogram=recorder.histogram,
    )


# -- rendering ------------------------------------------------------------------------------------


def render_progress(p: Progress) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    for _ in range(7):
        grid.add_column(justify="right")
    grid.add_row(
        Text("elapsed", style="bold"),
        Text("phase", style="bold"),
        Text("sent", style="bold"),
        Text("rate/s", style="bold"),
        Text("p99 now", style="bold"),
        Text("p99", style="bold"),
        Text("errors", style="bold"),
    )
    grid.add_row(
        f"{p.elapsed_s:6.1f}s",
        p.phase,
        str(p.sent),
        f"{p.rate:7.1f}",
        f"{p.p99_window_ms:.2f} ms",
        f"{p.p99_ms:.2f} ms",
        Text(str(p.errors), style="red" if p.errors else "green"),
    )
    return grid


def progress_line(p: Progress) -> str:
    return (
        f"{p.elapsed_s:6.1f}s {p.phase:9} sent={p.sent} ok={p.ok} rate={p.rate:.1f}/s "
        f"p99(last)={p.p99_window_ms:.2f}ms p99={p.p99_ms:.2f}ms in_flight={p.in_flight} "
        f"errors={p.errors}"
    )


def render_report(report: Report) -> RenderableType:
    lat = report.latency_ms
    summary = Table(title="latency (ms, from intended start)", show_header=True)
    columns = ["kind", "count", "p50", "p90", "p99", "p99.9", "max", "mean"]
    for column in columns:
        summary.add_column(column, justify="left" if column == "kind" else "right")

    def row(name: str, s: Mapping[str, float | int]) -> list[str]:
        return [name, str(s["count"])] + [
            f"{s[k]:.3f}" for k in ("p50", "p90", "p99", "p99.9", "max", "mean")
        ]

    summary.add_row(*row("all", lat), style="bold")
    for kind, s in report.latency_by_kind_ms.items():
        summary.add_row(*row(kind, s))

    req = report.requests
    totals = Table(title="requests", show_header=False)
    totals.add_column("what", style="bold")
    totals.add_column("value", justify="right")
    totals.add_row("target rate", f"{report.rate['target']:g}/s")
    totals.add_row("offered (measured)", f"{report.rate['offered']:.1f}/s")
    totals.add_row("achieved (ok)", f"{report.rate['achieved']:.1f}/s")
    if "client_cpu_us_per_request" in report.rate:
        totals.add_row(
            "load generator CPU",
            f"{report.rate['client_cpu_us_per_request']:.0f} us/request "
            f"({report.rate['client_cpu_cores']:.2f} cores)",
        )
    totals.add_row("sent (all / measured)", f"{req['sent']} / {req['sent_measured']}")
    totals.add_row("ok (all / measured)", f"{req['ok']} / {req['ok_measured']}")
    totals.add_row(
        "errors",
        Text(str(req["errors"]), style="red" if req["errors"] else "green"),
    )
    parts: list[RenderableType] = [summary, totals]
    if report.errors:
        errors = Table(title="errors by kind")
        errors.add_column("kind")
        errors.add_column("count", justify="right")
        for kind, count in report.errors.items():
            errors.add_row(kind, str(count))
        parts.append(errors)
    checks = Table(title="ledger checks")
    checks.add_column("check")
    checks.add_column("result")
    checks.add_column("detail", overflow="fold")
    for c in report.checks:
        checks.add_row(
            c.name,
            Text("pass" if c.ok else "FAIL", style="green" if c.ok else "bold red"),
            c.detail,
        )
    parts.append(checks)
    verdict = "PASS" if report.passed else "FAIL"
    if report.interrupted:
        verdict += " (interrupted)"
    parts.append(Text(verdict, style="bold green" if report.passed else "bold red"))
    return Group(*parts)


# -- the command ----------------------------------------------------------------------------------


def make_target(
    kind: str,
    *,
    url: str,
    api_key: str | None,
    engine_url: str,
    database_url: str | None,
    ledger: str,
    connections: int,
) -> LedgerTarget:
    if kind == "http":
        if not api_key:
            raise ValueError(
                "the http target needs an admin key: pass --api-key or set TBLEDGER_API_KEY "
                "(tbledger keys create --admin --name load)"
            )
        return HttpTarget(url, api_key, ledger=ledger, connections=connections)
    if kind == "library":
        return LibraryTarget(engine_url, database_url, ledger=ledger)
    raise ValueError(f"unknown target {kind!r}: http or library")


class _Display:
    """Live progress on a terminal; a line every few seconds otherwise."""

    def __init__(self, console: Console, *, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.live: Live | None = None
        self._last_line = 0.0

    def __enter__(self) -> _Display:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def phase(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, markup=False)

    def tick(self, p: Progress) -> None:
        if self.quiet:
            return
        if self.console.is_terminal:
            if self.live is None:
                self.live = Live(
                    render_progress(p), console=self.console, refresh_per_second=4, transient=True
                )
                self.live.start()
            else:
                self.live.update(render_progress(p))
            return
        now = time.monotonic()
        if now - self._last_line >= LOG_EVERY_S:
            self._last_line = now
            self.console.print(progress_line(p), markup=False)


def command(
    *,
    target: str,
    url: str,
    api_key: str | None,
    engine_url: str,
    database_url: str | None,
    rate: float,
    duration: float,
    arrivals: str,
    seed: int,
    accounts: int,
    merchants: int | None,
    hot_fraction: float,
    mix: str,
    ledger: str,
    connections: int,
    capture_delay: float,
    check_sample: int,
    warmup: float,
    json_path: Path | None,
    json_stdout: bool,
) -> int:
    """``tbledger loadtest``: run, print the report, write it; 0 if there were no errors and
    every check passed. Raises ValueError for bad options."""
    try:
        process = Arrivals(arrivals.lower())
    except ValueError:
        raise ValueError(f"unknown arrival process {arrivals!r}: constant or poisson") from None
    config = LoadConfig(
        rate=rate,
        duration_s=duration,
        warmup_s=warmup,
        arrivals=process,
        seed=seed,
        accounts=accounts,
        merchants=merchants,
        hot_fraction=hot_fraction,
        mix=Mix.parse(mix),
        ledger=ledger,
        connections=connections,
        capture_delay_s=capture_delay,
        check_sample=check_sample,
    )
    chosen = make_target(
        target,
        url=url,
        api_key=api_key,
        engine_url=engine_url,
        database_url=database_url,
        ledger=ledger,
        connections=connections,
    )
    err = Console(stderr=True, highlight=False)

    async def main(display: _Display) -> Report:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, stop.set)
        try:
            return await run_loadtest(
                chosen, config, on_tick=display.tick, on_phase=display.phase, stop=stop
            )
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)

    with _Display(err, quiet=json_stdout) as display:
        report = run_loop(main(display))
    data = report.to_json()
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(data, indent=2) + "\n")
    if json_stdout:
        print(json.dumps(data, indent=2))
    else:
        out = Console(highlight=False)
        out.print(render_report(report))
        if json_path is not None:
            err.print(f"report written to {json_path}", markup=False)
    return 0 if report.passed else 1
