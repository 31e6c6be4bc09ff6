"""What every section shares: options, sizes, results, the workload and its checks.

Every figure is a rate (transfers/s or requests/s) measured in this process (or in processes it
started) during this run; each ratio divides two figures of the same run, so load from elsewhere on
the machine affects both sides alike (within the noise of the run, shown by min and max).
"""

from __future__ import annotations

import collections
import gc
import logging
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tigerbeetle as tb

from tbledger.limits import BATCH_EVENTS_MAX

__all__ = [
    "ACCOUNT_TYPE",
    "BATCH_EVENTS_MAX",
    "CODE",
    "LEDGER",
    "SECTIONS",
    "BenchOptions",
    "BenchmarkError",
    "Figure",
    "Plan",
    "Ratio",
    "Section",
    "WarningLog",
    "chunks",
    "split",
]

_T = TypeVar("_T")

LEDGER = 1  # USD in the default chart
CODE = 1  # PAYMENT in the default chart
ACCOUNT_TYPE = "system_buffer"  # no balance limits: random transfers never fail
SECTIONS = ("engine", "service", "http", "baseline", "sweep", "events")


class BenchmarkError(RuntimeError):
    """A request did not do what the benchmark needs: its figures would be meaningless."""


# -- options and sizes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchOptions:
    """What `tbledger bench` was asked to do."""

    sections: tuple[str, ...] = SECTIONS
    quick: bool = False
    out: Path = Path("bench-results")
    postgres_url: str | None = None
    tigerbeetle_bin: str | None = None
    tigerbeetle_addresses: str | None = None
    tigerbeetle_cluster_id: int = 0
    docs: Path | None = None
    render_only: bool = False
    seed: int = 42
    repeat: int | None = None
    command: str = "tbledger bench"


@dataclass(frozen=True)
class Plan:
    """The sizes of one run: full, or `quick` (small, for CI and tests)."""

    repeat: int
    # engine
    engine_accounts: int
    engine_batches: int
    engine_singles: int
    engine_concurrency: int
    engine_concurrent_singles: int
    engine_durable_singles: int
    # service
    service_accounts: int
    service_batches: int
    service_concurrency: int
    service_concurrent: int
    service_concurrent_pg: int
    # http
    http_accounts: int
    http_connections: int
    http_client_processes: tuple[int, ...]
    http_seconds: float
    http_warmup_seconds: float
    http_latency_connections: tuple[int, ...]
    http_batch_sizes: tuple[int, ...]
    http_batch_transfers: int
    http_library_concurrent: int
    http_profile_seconds: float
    http_batch_streams: tuple[int, ...]
    # baseline
    baseline_accounts: int
    baseline_concurrency: int
    baseline_pool: int
    baseline_transfers: int
    baseline_batch_transfers: int
    # sweep
    sweep_sizes: tuple[int, ...]
    sweep_seconds: float
    sweep_transfers_max: int
    sweep_min_calls: int
    # events
    events_webhooks: int
    events_cdc: int

    @classmethod
    def full(cls, repeat: int | None = None) -> Plan:
        return cls(
            repeat=repeat or 3,
            engine_accounts=10_000,
            engine_batches=20,
            engine_singles=3_000,
            engine_concurrency=100,
            engine_concurrent_singles=10_000,
            engine_durable_singles=1_000,
            service_accounts=1_000,
            service_batches=4,
            service_concurrency=1_000,
            service_concurrent=20_000,
            service_concurrent_pg=5_000,
            http_accounts=1_000,
            http_connections=64,
            http_client_processes=(1, 2),
            http_seconds=5.0,
            http_warmup_seconds=1.0,
            http_latency_connections=(1, 4, 16, 64, 256),
            http_batch_sizes=(1_000, BATCH_EVENTS_MAX),
            http_batch_transfers=2 * BATCH_EVENTS_MAX,
            http_library_concurrent=5_000,
            http_profile_seconds=4.0,
            http_batch_streams=(1, 2),
            baseline_accounts=10_000,
            baseline_concurrency=1_000,
            baseline_pool=32,
            baseline_transfers=3_000,
            baseline_batch_transfers=2 * BATCH_EVENTS_MAX,
            sweep_sizes=(*(1 << i for i in range(13)), BATCH_EVENTS_MAX),
            sweep_seconds=0.5,
            sweep_transfers_max=200_000,
            sweep_min_calls=3,
            events_webhooks=5_000,
            events_cdc=20_000,
        )

    @classmethod
    def small(cls, repeat: int | None = None) -> Plan:
        return cls(
            repeat=repeat or 1,
            engine_accounts=1_000,
            engine_batches=2,
            engine_singles=300,
            engine_concurrency=50,
            engine_concurrent_singles=500,
            engine_durable_singles=100,
            service_accounts=200,
            service_batches=1,
            service_concurrency=200,
            service_concurrent=1_000,
            service_concurrent_pg=300,
            http_accounts=100,
            http_connections=16,
            http_client_processes=(1,),
            http_seconds=1.0,
            http_warmup_seconds=0.3,
            http_latency_connections=(),
            http_batch_sizes=(1_000,),
            http_batch_transfers=2_000,
            http_library_concurrent=300,
            http_profile_seconds=0.0,
            http_batch_streams=(1,),
            baseline_accounts=1_000,
            baseline_concurrency=100,
            baseline_pool=8,
            baseline_transfers=300,
            baseline_batch_transfers=1_000,
            sweep_sizes=(1, 16, 256, BATCH_EVENTS_MAX),
            sweep_seconds=0.05,
            sweep_transfers_max=BATCH_EVENTS_MAX,
            sweep_min_calls=1,
            events_webhooks=200,
            events_cdc=1_000,
        )


# -- results --------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured rate: its value is the median of `runs`."""

    key: str
    label: str
    unit: str
    runs: list[float] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    baseline: str | None = None  # key of the figure this one is compared with
    baseline_value: float | None = None
    ratio: float | None = None

    @property
    def value(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "value": self.value,
            "runs": self.runs,
            "min": min(self.runs) if self.runs else None,
            "max": max(self.runs) if self.runs else None,
            "baseline": self.baseline,
            "baseline_value": self.baseline_value,
            "ratio": self.ratio,
            "params": self.params,
        }
        if self.extra:
            out["extra"] = self.extra
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return out


@dataclass
class Ratio:
    """`numerator` / `denominator` (figure keys of the same run); `target`: the minimum wanted."""

    key: str
    label: str
    numerator: str
    denominator: str
    value: float | None = None
    target: float | None = None
    skipped: str | None = None

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "-"
        if self.target is None:
            return "info"
        return "met" if self.value >= self.target else "missed"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "label": self.label,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "value": self.value,
            "target": self.target,
            "verdict": self.verdict,
        }
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return out


@dataclass
class Section:
    """One section's figures, ratios and notes."""

    name: str
    title: str
    status: str = "ok"  # ok, skipped, failed
    reason: str | None = None
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def figure(self, key: str, label: str, unit: str = "transfers/s", **params: Any) -> Figure:
        found = Figure(key, label, unit, params=dict(params))
        self.figures.append(found)
        return found

    def skip(self, key: str, label: str, reason: str, unit: str = "transfers/s") -> Figure:
        found = Figure(key, label, unit, skipped=reason)
        self.figures.append(found)
        return found

    def get(self, key: str) -> Figure | None:
        return next((f for f in self.figures if f.key == key), None)

    def ratio(
        self,
        key: str,
        label: str,
        numerator: str,
        denominator: str,
        *,
        target: float | None = None,
        attach: bool = True,
    ) -> Ratio:
        """The ratio of two figures of this section (skipped if either has no value). With
        `attach`, the numerator figure records the denominator as its baseline."""
        num, den = self.get(numerator), self.get(denominator)
        found = Ratio(key, label, numerator, denominator, target=target)
        if num is None or den is None:
            found.skipped = "not measured in this run"
        elif num.value is None or den.value is None or den.value <= 0:
            found.skipped = num.skipped or den.skipped or "not measured in this run"
        else:
            found.value = num.value / den.value
            if attach and num.baseline is None:
                num.baseline = den.key
                num.baseline_value = den.value
                num.ratio = found.value
        self.ratios.append(found)
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "settings": self.settings,
            "figures": [f.as_json() for f in self.figures],
            "ratios": [r.as_json() for r in self.ratios],
            "notes": self.notes,
        }


# -- workload -------------------------------------------------------------------------------------


def chunks(items: Sequence[_T], size: int) -> list[list[_T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def split(items: Sequence[_T], parts: int) -> list[list[_T]]:
    """`items` dealt round-robin into `parts` lists (empty ones dropped)."""
    return [part for part in (list(items[i::parts]) for i in range(parts)) if part]


def uniform_pairs(rng: random.Random, ids: Sequence[_T], count: int) -> list[tuple[_T, _T]]:
    """`count` (debit, credit) pairs of two distinct accounts drawn uniformly."""
    n = len(ids)
    out = []
    for _ in range(count):
        debit = rng.randrange(n)
        credit = rng.randrange(n - 1)
        if credit >= debit:
            credit += 1
        out.append((ids[debit], ids[credit]))
    return out


def hot_pairs(rng: random.Random, ids: Sequence[_T], count: int) -> list[tuple[_T, _T]]:
    """`count` pairs that all touch `ids[0]` (the hot account), on a random side, with another
    account drawn uniformly."""
    hot, rest = ids[0], ids[1:]
    out = []
    for _ in range(count):
        other = rest[rng.randrange(len(rest))]
        out.append((hot, other) if rng.random() < 0.5 else (other, hot))
    return out


def transfers_for(pairs: Sequence[tuple[int, int]]) -> list[tb.Transfer]:
    return [
        tb.Transfer(
            id=tb.id(),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=1,
            ledger=LEDGER,
            code=CODE,
        )
        for debit, credit in pairs
    ]


def check_engine_replies(what: str, replies: Sequence[Sequence[Any]], sizes: Sequence[int]) -> None:
    """Fail loudly unless every reply has one CREATED result per event sent."""
    if len(replies) != len(sizes):
        raise BenchmarkError(f"{what}: {len(replies)} replies for {len(sizes)} requests")
    created = tb.CreateTransferStatus.CREATED
    bad: list[str] = []
    for reply, size in zip(replies, sizes, strict=True):
        if len(reply) != size:
            raise BenchmarkError(f"{what}: {len(reply)} results for {size} events")
        bad += [getattr(r.status, "name", str(r.status)) for r in reply if r.status != created]
    if bad:
        raise BenchmarkError(f"{what}: {len(bad)} not CREATED (first: {', '.join(bad[:5])})")


def check_service_replies(
    what: str, replies: Sequence[Sequence[Any]], sizes: Sequence[int]
) -> None:
    """Fail loudly unless every reply has one ``created`` TransferResult per request sent."""
    if len(replies) != len(sizes):
        raise BenchmarkError(f"{what}: {len(replies)} replies for {len(sizes)} calls")
    bad: list[str] = []
    for reply, size in zip(replies, sizes, strict=True):
        if len(reply) != size:
            raise BenchmarkError(f"{what}: {len(reply)} results for {size} requests")
        bad += [r.status for r in reply if r.status != "created"]
    if bad:
        raise BenchmarkError(f"{what}: {len(bad)} not created (first: {', '.join(bad[:5])})")


async def timed_sequential(
    call: Callable[[Any], Awaitable[_T]], requests: Sequence[Any]
) -> tuple[list[_T], float, float]:
    """Await `call` on each request in turn: the replies, the seconds it took and the CPU
    seconds this process spent meanwhile."""
    gc.collect()
    cpu = time.process_time()
    start = time.perf_counter()
    replies = [await call(request) for request in requests]
    return replies, time.perf_counter() - start, time.process_time() - cpu


async def timed_concurrent(
    call: Callable[[Any], Awaitable[_T]], requests: Sequence[Any], concurrency: int
) -> tuple[list[_T], float, float]:
    """`concurrency` tasks, each awaiting `call` on its share of `requests` one after another:
    the replies (in task order), the seconds it took and the CPU seconds this process spent."""
    import asyncio  # noqa: PLC0415

    per_task = split(requests, concurrency)

    async def worker(task: list[Any]) -> list[_T]:
        return [await call(request) for request in task]

    gc.collect()
    cpu = time.process_time()
    start = time.perf_counter()
    # return_exceptions: a failed call must not leave the other tasks running on.
    done = await asyncio.gather(*(worker(task) for task in per_task), return_exceptions=True)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    replies: list[_T] = []
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
        replies += outcome
    return replies, elapsed, cpu


# -- log ------------------------------------------------------------------------------------------


class WarningLog(logging.Handler):
    """tbledger's warnings during a run, counted (a store outage can log thousands)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        if exc is not None:
            first = (str(exc).splitlines() or [""])[0]
            text += f" ({type(exc).__name__}: {first[:200]})"
        self.counts[text] += 1

    def summary(self) -> list[str]:
        return [f"{n} x {text}" for text, n in self.counts.items()]


class Steps:
    """Where a section reports what it is doing (the runner shows it in its progress bar)."""

    def __init__(self, show: Callable[[str], None] | None = None) -> None:
        self._show = show

    def __call__(self, text: str) -> None:
        if self._show is not None:
            self._show(text)
