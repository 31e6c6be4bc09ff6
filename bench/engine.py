"""Throughput of create_transfers: the embedded twin against a real TigerBeetle server.

What it measures, in transfers per second (median of ``--repeat`` runs):

* full batches: ``--batches`` calls of ``create_transfers`` with 8189 transfers each (the largest
  batch TigerBeetle accepts), one after another, on ``ClientSync``;
* single requests: ``--singles`` calls with one transfer each, one after another, on
  ``ClientSync``;
* concurrent singles: ``--concurrency`` asyncio tasks (default 100) on one ``ClientAsync``, each
  awaiting one single-transfer ``create_transfers`` after another, ``--concurrent-singles``
  requests in all;

for three engines: ``tbledger.embedded`` in memory (``path=None``), ``tbledger.embedded`` durable
(an fsynced journal in a temporary folder, see ``--journal-dir``) and, when one is available, the
official ``tigerbeetle`` client against a real server. When the real server is measured, the
twin/real ratio of each mode (from this same run) is printed too.

Method: every client first gets its own ``--accounts`` accounts (ledger 1, code 1). Transfers
move amount 1 between two distinct accounts drawn from a seeded RNG (``--seed``), with fresh ids
from ``tigerbeetle.id()``. Ids and ``Transfer`` objects are built before each timed region; the
timed region holds only the client calls. Each mode is warmed up once (a shorter run), then timed
``--repeat`` times. Every result status must be CREATED and the accounts' posted debits must add
up to the transfers sent, or the benchmark stops with an error.

Run from the repository root::

    python bench/engine.py                        # twin only
    TIGERBEETLE_BIN=/path/to/tigerbeetle python bench/engine.py
    TIGERBEETLE_ADDRESSES=127.0.0.1:3000 python bench/engine.py --json bench.json

``TIGERBEETLE_BIN`` names a server binary: a fresh data file is formatted in a temporary folder
and one production-mode replica is started on a free loopback port for the run.
``TIGERBEETLE_ADDRESSES`` names a running cluster (``TIGERBEETLE_CLUSTER_ID``, default 0); the
benchmark creates fresh accounts and transfers in it. With neither, the real-server rows are
skipped. Figures depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tigerbeetle as tb

REPO_ROOT = Path(__file__).resolve().parent.parent
BATCH_EVENTS_MAX = 8189  # TigerBeetle's production batch limit (tbledger.limits.BATCH_EVENTS_MAX)
LEDGER = 1
CODE = 1
NO_SERVER = "skipped: no real server (set TIGERBEETLE_BIN or TIGERBEETLE_ADDRESSES)"

MODE_BATCHES = "batches"
MODE_SINGLES = "singles"
MODE_CONCURRENT = "concurrent"
MODES = (MODE_BATCHES, MODE_SINGLES, MODE_CONCURRENT)

TWIN_MEMORY = "twin memory"
TWIN_DURABLE = "twin durable"
REAL = "real server"
BACKENDS = (TWIN_MEMORY, TWIN_DURABLE, REAL)


def _import_paths() -> None:
    """Make `tests.support` (repo root) and `tbledger` (src/) importable when run as a script."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    src = str(REPO_ROOT / "src")
    if src not in sys.path:
        sys.path.append(src)  # an installed tbledger, if any, comes first


# -- results -----------------------------------------------------------------------------------


@dataclass
class Measurement:
    backend: str
    mode: str
    transfers_per_run: int = 0
    calls_per_run: int = 0
    seconds: list[float] = field(default_factory=list)
    skipped: str | None = None

    @property
    def rates(self) -> list[float]:
        return [self.transfers_per_run / s for s in self.seconds]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend, "mode": self.mode}
        if self.skipped is not None:
            out["skipped"] = self.skipped
            return out
        out.update(
            transfers_per_run=self.transfers_per_run,
            calls_per_run=self.calls_per_run,
            seconds=self.seconds,
            transfers_per_s=self.rates,
            median_transfers_per_s=self.median,
        )
        return out


class BenchmarkError(RuntimeError):
    """A request did not do what the benchmark needs: its figures would be meaningless."""


def check_results(what: str, results: Sequence[Any], expected: int, created: Any) -> None:
    """Fail loudly unless there are `expected` results and every status is CREATED."""
    if len(results) != expected:
        raise BenchmarkError(f"{what}: {len(results)} results for {expected} events")
    bad = [(i, r.status) for i, r in enumerate(results) if r.status != created]
    if bad:
        shown = ", ".join(f"#{i}: {getattr(s, 'name', s)}" for i, s in bad[:5])
        raise BenchmarkError(f"{what}: {len(bad)} of {expected} not CREATED ({shown})")


def check_replies(what: str, replies: Sequence[Sequence[Any]], sizes: Sequence[int]) -> None:
    if len(replies) != len(sizes):
        raise BenchmarkError(f"{what}: {len(replies)} replies for {len(sizes)} requests")
    created = tb.CreateTransferStatus.CREATED
    for reply, size in zip(replies, sizes, strict=True):
        check_results(what, reply, size, created)


# -- workload ----------------------------------------------------------------------------------


def new_accounts(count: int) -> list[tb.Account]:
    return [tb.Account(id=tb.id(), ledger=LEDGER, code=CODE) for _ in range(count)]


def new_transfers(rng: random.Random, account_ids: Sequence[int], count: int) -> list[tb.Transfer]:
    """`count` transfers of amount 1 between two distinct random accounts, with fresh ids."""
    n = len(account_ids)
    transfers = []
    for _ in range(count):
        debit = rng.randrange(n)
        credit = rng.randrange(n - 1)
        if credit >= debit:
            credit += 1
        transfers.append(
            tb.Transfer(
                id=tb.id(),
                debit_account_id=account_ids[debit],
                credit_account_id=account_ids[credit],
                amount=1,
                ledger=LEDGER,
                code=CODE,
            )
        )
    return transfers


def chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """`items` dealt round-robin into `parts` lists (some may be empty)."""
    return [list(items[i::parts]) for i in range(parts)]


@dataclass(frozen=True)
class Settings:
    accounts: int
    batches: int
    singles: int
    concurrency: int
    concurrent_singles: int
    repeat: int
    warmup_batches: int
    warmup_singles: int
    seed: int


# -- one client: sync modes --------------------------------------------------------------------


class SyncRunner:
    """Accounts, warm-up and timed runs of the two sequential modes on one ClientSync."""

    def __init__(self, client: Any, backend: str, settings: Settings, rng: random.Random) -> None:
        self.client = client
        self.backend = backend
        self.settings = settings
        self.rng = rng
        self.account_ids: list[int] = []
        self.sent = 0

    def setup(self) -> None:
        accounts = new_accounts(self.settings.accounts)
        created = tb.CreateAccountStatus.CREATED
        for batch in chunks(accounts, BATCH_EVENTS_MAX):
            check_results(
                f"{self.backend}: create_accounts",
                self.client.create_accounts(batch),
                len(batch),
                created,
            )
        self.account_ids = [a.id for a in accounts]

    def timed(self, requests: list[list[tb.Transfer]], what: str) -> float:
        create_transfers = self.client.create_transfers
        gc.collect()
        start = time.perf_counter()
        replies = [create_transfers(request) for request in requests]
        elapsed = time.perf_counter() - start
        check_replies(f"{self.backend}: {what}", replies, [len(r) for r in requests])
        self.sent += sum(len(r) for r in requests)
        return elapsed

    def batches(self, count: int) -> tuple[int, float]:
        transfers = new_transfers(self.rng, self.account_ids, count * BATCH_EVENTS_MAX)
        requests = chunks(transfers, BATCH_EVENTS_MAX)
        del transfers
        return len(requests), self.timed(requests, "full batches")

    def singles(self, count: int) -> tuple[int, float]:
        requests = [[t] for t in new_transfers(self.rng, self.account_ids, count)]
        return len(requests), self.timed(requests, "single requests")

    def verify_balances(self) -> None:
        verify_debits(self.backend, self.sent, self.account_ids, self.client.lookup_accounts)


def verify_debits(
    backend: str, sent: int, account_ids: Sequence[int], lookup: Callable[[list[int]], Any]
) -> None:
    total = 0
    for ids in chunks(account_ids, BATCH_EVENTS_MAX):
        found = lookup(ids)
        if len(found) != len(ids):
            raise BenchmarkError(f"{backend}: lookup_accounts found {len(found)} of {len(ids)}")
        total += sum(a.debits_posted for a in found)
    if total != sent:
        raise BenchmarkError(f"{backend}: accounts show {total} debits posted, {sent} sent")


def measure_sync(client: Any, backend: str, settings: Settings) -> list[Measurement]:
    s = settings
    runner = SyncRunner(client, backend, s, random.Random(f"{s.seed}:{backend}:sync"))
    runner.setup()
    out = []
    for mode, count, warmup, run in (
        (MODE_BATCHES, s.batches, s.warmup_batches, runner.batches),
        (MODE_SINGLES, s.singles, s.warmup_singles, runner.singles),
    ):
        m = Measurement(backend, mode)
        if warmup > 0:
            run(warmup)
        for _ in range(s.repeat):
            calls, seconds = run(count)
            m.calls_per_run = calls
            m.transfers_per_run = calls * (BATCH_EVENTS_MAX if mode == MODE_BATCHES else 1)
            m.seconds.append(seconds)
        out.append(m)
    runner.verify_balances()
    return out


# -- one client: concurrent singles ------------------------------------------------------------


async def measure_concurrent(client: Any, backend: str, settings: Settings) -> Measurement:
    s = settings
    rng = random.Random(f"{s.seed}:{backend}:async")
    accounts = new_accounts(s.accounts)
    account_created = tb.CreateAccountStatus.CREATED
    for batch in chunks(accounts, BATCH_EVENTS_MAX):
        results = await client.create_accounts(batch)
        check_results(f"{backend}: create_accounts", results, len(batch), account_created)
    account_ids = [a.id for a in accounts]
    sent = 0

    async def worker(requests: list[list[tb.Transfer]]) -> list[Any]:
        create_transfers = client.create_transfers
        return [await create_transfers(request) for request in requests]

    async def run(count: int) -> float:
        nonlocal sent
        requests = [[t] for t in new_transfers(rng, account_ids, count)]
        per_task = split(requests, s.concurrency)
        gc.collect()
        start = time.perf_counter()
        replies = await asyncio.gather(*(worker(task) for task in per_task))
        elapsed = time.perf_counter() - start
        flat = [reply for task in replies for reply in task]
        check_replies(f"{backend}: concurrent singles", flat, [1] * len(requests))
        sent += len(requests)
        return elapsed

    m = Measurement(backend, MODE_CONCURRENT)
    m.calls_per_run = m.transfers_per_run = s.concurrent_singles
    if s.warmup_singles > 0:
        await run(max(s.concurrency, s.warmup_singles))
    for _ in range(s.repeat):
        m.seconds.append(await run(s.concurrent_singles))

    total = 0
    for ids in chunks(account_ids, BATCH_EVENTS_MAX):
        found = await client.lookup_accounts(ids)
        if len(found) != len(ids):
            raise BenchmarkError(f"{backend}: lookup_accounts found {len(found)} of {len(ids)}")
        total += sum(a.debits_posted for a in found)
    if total != sent:
        raise BenchmarkError(f"{backend}: accounts show {total} debits posted, {sent} sent")
    return m


# -- backends ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    name: str
    sync_client: Callable[[], contextlib.AbstractContextManager[Any]]
    async_client: Callable[[], contextlib.AbstractAsyncContextManager[Any]]


def twin_backend(name: str, journal_dir: str | None) -> Backend:
    from tbledger.embedded import ClientAsync, ClientSync

    def path(kind: str) -> str | None:
        if journal_dir is None:
            return None
        return os.path.join(journal_dir, f"bench-{kind}.tbj")

    @contextlib.contextmanager
    def sync_client() -> Iterator[Any]:
        with ClientSync(cluster_id=0, path=path("sync")) as client:
            yield client

    @contextlib.asynccontextmanager
    async def async_client() -> AsyncIterator[Any]:
        async with ClientAsync(cluster_id=0, path=path("async")) as client:
            yield client

    return Backend(name, sync_client, async_client)


def real_backend(cluster_id: int, addresses: str) -> Backend:
    @contextlib.contextmanager
    def sync_client() -> Iterator[Any]:
        with tb.ClientSync(cluster_id=cluster_id, replica_addresses=addresses) as client:
            yield client

    @contextlib.asynccontextmanager
    async def async_client() -> AsyncIterator[Any]:
        async with tb.ClientAsync(cluster_id=cluster_id, replica_addresses=addresses) as client:
            yield client

    return Backend(REAL, sync_client, async_client)


def measure_backend(backend: Backend, settings: Settings) -> list[Measurement]:
    started = time.perf_counter()
    print(f"  measuring {backend.name} ...", end="", file=sys.stderr, flush=True)
    with backend.sync_client() as client:
        out = measure_sync(client, backend.name, settings)

    async def concurrent() -> Measurement:
        async with backend.async_client() as client:
            return await measure_concurrent(client, backend.name, settings)

    out.append(asyncio.run(concurrent()))
    print(f" {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    return out


def real_server_version(binary: str | None) -> str:
    if not binary:
        return "unknown (running cluster)"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        command = [binary, "version"]
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=30)
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines:
            return lines[0]
    return "unknown"


# -- report ------------------------------------------------------------------------------------


def mode_label(mode: str, settings: Settings) -> str:
    return {
        MODE_BATCHES: f"full batches ({BATCH_EVENTS_MAX}/call)",
        MODE_SINGLES: "single requests (sequential)",
        MODE_CONCURRENT: f"concurrent singles ({settings.concurrency} tasks, async)",
    }[mode]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Plain-text columns; cells in `right` are right-aligned. A 1-cell row spans the table."""
    widths = [len(h) for h in header]
    for row in rows:
        if len(row) == len(header):
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        if len(cells) != len(header):
            return "  ".join(cells).rstrip()
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}"


def ratios(measurements: Sequence[Measurement]) -> dict[str, dict[str, float]]:
    """twin/real median ratio per twin backend and mode, for modes the real server measured."""
    by_key = {(m.backend, m.mode): m for m in measurements if m.skipped is None}
    out: dict[str, dict[str, float]] = {}
    for twin in (TWIN_MEMORY, TWIN_DURABLE):
        for mode in MODES:
            t, r = by_key.get((twin, mode)), by_key.get((REAL, mode))
            if t is not None and r is not None:
                out.setdefault(twin, {})[mode] = t.median / r.median
    return out


def report(
    measurements: Sequence[Measurement], settings: Settings, header_lines: Sequence[str]
) -> str:
    lines = [*header_lines, ""]
    rows: list[list[str]] = []
    skipped_backends: set[str] = set()
    for m in measurements:
        if m.skipped is not None:
            if m.backend not in skipped_backends:
                rows.append([f"{m.backend:<12}  {m.skipped}"])
                skipped_backends.add(m.backend)
            continue
        rates = m.rates
        rows.append(
            [
                m.backend,
                mode_label(m.mode, settings),
                fmt_rate(m.median),
                fmt_rate(min(rates)),
                fmt_rate(max(rates)),
                f"{m.transfers_per_run:,}",
                f"{m.calls_per_run:,}",
                f"{statistics.median(m.seconds) * 1e3 / m.calls_per_run:,.3f}",
            ]
        )
    lines += table(
        [
            "backend",
            "mode",
            "transfers/s",
            "min",
            "max",
            "transfers/run",
            "calls/run",
            "ms/call",
        ],
        rows,
        right={2, 3, 4, 5, 6, 7},
    )
    lines.append("")
    lines.append(
        f"transfers/s: median of {settings.repeat} runs (min, max beside it); "
        "ms/call: median run time / calls (for concurrent singles not a latency)."
    )
    found = ratios(measurements)
    lines.append("")
    if not found:
        lines.append("twin/real ratio: not measured (no real server in this run)")
    else:
        ratio_rows = [
            [twin, *(f"{found[twin][mode]:.2f}x" if mode in found[twin] else "-" for mode in MODES)]
            for twin in (TWIN_MEMORY, TWIN_DURABLE)
            if twin in found
        ]
        lines.append("twin/real ratio (median transfers/s, this run; >1 means the twin is faster)")
        lines += table(
            ["twin", *(mode_label(mode, settings) for mode in MODES)],
            ratio_rows,
            right={1, 2, 3},
        )
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="create_transfers throughput: embedded twin (memory, durable) vs a real "
        "TigerBeetle server (set TIGERBEETLE_BIN or TIGERBEETLE_ADDRESSES).",
    )
    parser.add_argument("--batches", type=positive, default=20, help="full batches per run")
    parser.add_argument("--singles", type=positive, default=3000, help="single requests per run")
    parser.add_argument(
        "--concurrency", type=positive, default=100, help="async tasks for concurrent singles"
    )
    parser.add_argument(
        "--concurrent-singles",
        type=positive,
        default=None,
        help="single requests per concurrent run, over all tasks (default: --singles)",
    )
    parser.add_argument("--repeat", type=positive, default=3, help="timed runs; median reported")
    parser.add_argument("--accounts", type=positive, default=10_000, help="accounts per client")
    parser.add_argument(
        "--warmup-batches", type=non_negative, default=2, help="full batches in the warm-up run"
    )
    parser.add_argument(
        "--warmup-singles",
        type=non_negative,
        default=300,
        help="single requests in the warm-up runs (0: no warm-up of the single modes)",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the account-pair RNG")
    parser.add_argument(
        "--journal-dir",
        default=None,
        help="folder for the durable twin's temporary journal (default: the system temp folder)",
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated subset of: {', '.join(BACKENDS)}",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args(argv)
    if args.accounts < 2:
        parser.error("--accounts must be at least 2 (transfers need two distinct accounts)")
    chosen = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in BACKENDS]
    if unknown:
        parser.error(f"unknown backends {unknown}; choose from {list(BACKENDS)}")
    args.backends = chosen
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _import_paths()
    from tests.support.tbserver import real_server, real_server_reason

    import tbledger

    settings = Settings(
        accounts=args.accounts,
        batches=args.batches,
        singles=args.singles,
        concurrency=args.concurrency,
        concurrent_singles=args.concurrent_singles or args.singles,
        repeat=args.repeat,
        warmup_batches=args.warmup_batches,
        warmup_singles=args.warmup_singles,
        seed=args.seed,
    )
    reason = real_server_reason()
    has_env = bool(os.environ.get("TIGERBEETLE_ADDRESSES") or os.environ.get("TIGERBEETLE_BIN"))
    if reason is not None and has_env:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    binary = None if os.environ.get("TIGERBEETLE_ADDRESSES") else os.environ.get("TIGERBEETLE_BIN")

    client_version = importlib.metadata.version("tigerbeetle")
    try:
        tbledger_version = importlib.metadata.version("tbledger")
    except importlib.metadata.PackageNotFoundError:
        tbledger_version = getattr(tbledger, "__version__", "unknown")
    impl = platform.python_implementation()
    header = [
        "tbledger engine benchmark: create_transfers throughput",
        f"python {platform.python_version()} ({impl}), {platform.platform()}",
        f"cpus {os.cpu_count()}, tigerbeetle client {client_version}, tbledger {tbledger_version}",
    ]
    if REAL in args.backends:
        if reason is None:
            where = os.environ.get("TIGERBEETLE_ADDRESSES") or f"{binary} (fresh replica)"
            header.append(f"real server: {where}, {real_server_version(binary)}")
        else:
            header.append("real server: none (set TIGERBEETLE_BIN or TIGERBEETLE_ADDRESSES)")
    header.append(
        f"per client: {settings.accounts:,} accounts; {settings.batches} x {BATCH_EVENTS_MAX} "
        f"batched, {settings.singles:,} single and {settings.concurrent_singles:,} concurrent "
        f"single transfers per run; warm-up {settings.warmup_batches} batches / "
        f"{settings.warmup_singles} singles; {settings.repeat} runs; seed {settings.seed}"
    )

    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="tbledger-bench-", dir=args.journal_dir) as folder:
        if TWIN_DURABLE in args.backends:
            header.append(f"durable twin journal: {folder} (fsync on)")
        for name in args.backends:
            if name == REAL:
                if reason is not None:
                    measurements += [Measurement(REAL, mode, skipped=NO_SERVER) for mode in MODES]
                    continue
                with real_server() as server:
                    backend = real_backend(server.cluster_id, server.addresses)
                    measurements += measure_backend(backend, settings)
            else:
                journal = folder if name == TWIN_DURABLE else None
                measurements += measure_backend(twin_backend(name, journal), settings)

    print()
    print(report(measurements, settings, header))
    if args.json:
        document = {
            "environment": {
                "python": platform.python_version(),
                "implementation": impl,
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "tigerbeetle_client": client_version,
                "tbledger": tbledger_version,
                "real_server": None if reason is not None else real_server_version(binary),
            },
            "settings": {**settings.__dict__, "batch_events": BATCH_EVENTS_MAX},
            "results": [m.as_json() for m in measurements],
            "ratios_twin_over_real": ratios(measurements),
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
