"""Section 1, engine: ``create_transfers`` on the official client and on the twin.

For each engine (the twin in memory, the twin with its fsynced journal, the official
``tigerbeetle.ClientAsync`` on a real server when there is one), on one async client: full
batches (8189 transfers per call, one call after another), single requests (one transfer per call,
one after another) and concurrent single requests (N tasks, each awaiting one single-transfer call
after another). Each mode is warmed up once, then timed ``repeat`` rounds, round-robin over the
modes. Ratios: twin / official, mode by mode.
"""

from __future__ import annotations

import math

from tbledger.tools.bench.common import BATCH_EVENTS_MAX, Section
from tbledger.tools.bench.context import Context
from tbledger.tools.bench.workbench import (
    ENGINE_KINDS,
    ENGINE_LABELS,
    REAL,
    TWIN_DURABLE,
    TWIN_MEMORY,
    Run,
    Workbench,
    engine_client,
)

__all__ = ["run_engine"]

MODES = ("batches", "singles", "concurrent")


def _label(mode: str, concurrency: int) -> str:
    return {
        "batches": f"full batches ({BATCH_EVENTS_MAX}/call)",
        "singles": "single requests, sequential",
        "concurrent": f"single requests, {concurrency} concurrent tasks",
    }[mode]


async def run_engine(ctx: Context) -> Section:
    plan = ctx.plan
    section = Section("engine", "Engine: the official client and the twin")
    section.settings = {
        "accounts": plan.engine_accounts,
        "batches_per_run": plan.engine_batches,
        "singles_per_run": plan.engine_singles,
        "durable_singles_per_run": plan.engine_durable_singles,
        "concurrency": plan.engine_concurrency,
        "concurrent_singles_per_run": plan.engine_concurrent_singles,
        "repeat": plan.repeat,
        "client": "ClientAsync (tigerbeetle or tbledger.embedded), one per engine",
    }
    for kind in ENGINE_KINDS:
        name = ENGINE_LABELS[kind]
        if kind == REAL and ctx.real.addresses is None:
            for mode in MODES:
                section.skip(
                    f"{kind}.{mode}",
                    f"{name}: {_label(mode, plan.engine_concurrency)}",
                    ctx.real.reason or "no real server",
                )
            continue
        ctx.steps(f"engine: {name}")
        async with engine_client(kind, ctx.folder, ctx.real) as client:
            bench = Workbench(client, kind, ctx.seed)
            await bench.create_accounts(plan.engine_accounts)
            singles = plan.engine_durable_singles if kind == TWIN_DURABLE else plan.engine_singles
            concurrent = (
                plan.engine_durable_singles
                if kind == TWIN_DURABLE
                else plan.engine_concurrent_singles
            )

            async def run(
                mode: str,
                warmup: bool,
                bench: Workbench = bench,
                singles: int = singles,
                concurrent: int = concurrent,
            ) -> Run:
                if mode == "batches":
                    batches = 1 if warmup else plan.engine_batches
                    return await bench.raw_sequential(batches * BATCH_EVENTS_MAX, BATCH_EVENTS_MAX)
                if mode == "singles":
                    count = max(10, singles // 10) if warmup else singles
                    return await bench.raw_sequential(count, 1)
                count = max(plan.engine_concurrency, concurrent // 10) if warmup else concurrent
                return await bench.raw_concurrent(count, plan.engine_concurrency)

            figures = {
                mode: section.figure(
                    f"{kind}.{mode}",
                    f"{name}: {_label(mode, plan.engine_concurrency)}",
                    engine=kind,
                    mode=mode,
                )
                for mode in MODES
            }
            for mode in MODES:
                await run(mode, True)
            for round_ in range(plan.repeat):
                for mode in MODES:
                    ctx.steps(f"engine: {name}, {mode}, round {round_ + 1}/{plan.repeat}")
                    done = await run(mode, False)
                    figures[mode].runs.append(done.rate)
                    figures[mode].params.update(transfers_per_run=done.transfers, calls=done.calls)
            await bench.verify()
    for twin in (TWIN_MEMORY, TWIN_DURABLE):
        for mode in MODES:
            section.ratio(
                f"{twin}/real.{mode}",
                f"{ENGINE_LABELS[twin]} / official: {_label(mode, plan.engine_concurrency)}",
                f"{twin}.{mode}",
                f"{REAL}.{mode}",
            )
    if ctx.real.addresses is None:
        section.notes.append(
            f"official client not measured: {ctx.real.reason}; twin / official ratios skipped."
        )
    section.notes.append(
        "transfers/s: median of the rounds; each mode is warmed up once; rounds go round-robin "
        "over the modes so that outside load spreads over all of them alike."
    )
    if not math.isclose(plan.engine_durable_singles, plan.engine_singles):
        section.notes.append(
            f"the durable twin's single-request modes send {plan.engine_durable_singles:,} "
            "transfers per run (each request is an fsync)."
        )
    return section
