"""Throughput of LedgerService's write path, as ratios to the bare engine client in the same run.

Every figure is transfers per second (median of ``--repeat`` runs), measured in ONE process so
that each ratio compares two figures taken side by side: same client, same accounts, same machine
load. For each engine: ``tbledger.embedded.ClientAsync`` in memory, the same durable (an fsynced
journal in a temporary folder, see ``--journal-dir``) and, when one is available, the official
``tigerbeetle.ClientAsync`` on a real server:

1. raw baseline: ``client.create_transfers`` with full batches of 8189 ``Transfer`` objects;
2. ``LedgerService(engine=client, store=store, audit=False).create_transfers`` with lists of 8189
   ``TransferRequest`` (target: at least 0.95x of 1);
3. the same with the audit trail (``audit=True``) in PostgreSQL, in a fresh schema (target: at
   least 0.6x of 1), and in SQLite, a file in the temporary folder (informative);
4. ``--concurrency`` asyncio tasks (default 1000), each awaiting single-transfer calls one after
   another, ``--concurrent-transfers`` in all: (a) the raw client's ``create_transfers([t])``,
   (b) ``Batcher(client).create_transfers([t])``, (c) the service's ``create_transfer`` with
   ``audit=False``, (d) the same with the PostgreSQL audit trail, in a fresh schema of its own
   (informative, with its own, smaller ``--audit-concurrent-transfers``: every call commits on
   its own). Target: (b) or (c) at least 2.5x (a).

Method: each engine gets ``--accounts`` accounts of type ``system_buffer`` (no balance limits,
so random transfers never fail), created in bulk in the engine with the code and flags the
service gives that type, and mapped in bulk in every store. Transfers move amount 1 (ledger 1,
code 1) between two distinct accounts drawn from a seeded RNG (``--seed``). ``Transfer`` objects
(raw client, batcher) and ``TransferRequest`` objects (service) are built before each timed
region; the service mints the transfer ids itself, inside the timed region, as it does for any
caller. The audit-off service keeps its account mappings in a SQLite file of its own. Each mode
is warmed up once (a shorter run), then the timed runs go round-robin over the modes
(``--repeat`` rounds), so that load from elsewhere on the machine spreads over all modes alike.
Every result must be ``created`` and the accounts' posted debits must add up to the transfers
sent; a mode that fails is reported as FAILED (and the exit status is 1).

PostgreSQL is found as the test suite finds it (tests/support/database.py):
``TBLEDGER_TEST_DATABASE_URL``, else ``postgresql://postgres@127.0.0.1:5432/test``, else a
throwaway cluster if the server binaries are installed; ``--postgres-url`` overrides. The store
is migrated into fresh schemas ``tbledger_bench_<random>_<engine>`` (one for mode 3, one for
4d, so that 4d does not write into the rows mode 3 left), dropped at the end.
Without PostgreSQL, its rows are skipped with the reason.

Run from the repository root::

    python bench/service.py                        # twin only
    TIGERBEETLE_BIN=/path/to/tigerbeetle python bench/service.py
    TIGERBEETLE_ADDRESSES=127.0.0.1:3000 python bench/service.py --json service.json

``TIGERBEETLE_BIN`` names a server binary: a fresh data file is formatted in a temporary folder
and one production-mode replica is started on a free loopback port for the run.
``TIGERBEETLE_ADDRESSES`` names a running cluster (``TIGERBEETLE_CLUSTER_ID``, default 0). With
neither, the real-server rows are skipped. Figures depend on the machine and on whatever else
runs on it (PostgreSQL, on the same machine, included).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import gc
import importlib.metadata
import json
import logging
import os
import platform
import random
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tigerbeetle as tb

REPO_ROOT = Path(__file__).resolve().parent.parent
BATCH_EVENTS_MAX = 8189  # TigerBeetle's production batch limit (tbledger.limits.BATCH_EVENTS_MAX)
LEDGER = 1
CODE = 1
ACCOUNT_TYPE = "system_buffer"  # no balance limits: random transfers never fail
NO_SERVER = "skipped: no real server (set TIGERBEETLE_BIN or TIGERBEETLE_ADDRESSES)"

TWIN_MEMORY = "twin memory"
TWIN_DURABLE = "twin durable"
REAL = "real server"
BACKENDS = (TWIN_MEMORY, TWIN_DURABLE, REAL)

BATCH = "batch"
CONCURRENT = "concurrent"


def _import_paths() -> None:
    """Make `tests.support` (repo root) and `tbledger` (src/) importable when run as a script."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    src = str(REPO_ROOT / "src")
    if src not in sys.path:
        sys.path.append(src)  # an installed tbledger, if any, comes first


# -- modes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    key: str
    kind: str  # BATCH or CONCURRENT
    label: str
    # The service's store (None: no service): MAPPINGS (audit off, SQLite: account mappings
    # only), or an audit trail in a store of its own (POSTGRES..., SQLITE_AUDIT).
    store: str | None


MAPPINGS = "sqlite"
POSTGRES = "postgresql"
POSTGRES_CONCURRENT = "postgresql-concurrent"
SQLITE_AUDIT = "sqlite-audit"

RAW_BATCH = Mode("raw_batch", BATCH, "1   raw create_transfers", None)
SVC_BATCH = Mode("service_batch", BATCH, "2   service, audit off", MAPPINGS)
SVC_BATCH_PG = Mode("service_batch_pg", BATCH, "3   service, audit PostgreSQL", POSTGRES)
SVC_BATCH_SQLITE = Mode("service_batch_sqlite", BATCH, "3s  service, audit SQLite", SQLITE_AUDIT)
RAW_CONC = Mode("raw_concurrent", CONCURRENT, "4a  raw create_transfers([t])", None)
BATCHER_CONC = Mode("batcher_concurrent", CONCURRENT, "4b  Batcher.create_transfers([t])", None)
SVC_CONC = Mode(
    "service_concurrent", CONCURRENT, "4c  service create_transfer, audit off", MAPPINGS
)
SVC_CONC_PG = Mode(
    "service_concurrent_pg",
    CONCURRENT,
    "4d  service create_transfer, audit PostgreSQL",
    POSTGRES_CONCURRENT,
)
MODES = (
    RAW_BATCH,
    SVC_BATCH,
    SVC_BATCH_PG,
    SVC_BATCH_SQLITE,
    RAW_CONC,
    BATCHER_CONC,
    SVC_CONC,
    SVC_CONC_PG,
)


@dataclass(frozen=True)
class Target:
    """`numerator`/`denominator` of medians; `minimum` None: informative only."""

    name: str
    numerator: Mode
    denominator: Mode
    minimum: float | None


TARGETS = (
    Target("2/1   service batch, audit off / raw", SVC_BATCH, RAW_BATCH, 0.95),
    Target("3/1   service batch, audit PostgreSQL / raw", SVC_BATCH_PG, RAW_BATCH, 0.6),
    Target("3s/1  service batch, audit SQLite / raw", SVC_BATCH_SQLITE, RAW_BATCH, None),
    Target("4b/4a Batcher / raw, concurrent singles", BATCHER_CONC, RAW_CONC, 2.5),
    Target("4c/4a service audit off / raw, concurrent", SVC_CONC, RAW_CONC, 2.5),
    Target("4d/4a service audit PostgreSQL / raw, conc.", SVC_CONC_PG, RAW_CONC, None),
)
# Target 4 is met when either 4b/4a or 4c/4a reaches its minimum.
EITHER_OF = ("4b/4a", "4c/4a")


# -- results -----------------------------------------------------------------------------------


@dataclass
class Measurement:
    backend: str
    mode: Mode
    transfers_per_run: int = 0
    calls_per_run: int = 0
    seconds: list[float] = field(default_factory=list)
    engine_requests: int = 0  # requests the engine received in the timed runs (when known)
    engine_events: int = 0
    skipped: str | None = None
    failed: str | None = None  # the error that stopped this mode (its figures are incomplete)

    @property
    def missing(self) -> str | None:
        """Why there are no figures: skipped, or FAILED with the error."""
        if self.skipped is not None:
            return self.skipped
        if self.failed is not None:
            return f"FAILED: {self.failed}"
        return None

    @property
    def rates(self) -> list[float]:
        return [self.transfers_per_run / s for s in self.seconds]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def events_per_request(self) -> float | None:
        return self.engine_events / self.engine_requests if self.engine_requests else None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.backend,
            "mode": self.mode.key,
            "label": self.mode.label,
        }
        if self.skipped is not None:
            out["skipped"] = self.skipped
            return out
        if self.failed is not None:
            out["failed"] = self.failed
        out.update(
            transfers_per_run=self.transfers_per_run,
            calls_per_run=self.calls_per_run,
            seconds=self.seconds,
            transfers_per_s=self.rates,
            median_transfers_per_s=self.median,
            engine_events_per_request=self.events_per_request,
        )
        return out


class BenchmarkError(RuntimeError):
    """A request did not do what the benchmark needs: its figures would be meaningless."""


def check_engine_results(what: str, replies: Sequence[Sequence[Any]], sizes: Sequence[int]) -> None:
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


def check_service_results(
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


# -- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    accounts: int
    batches: int
    warmup_batches: int
    concurrency: int
    concurrent_transfers: int
    audit_concurrent_transfers: int
    warmup_transfers: int
    audit_warmup_transfers: int
    repeat: int
    seed: int


def chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """`items` dealt round-robin into `parts` lists (empty ones dropped)."""
    return [part for part in (list(items[i::parts]) for i in range(parts)) if part]


# -- stores ------------------------------------------------------------------------------------


@dataclass
class Postgres:
    """Where the PostgreSQL audit stores go, or why there are none."""

    url: str | None
    origin: str
    version: str | None = None
    reason: str | None = None
    schemas: list[str] = field(default_factory=list)


def asyncpg_dsn(url: str) -> str:
    """A plain postgresql:// DSN for asyncpg (SQLAlchemy driver suffixes dropped)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def postgres_version(url: str) -> str:
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


async def drop_schemas(url: str, schemas: Sequence[str]) -> None:
    import asyncpg

    if not schemas:
        return
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    try:
        for schema in schemas:
            # The append-only triggers refuse TRUNCATE, not DROP.
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


@contextlib.contextmanager
def find_postgres(url: str | None) -> Any:
    """The PostgreSQL server to use (a `Postgres`), as the test suite finds it."""
    from tests.support.database import answers, postgres_server

    if url is not None:
        reason = answers(url)
        yield Postgres(url=url if reason is None else None, origin="--postgres-url", reason=reason)
        return
    with postgres_server() as server:
        if isinstance(server, str):
            yield Postgres(url=None, origin="none", reason=server)
        else:
            yield Postgres(url=server.url, origin=server.origin)


# -- one engine --------------------------------------------------------------------------------


def slug(backend: str) -> str:
    return backend.replace(" ", "_")


class EngineRun:
    """One engine client, its accounts, stores and services, and the modes measured on them."""

    def __init__(
        self,
        client: Any,
        backend: str,
        settings: Settings,
        folder: str,
        postgres: Postgres,
    ) -> None:
        self.client = client
        self.backend = backend
        self.settings = settings
        self.folder = folder
        self.postgres = postgres
        self.rng = random.Random(f"{settings.seed}:{backend}")
        self.account_ids: list[int] = []
        self.sent = 0
        self.stores: dict[str, Any] = {}
        self.services: dict[str, Any] = {}
        self.batcher: Any = None
        self.skipped: dict[str, str] = {}

    # -- setup and teardown -------------------------------------------------------------------

    async def open(self, modes: Sequence[Mode]) -> None:
        """The stores and services `modes` use: each store fresh, each service on its own."""
        from tbledger.engine.batcher import Batcher
        from tbledger.service import LedgerService
        from tbledger.store import Store, StoreOptions

        name = slug(self.backend)
        for key in dict.fromkeys(m.store for m in modes if m.store is not None):
            if key.startswith(POSTGRES):
                if self.postgres.url is None:
                    self.skipped[key] = f"skipped: no PostgreSQL ({self.postgres.reason})"
                    continue
                schema = f"tbledger_bench_{secrets.token_hex(4)}_{name}"
                self.postgres.schemas.append(schema)  # dropped at the end even if this fails
                options = StoreOptions(schema=schema)
                store = await Store.connect(self.postgres.url, migrate=True, options=options)
            else:
                path = os.path.join(self.folder, f"{key}-{name}.db")
                store = await Store.connect(f"sqlite:///{path}", migrate=True)
            self.stores[key] = store
            service = LedgerService(engine=self.client, store=store, audit=key != MAPPINGS)
            await service.connect()
            self.services[key] = service
        self.batcher = Batcher(self.client)
        await self.create_accounts()

    async def close(self) -> None:
        for service in self.services.values():
            await service.close()
        for store in self.stores.values():
            await store.close()

    async def create_accounts(self) -> None:
        """Accounts in the engine (one request per 8189) and their mappings in every store (one
        insert per 8189), with the code and flags `LedgerService.create_account` would use."""
        from tbledger.balances import ACCOUNT_TYPE_CODES, AccountType, default_flags
        from tbledger.store import AccountRecord

        code = ACCOUNT_TYPE_CODES[AccountType(ACCOUNT_TYPE)]
        flags = default_flags(ACCOUNT_TYPE)
        accounts = [
            tb.Account(id=tb.id(), ledger=LEDGER, code=code, flags=flags)
            for _ in range(self.settings.accounts)
        ]
        created = tb.CreateAccountStatus.CREATED
        for batch in chunks(accounts, BATCH_EVENTS_MAX):
            results = await self.client.create_accounts(batch)
            bad = [r.status for r in results if r.status != created]
            if len(results) != len(batch) or bad:
                raise BenchmarkError(f"{self.backend}: create_accounts: {bad[:5]}")
        records = [
            AccountRecord(
                id=a.id, account_type=ACCOUNT_TYPE, ledger=LEDGER, code=code, owner_id=f"bench-{i}"
            )
            for i, a in enumerate(accounts)
        ]
        for store in self.stores.values():
            for batch in chunks(records, BATCH_EVENTS_MAX):
                await store.create_accounts(batch)
        self.account_ids = [a.id for a in accounts]

    async def verify_balances(self) -> None:
        total = 0
        for ids in chunks(self.account_ids, BATCH_EVENTS_MAX):
            found = await self.client.lookup_accounts(ids)
            if len(found) != len(ids):
                raise BenchmarkError(
                    f"{self.backend}: lookup_accounts found {len(found)} of {len(ids)}"
                )
            total += sum(a.debits_posted for a in found)
        if total != self.sent:
            raise BenchmarkError(
                f"{self.backend}: accounts show {total} debits posted, {self.sent} sent"
            )

    # -- workload -----------------------------------------------------------------------------

    def pairs(self, count: int) -> list[tuple[int, int]]:
        ids = self.account_ids
        n = len(ids)
        out = []
        for _ in range(count):
            debit = self.rng.randrange(n)
            credit = self.rng.randrange(n - 1)
            if credit >= debit:
                credit += 1
            out.append((ids[debit], ids[credit]))
        return out

    def transfers(self, count: int) -> list[tb.Transfer]:
        return [
            tb.Transfer(
                id=tb.id(),
                debit_account_id=debit,
                credit_account_id=credit,
                amount=1,
                ledger=LEDGER,
                code=CODE,
            )
            for debit, credit in self.pairs(count)
        ]

    def requests(self, count: int) -> list[Any]:
        from tbledger.service import TransferRequest

        return [
            TransferRequest(
                debit_account_id=debit, credit_account_id=credit, amount=1, ledger=LEDGER, code=CODE
            )
            for debit, credit in self.pairs(count)
        ]

    def engine_counter(self, mode: Mode) -> Any:
        """The batcher whose stats count this mode's engine requests, if any."""
        if mode is BATCHER_CONC:
            return self.batcher
        if mode.store is not None:
            return self.services[mode.store].batcher
        return None

    # -- one run of one mode ------------------------------------------------------------------

    async def run(self, mode: Mode, *, warmup: bool) -> tuple[int, int, float, int, int]:
        """One run of `mode`: (transfers, calls, seconds, engine requests, engine events)."""
        s = self.settings
        if mode.kind == BATCH:
            count = (s.warmup_batches if warmup else s.batches) * BATCH_EVENTS_MAX
        elif warmup:
            count = s.audit_warmup_transfers if mode is SVC_CONC_PG else s.warmup_transfers
        elif mode is SVC_CONC_PG:
            count = s.audit_concurrent_transfers
        else:
            count = s.concurrent_transfers
        what = f"{self.backend}: {mode.label.split(maxsplit=1)[1]}"
        call: Callable[[Any], Awaitable[Any]]
        service: Any = None
        if mode in (RAW_BATCH, RAW_CONC, BATCHER_CONC):
            items: list[Any] = self.transfers(count)
            check = check_engine_results
            if mode is BATCHER_CONC:
                call = self.batcher.create_transfers
            else:
                call = self.client.create_transfers
        else:
            items = self.requests(count)
            check = check_service_results
            service = self.services[mode.store or ""]
            call = service.create_transfers if mode.kind == BATCH else service.create_transfer
        counter = self.engine_counter(mode)
        before = (counter.stats.requests, counter.stats.events) if counter is not None else (0, 0)
        service_stats = dict(service.stats) if service is not None else {}

        if mode.kind == BATCH:
            calls = chunks(items, BATCH_EVENTS_MAX)
            del items
            gc.collect()
            start = time.perf_counter()
            replies = [await call(batch) for batch in calls]
            elapsed = time.perf_counter() - start
            sizes = [len(batch) for batch in calls]
        else:
            single = mode in (SVC_CONC, SVC_CONC_PG)
            calls = [item if single else [item] for item in items]
            del items
            per_task = split(calls, s.concurrency)

            async def worker(task: list[Any]) -> list[Any]:
                return [await call(request) for request in task]

            gc.collect()
            start = time.perf_counter()
            # return_exceptions: a failed call must not leave the other tasks running on.
            done = await asyncio.gather(
                *(worker(task) for task in per_task), return_exceptions=True
            )
            elapsed = time.perf_counter() - start
            replies = []
            for outcome in done:
                if isinstance(outcome, BaseException):
                    raise outcome
                replies += outcome
            if single:
                replies = [[reply] for reply in replies]
            sizes = [1] * len(calls)
        check(what, replies, sizes)
        if service is not None:
            # The service reports success when the engine applied a transfer even if writing
            # its outcome to the audit trail failed (recovery writes it later): count those.
            grew = {k: v - service_stats.get(k, 0) for k, v in service.stats.items()}
            grew = {k: v for k, v in grew.items() if v}
            if grew:
                raise BenchmarkError(f"{what}: the service counted {grew} during the run")
        sent = sum(sizes)
        self.sent += sent
        after = (counter.stats.requests, counter.stats.events) if counter is not None else (0, 0)
        requests = after[0] - before[0]
        events = after[1] - before[1]
        if counter is None:  # the raw client: one request per call
            requests, events = len(calls), sent
        return sent, len(calls), elapsed, requests, events

    async def measure(self, modes: Sequence[Mode]) -> list[Measurement]:
        out = {mode.key: Measurement(self.backend, mode) for mode in modes}
        runnable = []
        for mode in modes:
            reason = self.skipped.get(mode.store or "")
            if reason is not None:
                out[mode.key].skipped = reason
            else:
                runnable.append(mode)
        failed = False

        async def attempt(mode: Mode, *, warmup: bool) -> Any:
            """One run, or None if it failed (the mode is then marked and dropped)."""
            nonlocal failed
            try:
                return await self.run(mode, warmup=warmup)
            except Exception as exc:
                failed = True
                text = " ".join(f"{type(exc).__name__}: {exc}".split())
                out[mode.key].failed = text if len(text) <= 300 else text[:297] + "..."
                print(f"\n  {self.backend}: {mode.key} FAILED: {text}", file=sys.stderr)
                runnable.remove(mode)
                return None

        started = time.perf_counter()
        for mode in list(runnable):
            await attempt(mode, warmup=True)
        progress(f"warm-up {time.perf_counter() - started:.1f}s")
        for round_ in range(self.settings.repeat):
            started = time.perf_counter()
            for mode in list(runnable):
                done = await attempt(mode, warmup=False)
                if done is None:
                    continue
                sent, calls, seconds, requests, events = done
                m = out[mode.key]
                m.transfers_per_run, m.calls_per_run = sent, calls
                m.seconds.append(seconds)
                m.engine_requests += requests
                m.engine_events += events
            progress(f"round {round_ + 1} {time.perf_counter() - started:.1f}s")
        if failed:
            # A failed run may have applied part of its transfers: the count cannot be checked.
            print(f"\n  {self.backend}: balances not verified (a mode failed)", file=sys.stderr)
        else:
            await self.verify_balances()
        return list(out.values())


# -- backends ----------------------------------------------------------------------------------


class ConciseLog(logging.Handler):
    """tbledger's warnings, one line each, the first time only (a store outage can log
    thousands of tracebacks); `summary()` counts the repeats."""

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
        if self.counts[text] == 1:
            print(f"\n  log: {text}", file=sys.stderr, flush=True)

    def summary(self) -> list[str]:
        return [f"{n} x {text}" for text, n in self.counts.items()]


def progress(text: str) -> None:
    print(f", {text}", end="", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def twin_client(journal: str | None) -> AsyncIterator[Any]:
    from tbledger.embedded import ClientAsync

    async with ClientAsync(cluster_id=0, path=journal) as client:
        yield client


@contextlib.asynccontextmanager
async def real_client(cluster_id: int, addresses: str) -> AsyncIterator[Any]:
    async with tb.ClientAsync(cluster_id=cluster_id, replica_addresses=addresses) as client:
        yield client


def measure_backend(
    backend: str,
    client: Callable[[], contextlib.AbstractAsyncContextManager[Any]],
    settings: Settings,
    folder: str,
    postgres: Postgres,
    modes: Sequence[Mode],
) -> list[Measurement]:
    started = time.perf_counter()
    print(f"  measuring {backend} ...", end="", file=sys.stderr, flush=True)

    async def run() -> list[Measurement]:
        async with client() as engine:
            bench = EngineRun(engine, backend, settings, folder, postgres)
            try:
                await bench.open(modes)
                progress(f"setup {time.perf_counter() - started:.1f}s")
                return await bench.measure(modes)
            finally:
                await bench.close()

    out = asyncio.run(run())
    print(f", total {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
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


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Plain-text columns; cells in `right` are right-aligned. A short row's last cell spans the
    rest of the table (a reason in place of figures)."""
    widths = [len(h) for h in header]
    for row in rows:
        cells = row if len(row) == len(header) else row[:-1]
        for i, c in enumerate(cells):
            widths[i] = max(widths[i], len(c))

    def line(cells: Sequence[str]) -> str:
        if len(cells) != len(header):
            lead = [c.ljust(w) for c, w in zip(cells[:-1], widths, strict=False)]
            return "  ".join([*lead, cells[-1]]).rstrip()
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.4f}x"


@dataclass(frozen=True)
class Ratio:
    backend: str
    target: Target
    value: float | None
    skipped: str | None = None

    @property
    def code(self) -> str:
        return self.target.name.split(maxsplit=1)[0]

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "-"
        if self.target.minimum is None:
            return "info"
        return "PASS" if self.value >= self.target.minimum else "BELOW"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.backend,
            "ratio": self.code,
            "name": self.target.name,
            "numerator": self.target.numerator.key,
            "denominator": self.target.denominator.key,
            "target_min": self.target.minimum,
            "value": self.value,
            "verdict": self.verdict,
        }
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return out


def ratios(measurements: Sequence[Measurement]) -> list[Ratio]:
    by_key = {(m.backend, m.mode.key): m for m in measurements}
    backends = list(dict.fromkeys(m.backend for m in measurements))
    out = []
    for backend in backends:
        for target in TARGETS:
            num = by_key.get((backend, target.numerator.key))
            den = by_key.get((backend, target.denominator.key))
            if num is None or den is None:
                continue
            skipped = None
            for m in (num, den):
                if skipped is None and m.skipped is not None:
                    skipped = m.skipped
                elif skipped is None and m.failed is not None:
                    skipped = f"not measured: {m.mode.label.split()[0]} FAILED"
            value = None if skipped else num.median / den.median
            out.append(Ratio(backend, target, value, skipped))
    return out


def target_4(found: Sequence[Ratio], backend: str) -> str:
    values = [r for r in found if r.backend == backend and r.code in EITHER_OF]
    if not values or any(r.value is None for r in values):
        return "-"
    return "PASS" if any(r.verdict == "PASS" for r in values) else "BELOW"


def skipped_backends(measurements: Sequence[Measurement]) -> dict[str, str]:
    """Backends whose every mode was skipped for one reason (shown as one row)."""
    out: dict[str, str] = {}
    for backend in dict.fromkeys(m.backend for m in measurements):
        reasons = {m.skipped for m in measurements if m.backend == backend}
        if len(reasons) == 1 and (reason := reasons.pop()) is not None:
            out[backend] = reason
    return out


def report(
    measurements: Sequence[Measurement], settings: Settings, header_lines: Sequence[str]
) -> str:
    lines = [*header_lines, ""]
    rows: list[list[str]] = []
    whole = skipped_backends(measurements)
    for m in measurements:
        if m.backend in whole:
            if m is next(x for x in measurements if x.backend == m.backend):
                rows.append([m.backend, whole[m.backend]])
            continue
        if m.missing is not None:
            rows.append([m.backend, m.mode.label, m.missing])
            continue
        rates = m.rates
        per_request = m.events_per_request
        rows.append(
            [
                m.backend,
                m.mode.label,
                fmt_rate(m.median),
                fmt_rate(min(rates)),
                fmt_rate(max(rates)),
                f"{m.transfers_per_run:,}",
                f"{m.calls_per_run:,}",
                "-" if per_request is None else f"{per_request:,.1f}",
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
            "events/req",
        ],
        rows,
        right={2, 3, 4, 5, 6, 7},
    )
    lines.append("")
    lines.append(
        f"transfers/s: median of {settings.repeat} runs (min, max beside it). Modes 1-3: "
        f"{BATCH_EVENTS_MAX} transfers per call, one call after another; 4a-4d: "
        f"{settings.concurrency} asyncio tasks, one transfer per call. events/req: transfers per "
        "engine request (batcher statistics; for the raw client 1 per call as submitted: the "
        "official client may still coalesce concurrent calls on the wire)."
    )
    found = ratios(measurements)
    lines.append("")
    lines.append("ratios (medians of this run; targets from the brief; info: no target)")
    ratio_rows: list[list[str]] = []
    for r in found:
        if r.backend in whole:
            if r is next(x for x in found if x.backend == r.backend):
                ratio_rows.append([r.backend, whole[r.backend]])
            continue
        if r.skipped is not None:
            ratio_rows.append([r.backend, r.target.name, r.skipped])
            continue
        ratio_rows.append(
            [
                r.backend,
                r.target.name,
                fmt_ratio(r.value),
                "-" if r.target.minimum is None else f">= {r.target.minimum:.2f}x",
                r.verdict,
            ]
        )
    lines += table(["backend", "ratio", "value", "target", "verdict"], ratio_rows, right={2, 3})
    lines.append("")
    summary = [
        f"{backend}: {target_4(found, backend)}"
        for backend in dict.fromkeys(r.backend for r in found)
        if target_4(found, backend) != "-"
    ]
    if summary:
        lines.append("target 4, (4b or 4c) >= 2.50x 4a: " + "; ".join(summary))
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------------------


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="LedgerService write throughput as ratios to the bare engine client: embedded "
        "twin (memory, durable) and a real TigerBeetle server (set TIGERBEETLE_BIN or "
        "TIGERBEETLE_ADDRESSES), with the audit trail off, in PostgreSQL and in SQLite.",
    )
    parser.add_argument(
        "--batches", type=positive, default=4, help="full batches per run of modes 1-3"
    )
    parser.add_argument(
        "--warmup-batches", type=positive, default=1, help="full batches in each warm-up run"
    )
    parser.add_argument(
        "--concurrency", type=positive, default=1000, help="asyncio tasks in modes 4a-4d"
    )
    parser.add_argument(
        "--concurrent-transfers",
        type=positive,
        default=20_000,
        help="single-transfer calls per run of modes 4a-4c, over all tasks",
    )
    parser.add_argument(
        "--audit-concurrent-transfers",
        type=positive,
        default=500,
        help="single-transfer calls per run of mode 4d (a few commits each: slow; fewer calls "
        "than --concurrency leave some tasks idle)",
    )
    parser.add_argument(
        "--warmup-transfers",
        type=positive,
        default=None,
        help="single-transfer calls in each warm-up run of modes 4a-4c (default: --concurrency)",
    )
    parser.add_argument(
        "--audit-warmup-transfers",
        type=positive,
        default=100,
        help="single-transfer calls in the warm-up run of mode 4d",
    )
    parser.add_argument("--repeat", type=positive, default=3, help="timed runs; median reported")
    parser.add_argument("--accounts", type=positive, default=1000, help="accounts per engine")
    parser.add_argument("--seed", type=int, default=42, help="seed of the account-pair RNG")
    parser.add_argument(
        "--journal-dir",
        default=None,
        help="folder for the temporary journal and SQLite files (default: the system temp folder)",
    )
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="PostgreSQL server for the audit trail (default: as the tests find one)",
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated subset of: {', '.join(BACKENDS)}",
    )
    parser.add_argument(
        "--modes",
        default=",".join(m.key for m in MODES),
        help=f"comma-separated subset of: {', '.join(m.key for m in MODES)}",
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
    by_key = {m.key: m for m in MODES}
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in by_key]
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {list(by_key)}")
    args.modes = [m for m in MODES if m.key in modes]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _import_paths()
    from tests.support.tbserver import real_server, real_server_reason

    import tbledger

    settings = Settings(
        accounts=args.accounts,
        batches=args.batches,
        warmup_batches=args.warmup_batches,
        concurrency=args.concurrency,
        concurrent_transfers=args.concurrent_transfers,
        audit_concurrent_transfers=args.audit_concurrent_transfers,
        warmup_transfers=args.warmup_transfers or args.concurrency,
        audit_warmup_transfers=args.audit_warmup_transfers,
        repeat=args.repeat,
        seed=args.seed,
    )
    log = ConciseLog()
    tbledger_log = logging.getLogger("tbledger")
    tbledger_log.addHandler(log)
    tbledger_log.propagate = False
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
        "tbledger service benchmark: LedgerService write path vs the bare engine client",
        f"python {platform.python_version()} ({impl}), {platform.platform()}",
        f"cpus {os.cpu_count()}, tigerbeetle client {client_version}, tbledger {tbledger_version}, "
        f"sqlite {sqlite3.sqlite_version}",
    ]
    server_version = None
    if REAL in args.backends:
        if reason is None:
            server_version = real_server_version(binary)
            where = os.environ.get("TIGERBEETLE_ADDRESSES") or f"{binary} (fresh replica)"
            header.append(f"real server: {where}, {server_version}")
        else:
            header.append("real server: none (set TIGERBEETLE_BIN or TIGERBEETLE_ADDRESSES)")

    measurements: list[Measurement] = []
    with (
        find_postgres(args.postgres_url) as postgres,
        tempfile.TemporaryDirectory(prefix="tbledger-bench-", dir=args.journal_dir) as folder,
    ):
        if postgres.url is not None:
            postgres.version = asyncio.run(postgres_version(postgres.url))
            header.append(
                f"postgresql {postgres.version} ({postgres.origin}): a fresh schema per engine "
                "for 3 and another for 4d, dropped at the end"
            )
        else:
            header.append(f"postgresql: none ({postgres.reason})")
        s = settings
        in_flight = min(s.concurrency, s.audit_concurrent_transfers)
        header.append(
            f"per engine: {s.accounts:,} {ACCOUNT_TYPE} accounts; modes 1-3: {s.batches} x "
            f"{BATCH_EVENTS_MAX} transfers per run; modes 4: {s.concurrency} tasks, "
            f"{s.concurrent_transfers:,} transfers per run (4d: {s.audit_concurrent_transfers:,}, "
            f"at most {in_flight:,} in flight); warm-up {s.warmup_batches} batch(es) / "
            f"{s.warmup_transfers:,} transfers (4d: {s.audit_warmup_transfers:,}); {s.repeat} "
            f"rounds; seed {s.seed}"
        )
        header.append(f"temporary folder (journal, SQLite stores): {folder} (fsync on)")
        try:
            for name in args.backends:
                if name == REAL:
                    if reason is not None:
                        measurements += [
                            Measurement(REAL, mode, skipped=NO_SERVER) for mode in args.modes
                        ]
                        continue
                    with real_server() as server:
                        measurements += measure_backend(
                            REAL,
                            functools.partial(real_client, server.cluster_id, server.addresses),
                            settings,
                            folder,
                            postgres,
                            args.modes,
                        )
                else:
                    journal = (
                        os.path.join(folder, "bench-durable.tbj") if name == TWIN_DURABLE else None
                    )
                    measurements += measure_backend(
                        name,
                        functools.partial(twin_client, journal),
                        settings,
                        folder,
                        postgres,
                        args.modes,
                    )
        finally:
            if postgres.url is not None:
                asyncio.run(drop_schemas(postgres.url, postgres.schemas))

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
                "sqlite": sqlite3.sqlite_version,
                "real_server": server_version,
                "postgresql": postgres.version,
                "postgresql_origin": postgres.origin,
                "postgresql_skipped": postgres.reason,
            },
            "settings": {**settings.__dict__, "batch_events": BATCH_EVENTS_MAX},
            "results": [m.as_json() for m in measurements],
            "ratios": [r.as_json() for r in ratios(measurements)],
            "log_warnings": log.summary(),
            "target_4_either": {
                backend: target_4(ratios(measurements), backend)
                for backend in dict.fromkeys(m.backend for m in measurements)
            },
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    for line in log.summary():
        print(f"log: {line}", file=sys.stderr)
    failures = [m for m in measurements if m.failed is not None]
    for m in failures:
        print(f"error: {m.backend}: {m.mode.key} FAILED: {m.failed}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
