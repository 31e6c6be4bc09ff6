"""``tbledger demo``, ``loadtest`` and ``bench``: the tools, started from the command line.

The tools live in `tbledger.tools`, which the library never imports; each command imports its
tool inside the command, so ``tbledger --help`` and every other command start without them and
importing `tbledger.cli` leaves them out (a layout test checks it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from tbledger.cli._options import DEFAULT_API_URL, ApiKeyOpt, JsonFlag, UrlOpt, make_parent
from tbledger.cli._output import Output, die, output_of, run_or_exit

__all__ = ["bench", "demo", "loadtest"]


def demo(
    ctx: typer.Context,
    engine: Annotated[
        str, typer.Option(help="Engine URL: memory://, embedded:///path or tigerbeetle://...")
    ] = "memory://",
    day: Annotated[
        bool,
        typer.Option(
            "--day",
            help="Instead, play a seeded day of activity through a running service's flows "
            "(--url, and an admin --api-key), to look at in the console.",
        ),
    ] = False,
    seed: Annotated[
        int, typer.Option(min=0, help="--day: which day (the same seed, the same day).")
    ] = 1,
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    json_output: JsonFlag = False,
) -> None:
    """A short demonstration on the engine: accounts, transfers, a hold, balances moving; or,
    with --day, a day of payments, holds, refunds, escrow and an exchange on a running service."""
    console = Console(highlight=False)
    if day:
        _play_day(output_of(ctx, json_output), console, url=url, api_key=api_key, seed=seed)
        return
    from tbledger.tools.demo import run_demo  # noqa: PLC0415

    make_parent(engine)
    run_or_exit(run_demo(engine, out=lambda line: console.print(line, markup=False)))


def _play_day(out: Output, console: Console, *, url: str, api_key: str | None, seed: int) -> None:
    from tbledger.client import AsyncLedgerClient  # noqa: PLC0415
    from tbledger.tools.day import run_day  # noqa: PLC0415

    if not api_key:
        raise die("--day needs an admin key: --api-key or TBLEDGER_API_KEY", 2)

    def say(line: str) -> None:
        if not out.json:
            console.print(line, markup=False)

    async def play() -> dict[str, Any]:
        async with AsyncLedgerClient(url.rstrip("/"), api_key=api_key) as client:
            report = await run_day(client, seed=seed, out=say)
        return report.as_json()

    played = run_or_exit(play())
    base = url.rstrip("/")
    out.result(
        played,
        lambda: Text(
            f"Open {base}/console and sign in with the key to look at the day; Alice's "
            f"account: {base}/console/account?id={played['accounts']['alice']}"
        ),
    )


def loadtest(
    ctx: typer.Context,
    target: Annotated[
        str, typer.Option(help="http: a running service; library: LedgerService in this process.")
    ] = "http",
    url: UrlOpt = DEFAULT_API_URL,
    api_key: ApiKeyOpt = None,
    engine_url: Annotated[
        str,
        typer.Option(
            "--engine-url",
            envvar="TBLEDGER_ENGINE_URL",
            help="library target: memory://, embedded:///path or tigerbeetle://...",
        ),
    ] = "memory://",
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="TBLEDGER_DATABASE_URL",
            help="library target: the store (default: a temporary SQLite file)",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0.001, help="Requests a second (captures included).")
    ] = 100.0,
    duration: Annotated[
        float, typer.Option(min=0.001, help="Seconds measured, after the warm-up.")
    ] = 10.0,
    arrivals: Annotated[str, typer.Option(help="constant or poisson.")] = "constant",
    seed: Annotated[int, typer.Option(help="Seed of the schedule and the operations.")] = 1,
    accounts: Annotated[int, typer.Option(min=3, help="User accounts to open and fund.")] = 100,
    merchants: Annotated[
        int | None,
        typer.Option(min=1, help="Merchant accounts (default: accounts/10).", show_default=False),
    ] = None,
    hot_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of requests touching one hot account.")
    ] = 0.0,
    mix: Annotated[
        str, typer.Option(help="Weights of payments (with fees), holds (+capture), transfers.")
    ] = "payment=60,hold=20,transfer=20",
    ledger: Annotated[str, typer.Option(help="The ledger's chart name or number.")] = "USD",
    connections: Annotated[
        int, typer.Option(min=1, help="HTTP connection pool size and most requests in flight.")
    ] = 256,
    capture_delay: Annotated[
        float, typer.Option(min=0.0, help="Seconds from a hold's answer to its capture.")
    ] = 0.05,
    check_sample: Annotated[
        int, typer.Option(min=0, help="Transfer ids to audit after the run (0: all).")
    ] = 0,
    warmup: Annotated[
        float, typer.Option(min=0.0, help="Seconds of load before measuring starts.")
    ] = 2.0,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Write the report (JSON) to this file.", show_default=False),
    ] = None,
) -> None:
    """Open-loop load at a fixed rate, latency from each request's intended start, then ledger
    checks. Exits 1 on any error or failed check."""
    from tbledger.tools.loadtest import command  # noqa: PLC0415 (keeps other commands' start-up fast)

    try:
        status = command(
            target=target,
            url=url,
            api_key=api_key,
            engine_url=engine_url,
            database_url=database_url,
            rate=rate,
            duration=duration,
            arrivals=arrivals,
            seed=seed,
            accounts=accounts,
            merchants=merchants,
            hot_fraction=hot_fraction,
            mix=mix,
            ledger=ledger,
            connections=connections,
            capture_delay=capture_delay,
            check_sample=check_sample,
            warmup=warmup,
            json_path=json_path,
            json_stdout=output_of(ctx, False).json,
        )
    except ValueError as exc:
        raise die(str(exc), 2) from None
    if status:
        raise typer.Exit(status)


def bench(
    only: Annotated[
        str,
        typer.Option(
            "--only",
            help="Sections, comma-separated: engine, service, http, baseline, sweep, events.",
        ),
    ] = "engine,service,http,baseline,sweep,events",
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes (CI, tests).")] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for results.json and the PNG charts.")
    ] = Path("bench-results"),
    postgres_url: Annotated[
        str | None,
        typer.Option(
            "--postgres-url",
            help="PostgreSQL for the audit trail and the baseline (default: "
            "TBLEDGER_BENCH_DATABASE_URL, TBLEDGER_TEST_DATABASE_URL, else the local server).",
            show_default=False,
        ),
    ] = None,
    tigerbeetle_bin: Annotated[
        str | None,
        typer.Option(
            "--tigerbeetle-bin",
            envvar="TIGERBEETLE_BIN",
            help="A TigerBeetle server binary: a fresh replica is started for the run.",
            show_default=False,
        ),
    ] = None,
    tigerbeetle_addresses: Annotated[
        str | None,
        typer.Option(
            "--tigerbeetle-addresses",
            envvar="TIGERBEETLE_ADDRESSES",
            help="A running TigerBeetle cluster (fresh accounts are created in it).",
            show_default=False,
        ),
    ] = None,
    docs: Annotated[
        Path | None,
        typer.Option(
            "--docs",
            help="Also write the performance document here, from results.json.",
            show_default=False,
        ),
    ] = None,
    render_only: Annotated[
        bool,
        typer.Option(
            "--render-only", help="Only (re)generate --docs from OUT/results.json; run nothing."
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the workloads' RNGs.")] = 42,
    repeat: Annotated[
        int | None,
        typer.Option(
            min=1, help="Timed runs per figure (default 3, 1 with --quick).", show_default=False
        ),
    ] = None,
) -> None:
    """The benchmark suite, in one run: every figure a ratio to a baseline of the same run."""
    from tbledger.tools.bench import SECTIONS, BenchOptions, run  # noqa: PLC0415

    sections = tuple(s.strip() for s in only.split(",") if s.strip())
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        raise die(f"--only: choose from {', '.join(SECTIONS)} (got {only!r})", 2)
    options = BenchOptions(
        sections=tuple(s for s in SECTIONS if s in sections),
        quick=quick,
        out=out,
        postgres_url=postgres_url,
        tigerbeetle_bin=tigerbeetle_bin,
        tigerbeetle_addresses=tigerbeetle_addresses,
        tigerbeetle_cluster_id=int(os.environ.get("TIGERBEETLE_CLUSTER_ID", "0")),
        docs=docs,
        render_only=render_only,
        seed=seed,
        repeat=repeat,
    )
    status = run(options)
    if status:
        raise typer.Exit(status)
