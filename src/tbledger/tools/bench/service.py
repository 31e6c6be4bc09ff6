"""Section 2, service: LedgerService's write path as ratios to the raw client of the same engine.

For each engine (the twin in memory, the twin with its durable journal, and, when there is one,
the official client on a real server):

* batch path: the raw ``create_transfers`` with full batches of 8189 ``Transfer`` objects, vs
  ``LedgerService.create_transfers`` with lists of 8189 ``TransferRequest`` with the audit trail
  off (account mappings in SQLite) and with the audit trail in PostgreSQL (a fresh schema);
* concurrent single calls (N asyncio tasks, each awaiting one single-transfer call after
  another): the raw client's ``create_transfers([t])`` vs ``Batcher(client)`` and the service's
  ``create_transfer`` (the coalescer), audit off and with the PostgreSQL audit trail (a fresh
  schema of its own; fewer calls, since every group of calls commits twice).

The journal twin is the product's default engine: there a request waits for its fsync, as on a
real server it waits for the network, so merging calls pays. The twin in memory runs a small
request inline, with no per-request cost to amortise.

Each mode is warmed up once, then timed ``repeat`` rounds, round-robin over the modes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from tbledger.engine.batcher import Batcher
from tbledger.tools.bench.common import BATCH_EVENTS_MAX, Section
from tbledger.tools.bench.context import Context
from tbledger.tools.bench.workbench import (
    ENGINE_KINDS,
    ENGINE_LABELS,
    REAL,
    Run,
    Workbench,
    engine_client,
    events_per_request,
    open_service,
)

__all__ = ["MODES", "run_service"]

# key -> (label, needs PostgreSQL)
MODES: dict[str, tuple[str, bool]] = {
    "raw_batch": (f"raw create_transfers, {BATCH_EVENTS_MAX}/call", False),
    "service_batch": (f"service.create_transfers, audit off, {BATCH_EVENTS_MAX}/call", False),
    "service_batch_pg": (
        f"service.create_transfers, audit PostgreSQL, {BATCH_EVENTS_MAX}/call",
        True,
    ),
    "raw_concurrent": ("raw create_transfers([t]), concurrent", False),
    "batcher_concurrent": ("Batcher.create_transfers([t]), concurrent", False),
    "service_concurrent": ("service.create_transfer, audit off, concurrent", False),
    "service_concurrent_pg": ("service.create_transfer, audit PostgreSQL, concurrent", True),
}
# (numerator, denominator, label, target): the service's targets are ratios to the raw client of
# the same engine: the batch path >= 0.95x without the audit trail and >= 0.6x with it, and
# concurrent single calls through the coalescer >= 2.5x.
RATIOS: tuple[tuple[str, str, str, float | None], ...] = (
    ("service_batch", "raw_batch", "service batch, audit off / raw batch", 0.9),
    ("service_batch_pg", "raw_batch", "service batch, audit PostgreSQL / raw batch", 0.6),
    ("batcher_concurrent", "raw_concurrent", "Batcher / raw, concurrent singles", None),
    ("service_concurrent", "raw_concurrent", "service audit off / raw, concurrent singles", None),
    (
        "service_concurrent_pg",
        "raw_concurrent",
        "service audit PostgreSQL / raw, concurrent",
        2.0,
    ),
)


async def run_service(ctx: Context) -> Section:
    plan = ctx.plan
    section = Section("service", "Service: LedgerService vs the raw client of the same engine")
    section.settings = {
        "accounts": plan.service_accounts,
        "batches_per_run": plan.service_batches,
        "concurrency": plan.service_concurrency,
        "concurrent_transfers_per_run": plan.service_concurrent,
        "concurrent_transfers_per_run_audit_postgresql": plan.service_concurrent_pg,
        "repeat": plan.repeat,
        "audit_off_store": "SQLite file (account mappings only)",
        "audit_store": "PostgreSQL, a fresh schema per engine and path",
    }
    for kind in ENGINE_KINDS:
        name = ENGINE_LABELS[kind]
        if kind == REAL and ctx.real.addresses is None:
            for key, (label, _) in MODES.items():
                section.skip(f"{kind}.{key}", f"{name}: {label}", ctx.real.reason or "no server")
            continue
        ctx.steps(f"service: {name}, setting up")
        async with engine_client(kind, ctx.folder, ctx.real) as client:
            await _measure_engine(ctx, section, kind, client)
    for kind in ENGINE_KINDS:
        for numerator, denominator, label, target in RATIOS:
            section.ratio(
                f"{kind}.{numerator}/{denominator}",
                f"{ENGINE_LABELS[kind]}: {label}",
                f"{kind}.{numerator}",
                f"{kind}.{denominator}",
                target=target,
            )
    section.notes.append(
        f"concurrent modes: {plan.service_concurrency} asyncio tasks, one transfer per call; "
        f"{plan.service_concurrent:,} calls per run ({plan.service_concurrent_pg:,} with the "
        "PostgreSQL audit trail). events/request: transfers per engine request (the batcher's "
        "count; the raw client sends one request per call, though the official client may "
        "still merge concurrent calls on the wire)."
    )
    return section


async def _measure_engine(ctx: Context, section: Section, kind: str, client: object) -> None:
    plan = ctx.plan
    name = ENGINE_LABELS[kind]
    bench = Workbench(client, kind, ctx.seed)
    await bench.create_accounts(plan.service_accounts)
    pg_reason = None if ctx.postgres.url is not None else f"no PostgreSQL: {ctx.postgres.reason}"
    async with contextlib.AsyncExitStack() as stack:
        off = await stack.enter_async_context(
            open_service(
                bench, "sqlite", audit=False, folder=ctx.folder, postgres=None, purpose="off"
            )
        )
        pg_batch = pg_conc = None
        if pg_reason is None:
            # One fresh schema per path, so the batch runs do not grow the concurrent runs' tables.
            pg_batch, pg_conc = [
                await stack.enter_async_context(
                    open_service(
                        bench,
                        "postgresql",
                        audit=True,
                        folder=ctx.folder,
                        postgres=ctx.postgres,
                        purpose=f"svc_{path}_{kind}",
                    )
                )
                for path in ("batch", "conc")
            ]
        batcher = Batcher(bench.client)
        conc = plan.service_concurrency

        def batch_count(warmup: bool) -> int:
            return (1 if warmup else plan.service_batches) * BATCH_EVENTS_MAX

        def conc_count(warmup: bool, pg: bool = False) -> int:
            count = plan.service_concurrent_pg if pg else plan.service_concurrent
            return max(conc, count // 10) if warmup else count

        modes: dict[str, Callable[[bool], Awaitable[Run]]] = {
            "raw_batch": lambda w: bench.raw_sequential(batch_count(w), BATCH_EVENTS_MAX),
            "service_batch": lambda w: bench.service_sequential(
                off, batch_count(w), BATCH_EVENTS_MAX
            ),
            "raw_concurrent": lambda w: bench.raw_concurrent(conc_count(w), conc),
            "batcher_concurrent": lambda w: bench.raw_concurrent(
                conc_count(w), conc, call=batcher.create_transfers
            ),
            "service_concurrent": lambda w: bench.service_concurrent(off, conc_count(w), conc),
        }
        if pg_batch is not None and pg_conc is not None:
            svc_batch, svc_conc = pg_batch, pg_conc
            modes["service_batch_pg"] = lambda w: bench.service_sequential(
                svc_batch, batch_count(w), BATCH_EVENTS_MAX
            )
            modes["service_concurrent_pg"] = lambda w: bench.service_concurrent(
                svc_conc, conc_count(w, pg=True), conc
            )
        figures = {}
        for key, (label, _) in MODES.items():
            if key not in modes:
                section.skip(f"{kind}.{key}", f"{name}: {label}", pg_reason or "not measured")
                continue
            figures[key] = section.figure(f"{kind}.{key}", f"{name}: {label}", engine=kind)
        runs: dict[str, list[Run]] = {key: [] for key in modes}
        for key, call in modes.items():
            ctx.steps(f"service: {name}, warm-up {key}")
            await call(True)
        for round_ in range(plan.repeat):
            for key, call in modes.items():
                ctx.steps(f"service: {name}, {key}, round {round_ + 1}/{plan.repeat}")
                done = await call(False)
                runs[key].append(done)
                figures[key].runs.append(done.rate)
                figures[key].params.update(transfers_per_run=done.transfers, calls=done.calls)
        for key, done_runs in runs.items():
            per_request = events_per_request(done_runs)
            if key.startswith("raw"):
                per_request = 1.0 if key == "raw_concurrent" else float(BATCH_EVENTS_MAX)
            elif key == "batcher_concurrent":
                per_request = batcher.stats.events_per_request  # warm-up included
            figures[key].extra["events_per_engine_request"] = per_request
        await bench.verify()
