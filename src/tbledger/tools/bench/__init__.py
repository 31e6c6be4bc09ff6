"""``tbledger bench``: the benchmark suite, in one run, every figure a ratio to a baseline of the
same run.

Sections (``--only``):

* ``engine``: ``create_transfers`` on the official client (a real server) and the twin (memory,
  durable journal): full batches, sequential and concurrent single requests; twin / official.
* ``service``: LedgerService's batch path (audit off, audit in PostgreSQL) and concurrent single
  calls through the coalescer, vs the raw client of the same engine.
* ``http``: the API under uvicorn in its own process, single transfers (closed loop, K
  connections over one or more client processes) and the batch endpoint, vs the library path.
* ``baseline``: a PostgreSQL-only double-entry ledger vs the TigerBeetle path at the same
  concurrency, uniform and with one hot account.
* ``sweep``: transfers/s per batch size, 1 to 8189.
* ``events``: webhook deliveries per second to one endpoint vs a plain POST loop, and the
  change-stream consumer's events per second into the store vs RabbitMQ alone.

Writes ``results.json`` and PNG charts to ``--out``, and with ``--docs`` the performance document
(tables, the command, the machine, the charts under ``images/`` next to it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shlex
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tbledger.tools.bench.common import SECTIONS, BenchOptions, Plan, Section, Steps, WarningLog
from tbledger.tools.bench.context import Context
from tbledger.tools.bench.env import find_postgres, load_average, machine, real_server, versions
from tbledger.tools.bench.report import make_charts, render_docs, targets

__all__ = ["SECTIONS", "BenchOptions", "Plan", "command_line", "run"]

RESULTS_FILE = "results.json"
NEEDS_SERVER = ("engine", "service", "baseline", "sweep")


def command_line(options: BenchOptions) -> str:
    """The command that reproduces `options` (the real server named as in the environment)."""
    parts = ["tbledger", "bench"]
    if options.sections != SECTIONS:
        parts += ["--only", ",".join(options.sections)]
    if options.quick:
        parts.append("--quick")
    parts += ["--out", str(options.out)]
    if options.docs is not None:
        parts += ["--docs", str(options.docs)]
    if options.seed != 42:
        parts += ["--seed", str(options.seed)]
    if options.repeat is not None:
        parts += ["--repeat", str(options.repeat)]
    if options.postgres_url:
        parts += ["--postgres-url", "<url>"]
    env = []
    if options.tigerbeetle_addresses:
        env.append(f"TIGERBEETLE_ADDRESSES={options.tigerbeetle_addresses}")
    elif options.tigerbeetle_bin:
        env.append(f"TIGERBEETLE_BIN={options.tigerbeetle_bin}")
    return " ".join([*env, *(shlex.quote(p) for p in parts)])


def _shower(progress: Progress, task: TaskID) -> Callable[[str], None]:
    def show(text: str) -> None:
        progress.update(task, description=text)

    return show


def _runner(name: str) -> Callable[[Context], Coroutine[Any, Any, Section]]:
    if name == "engine":
        from tbledger.tools.bench.engine import run_engine  # noqa: PLC0415

        return run_engine
    if name == "service":
        from tbledger.tools.bench.service import run_service  # noqa: PLC0415

        return run_service
    if name == "http":
        from tbledger.tools.bench.http import run_http  # noqa: PLC0415

        return run_http
    if name == "events":
        from tbledger.tools.bench.events import run_events  # noqa: PLC0415

        return run_events
    if name == "baseline":
        from tbledger.tools.bench.baseline import run_baseline  # noqa: PLC0415

        return run_baseline
    from tbledger.tools.bench.sweep import run_sweep  # noqa: PLC0415

    return run_sweep


def _summary(section: Section) -> Table:
    table = Table(title=f"{section.title} ({section.status}, {section.seconds:.0f} s)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("ratio", justify="right")
    for f in section.figures:
        if f.skipped:
            table.add_row(escape(f.label), "skipped", f.unit, "")
            continue
        value = f.value
        table.add_row(
            escape(f.label),
            "-" if value is None else f"{value:,.0f}",
            f.unit,
            "" if f.ratio is None else f"{f.ratio:.2f}x",
        )
    return table


def run(options: BenchOptions, console: Console | None = None) -> int:
    """Run the suite (or, with `render_only`, only render the document); the exit status."""
    err = console or Console(stderr=True, highlight=False)
    if not err.is_terminal and "COLUMNS" not in os.environ:
        err = Console(stderr=True, highlight=False, width=140)
    out = options.out
    if options.render_only:
        if options.docs is None:
            err.print("[red]error:[/] nothing to do: pass --docs PATH to render the document")
            return 2
        source = out / RESULTS_FILE
        if not source.exists():
            err.print(f"[red]error:[/] {source} does not exist: run the suite first")
            return 2
        stored = json.loads(source.read_text(encoding="utf-8"))
        written = render_docs(stored, out, options.docs)
        err.print(f"wrote {written}")
        return 0

    plan = Plan.small(options.repeat) if options.quick else Plan.full(options.repeat)
    out.mkdir(parents=True, exist_ok=True)
    warnings = WarningLog()
    tbledger_log = logging.getLogger("tbledger")
    tbledger_log.addHandler(warnings)
    propagate = tbledger_log.propagate
    tbledger_log.propagate = False
    results: dict[str, Any] = {
        "schema_version": 1,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(options),
        "quick": options.quick,
        "seed": options.seed,
        "sections_requested": list(options.sections),
        "machine": machine(),
        "versions": versions(),
        "plan": dataclasses.asdict(plan),
        "sections": {},
    }
    failed = False
    try:
        with err.status("finding PostgreSQL"):
            postgres = find_postgres(options.postgres_url)
        results["postgresql"] = postgres.as_json()
        need_server = any(s in NEEDS_SERVER for s in options.sections)
        no_server = dataclasses.replace(options, tigerbeetle_addresses=None, tigerbeetle_bin=None)
        with (
            real_server(options if need_server else no_server) as real,
            tempfile.TemporaryDirectory(prefix="tbledger-bench-") as folder,
            Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.fields[section]}[/]"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as progress,
        ):
            results["tigerbeetle_server"] = real.as_json()
            err.print(
                f"PostgreSQL: {postgres.version or 'none'} ({postgres.origin}"
                + (f": {postgres.reason}" if postgres.reason else "")
                + f"); TigerBeetle server: {real.addresses or real.reason}"
            )
            for name in options.sections:
                task = progress.add_task("starting", section=name, total=None)
                ctx = Context(
                    options=options,
                    plan=plan,
                    postgres=postgres,
                    real=real,
                    folder=folder,
                    steps=Steps(_shower(progress, task)),
                )
                started = time.perf_counter()
                try:
                    section = asyncio.run(_runner(name)(ctx))
                except Exception as exc:
                    failed = True
                    text = " ".join(f"{type(exc).__name__}: {exc}".split())
                    # Where it failed, innermost frames last: the reason alone rarely says.
                    where = "; ".join(
                        f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno} {frame.name}"
                        for frame in traceback.extract_tb(exc.__traceback__)[-6:]
                    )
                    section = Section(
                        name, name, status="failed", reason=f"{text[:2000]} (at {where})"
                    )
                section.seconds = time.perf_counter() - started
                progress.remove_task(task)
                err.print(_summary(section))
                if section.status == "failed":
                    err.print(f"[red]{name} FAILED:[/] {escape(section.reason or '')}")
                results["sections"][name] = section.as_json()
                _write(out, results)
            with err.status("dropping the benchmark schemas"):
                asyncio.run(postgres.drop_schemas())
    finally:
        tbledger_log.removeHandler(warnings)
        tbledger_log.propagate = propagate
    results["load_average_at_end"] = load_average()
    results["log_warnings"] = warnings.summary()
    results["targets"] = targets(results)
    charts, notes = make_charts(results, out)
    results["charts"] = charts
    results["chart_notes"] = notes
    _write(out, results)
    _print_targets(err, results)
    err.print(f"wrote {out / RESULTS_FILE} and {len(charts)} chart(s)")
    if options.docs is not None:
        written = render_docs(results, out, options.docs)
        err.print(f"wrote {written}")
    return 1 if failed else 0


def _write(out: Path, results: dict[str, Any]) -> None:
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def _print_targets(err: Console, results: dict[str, Any]) -> None:
    table = Table(title="Targets")
    table.add_column("target")
    table.add_column("this run", justify="right")
    table.add_column("wanted", justify="right")
    table.add_column("met")
    for t in results["targets"]:
        value = t["value"]
        shown = "-" if value is None else (f"{value:.2f}x" if t["unit"] == "x" else f"{value:,.0f}")
        met = "-" if t["met"] is None else ("yes" if t["met"] else "no")
        table.add_row(t["label"], shown, f">= {t['target']:g}", met)
    err.print(table)
