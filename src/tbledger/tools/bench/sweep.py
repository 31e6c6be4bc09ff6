"""Section 5, sweep: transfers/s per batch size, 1, 2, 4, ... 4096 and 8189.

Series: the raw ``create_transfers`` of the twin in memory and of the official client on a real
server (when there is one), and ``LedgerService.create_transfers`` over each with the audit trail
(PostgreSQL when there is one, else SQLite). At each size, calls of that many transfers go one
after another until the calls add up to the time budget (or a cap on transfers); only the calls
are timed (building the next call is not).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tbledger.tools.bench.common import (
    BATCH_EVENTS_MAX,
    Section,
    check_engine_replies,
    check_service_replies,
)
from tbledger.tools.bench.context import Context
from tbledger.tools.bench.workbench import (
    ENGINE_LABELS,
    REAL,
    TWIN_MEMORY,
    Workbench,
    engine_client,
    open_service,
)

__all__ = ["run_sweep"]


async def _point(
    make: Callable[[int], Sequence[Any]],
    call: Callable[[Any], Awaitable[Sequence[Any]]],
    check: Callable[[str, Sequence[Sequence[Any]], Sequence[int]], None],
    size: int,
    budget_s: float,
    transfers_max: int,
    min_calls: int,
) -> tuple[float, int, int]:
    """Calls of `size` until their time adds up to `budget_s` (at least `min_calls`, at most
    `transfers_max` transfers unless that is less than `min_calls` calls): (transfers/s,
    transfers, calls)."""
    calls_max = max(min_calls, math.ceil(transfers_max / size))
    elapsed = 0.0
    calls = 0
    gc.collect()
    while calls < calls_max and (calls < min_calls or elapsed < budget_s):
        request = make(size)
        start = time.perf_counter()
        reply = await call(request)
        elapsed += time.perf_counter() - start
        check(f"batch size {size}", [reply], [size])
        calls += 1
    return calls * size / elapsed, calls * size, calls


async def run_sweep(ctx: Context) -> Section:
    plan = ctx.plan
    section = Section("sweep", "Sweep: transfers/s per batch size")
    store = ctx.audit_store
    section.settings = {
        "sizes": list(plan.sweep_sizes),
        "seconds_per_point": plan.sweep_seconds,
        "transfers_max_per_point": plan.sweep_transfers_max,
        "min_calls_per_point": plan.sweep_min_calls,
        "service_audit_store": store,
        "accounts": 1_000,
    }
    for kind in (TWIN_MEMORY, REAL):
        name = ENGINE_LABELS[kind]
        series = {
            "raw": f"{name}, raw create_transfers",
            "service": f"{name}, service, audit {store}",
        }
        if kind == REAL and ctx.real.addresses is None:
            for part, label in series.items():
                for size in plan.sweep_sizes:
                    section.skip(
                        f"{kind}.{part}.{size}",
                        f"{label}, {size}/call",
                        ctx.real.reason or "no server",
                    )
            continue
        async with engine_client(kind, ctx.folder, ctx.real) as client:
            bench = Workbench(client, f"{kind}-sweep", ctx.seed)
            await bench.create_accounts(1_000)
            async with open_service(
                bench,
                store,
                audit=True,
                folder=ctx.folder,
                postgres=ctx.postgres,
                purpose=f"sweep_{kind}",
            ) as service:
                # One warm-up point per series, untimed.
                await _point(
                    bench.transfers, client.create_transfers, check_engine_replies, 64, 0, 0, 3
                )
                await _point(
                    bench.requests, service.create_transfers, check_service_replies, 64, 0, 0, 3
                )
                bench.sent += 2 * 3 * 64
                for part, make, call, check in (
                    ("raw", bench.transfers, client.create_transfers, check_engine_replies),
                    ("service", bench.requests, service.create_transfers, check_service_replies),
                ):
                    for size in plan.sweep_sizes:
                        ctx.steps(f"sweep: {series[part]}, {size}/call")
                        rate, sent, calls = await _point(
                            make,
                            call,
                            check,
                            size,
                            plan.sweep_seconds,
                            plan.sweep_transfers_max,
                            plan.sweep_min_calls,
                        )
                        bench.sent += sent
                        figure = section.figure(
                            f"{kind}.{part}.{size}",
                            f"{series[part]}, {size}/call",
                            engine=kind,
                            series=part,
                            batch_size=size,
                        )
                        figure.runs.append(rate)
                        figure.params.update(transfers=sent, calls=calls)
            await bench.verify()
    for kind in (TWIN_MEMORY, REAL):
        section.ratio(
            f"{kind}.raw.full/single",
            f"{ENGINE_LABELS[kind]}, raw: {BATCH_EVENTS_MAX}/call over 1/call",
            f"{kind}.raw.{BATCH_EVENTS_MAX}",
            f"{kind}.raw.1",
            attach=False,
        )
        section.ratio(
            f"{kind}.service.full/single",
            f"{ENGINE_LABELS[kind]}, service: {BATCH_EVENTS_MAX}/call over 1/call",
            f"{kind}.service.{BATCH_EVENTS_MAX}",
            f"{kind}.service.1",
            attach=False,
        )
        for size in plan.sweep_sizes:
            section.ratio(
                f"{kind}.service/raw.{size}",
                f"{ENGINE_LABELS[kind]}: service / raw at {size}/call",
                f"{kind}.service.{size}",
                f"{kind}.raw.{size}",
            )
    section.notes.append(
        "one run per point (the point itself averages many calls); sequential calls, so the "
        "small sizes show the per-call cost (a round trip to the real server, a commit or two "
        "for the audit trail)."
    )
    return section
