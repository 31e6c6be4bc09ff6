"""Section 3, http: the API served by uvicorn in a process of its own, vs the library path.

The server (`tbledger.tools.bench.server`) runs the app over the twin in memory with the audit
trail in PostgreSQL (a fresh schema; SQLite when there is no PostgreSQL), in its own process, so
that it does not share the GIL with the clients. It is measured with:

* single-transfer requests (``POST /v1/transfers``): a closed loop of K keep-alive connections
  (aiohttp, on uvloop when installed), each sending its next request when the last one is
  answered, spread over one or more client processes (`tbledger.tools.bench.loadclient`), for a
  fixed window after a warm-up; requests/s counts the 201s answered inside the window. The
  server's and the clients' CPU time over the window say which side is the bottleneck (the
  clients' CPU per request is a small fraction of the server's, so the figures measure the
  server);
* latency percentiles at several K (closed loop: the offered rate is what the server sustains);
* the batch endpoint (``POST /v1/transfers/batch``) with batches of 1000 and 8189, one request
  after another on one connection (and on two, to overlap the client's work with the server's);
  bodies are encoded before the timed region, and sent with aiohttp from this process.

The library path, in this process, in the same rounds: ``LedgerService`` over the twin in memory
with the audit trail in the same database, ``create_transfer`` from K concurrent tasks and
``create_transfers`` with the same batch sizes. Ratios: HTTP / library.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pstats
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tbledger.client import LedgerClient
from tbledger.errors import TbledgerError
from tbledger.tools.bench.common import BenchmarkError, Figure, Section, split, uniform_pairs
from tbledger.tools.bench.context import Context
from tbledger.tools.bench.loadclient import session
from tbledger.tools.bench.workbench import (
    TWIN_MEMORY,
    Run,
    Workbench,
    engine_client,
    open_service,
)
from tbledger.tools.loop import event_loop

__all__ = ["run_http"]

SERVER_START_TIMEOUT_S = 180.0
CLIENT_START_TIMEOUT_S = 60.0
BODIES_PER_CLIENT = 2_000
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# -- CPU accounting -------------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def runqueue_wait_s(pid: int) -> float | None:
    """Seconds process `pid`'s main thread spent runnable but waiting for a CPU (Linux
    schedstat), or None."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def engine_events(server: Server) -> tuple[float, float] | None:
    """(events, requests) the server's batcher sent to the engine so far (its /metrics)."""
    try:
        with LedgerClient(server.url, api_key=server.token, timeout_s=10) as client:
            text = client.metrics()
    except TbledgerError:
        return None
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tbledger_engine_events_per_request_") and "create_transfers" in line:
            name = line.split("{", 1)[0].rsplit("_", 1)[1]
            found[name] = float(line.rsplit(" ", 1)[1])
    if "sum" not in found or "count" not in found:
        return None
    return found["sum"], found["count"]


def machine_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot (Linux), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / _TICK, total / _TICK


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


# -- the server -----------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    pid: int
    token: str
    account_ids: list[str]
    process: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(
    ctx: Context,
    database_url: str,
    schema: str | None,
    *,
    profile: str | None = None,
    engine_url: str | None = None,
    module: str = "tbledger.tools.bench.server",
) -> Iterator[Server]:
    """Start the server process (`module`: the service's, or the minimal baseline's), wait
    until it answers, stop it at the end."""
    port = _free_port()
    tag = f"{random.getrandbits(32):08x}"
    setup = Path(ctx.folder) / f"http-setup-{tag}.json"
    log = Path(ctx.folder) / f"http-server-{tag}.log"
    command = [
        sys.executable,
        "-m",
        module,
        "--port",
        str(port),
        "--database-url",
        database_url,
        "--accounts",
        str(ctx.plan.http_accounts),
        "--setup",
        str(setup),
        "--seed",
        str(ctx.seed),
    ]
    if schema is not None:
        command += ["--schema", schema]
    if profile is not None:
        command += ["--profile", profile]
    if engine_url is not None:
        command += ["--engine-url", engine_url]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise BenchmarkError(f"the server exited with {process.returncode}: {tail}")
            if time.monotonic() > deadline:
                raise BenchmarkError("the server did not answer within 180 s")
            if setup.exists():
                with contextlib.suppress(TbledgerError), LedgerClient(url, timeout_s=2) as probe:
                    probe.health()
                    break
            time.sleep(0.1)
        data = json.loads(setup.read_text())
        yield Server(url, int(data["pid"]), data["token"], data["account_ids"], process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- closed loop ----------------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests_per_s: float
    ok: int
    errors: int
    seconds: float
    latencies_ms: dict[str, float]
    server_cpu: float | None  # fraction of one core over the window
    server_waiting: float | None  # fraction of the window runnable but waiting for a CPU
    events_per_engine_request: float | None  # the coalescer's group size (warm-up included)
    client_cpu: list[float]  # the same, per client process
    machine_busy: float | None  # fraction of all cores over the window
    processes: int
    connections: int
    error_sample: list[str]
    client: str = ""  # the HTTP client library and event loop of the load-client processes

    @property
    def client_cpu_total(self) -> float:
        """CPU of all the client processes together, in cores."""
        return sum(self.client_cpu)

    @property
    def server_cpu_us_per_request(self) -> float | None:
        """The server's CPU time per request answered in the window."""
        if self.server_cpu is None or not self.requests_per_s:
            return None
        return self.server_cpu / self.requests_per_s * 1e6

    @property
    def client_to_server_cpu(self) -> float | None:
        """The clients' CPU over the server's, over the same window."""
        if not self.server_cpu:
            return None
        return self.client_cpu_total / self.server_cpu

    def as_json(self) -> dict[str, Any]:
        return {
            "requests_per_s": self.requests_per_s,
            "ok": self.ok,
            "errors": self.errors,
            "seconds": self.seconds,
            "latency_ms": self.latencies_ms,
            "server_cpu_cores": self.server_cpu,
            "server_cpu_us_per_request": self.server_cpu_us_per_request,
            "server_waiting_for_cpu": self.server_waiting,
            "events_per_engine_request": self.events_per_engine_request,
            "client_cpu_cores": self.client_cpu,
            "client_cpu_cores_total": self.client_cpu_total,
            "client_to_server_cpu": self.client_to_server_cpu,
            "client_cpu_us_per_request": (
                self.client_cpu_total / self.requests_per_s * 1e6 if self.requests_per_s else None
            ),
            "machine_busy_fraction": self.machine_busy,
            "client_processes": self.processes,
            "client": self.client,
            "connections": self.connections,
            "error_sample": self.error_sample,
            "bottleneck": self.bottleneck,
        }

    @property
    def bottleneck(self) -> str:
        if self.server_cpu is not None and self.server_cpu >= 0.9:
            return "server (a full core)"
        if (
            self.server_cpu is not None
            and self.server_waiting is not None
            and self.server_cpu + self.server_waiting >= 0.9
        ):
            return (
                f"server CPU: running {self.server_cpu:.0%} of the time and waiting for a CPU "
                f"held by other processes {self.server_waiting:.0%}"
            )
        if self.client_cpu and max(self.client_cpu) >= 0.9:
            return "client (a full core)"
        if self.machine_busy is not None and self.machine_busy >= 0.9:
            return "the machine's CPUs (all cores busy)"
        return "neither side saturated a core"


def _bodies(rng: random.Random, account_ids: Sequence[str], count: int) -> list[str]:
    return [
        json.dumps(
            {
                "debit_account_id": debit,
                "credit_account_id": credit,
                "amount": "1",
                "amount_unit": "minor",
                "ledger": "USD",
                "code": "PAYMENT",
            },
            separators=(",", ":"),
        )
        for debit, credit in uniform_pairs(rng, account_ids, count)
    ]


class ClientPool:
    """Load-client processes, started on first use and kept for every run of the section."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []

    def get(self, count: int) -> list[subprocess.Popen[str]]:
        while len(self.processes) < count:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tbledger.tools.bench.loadclient"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for process in self.processes[:count]:
            if process.poll() is not None:
                raise BenchmarkError(f"a load client exited with {process.returncode}")
        return self.processes[:count]

    def close(self) -> None:
        for process in self.processes:
            with contextlib.suppress(OSError):
                if process.stdin is not None:
                    process.stdin.close()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def closed_loop(
    server: Server,
    pool: ClientPool,
    rng: random.Random,
    *,
    processes: int,
    connections: int,
    warmup_s: float,
    seconds: float,
) -> LoadResult:
    """`connections` closed-loop connections over `processes` client processes."""
    shares = [len(part) for part in split(range(connections), processes)]
    clients = pool.get(len(shares))
    for client, share in zip(clients, shares, strict=True):
        job = {
            "url": server.url,
            "route": "transfer",
            "expect": 201,
            "token": server.token,
            "bodies": _bodies(rng, server.account_ids, BODIES_PER_CLIENT),
            "connections": share,
            "warmup_s": warmup_s,
            "seconds": seconds,
        }
        assert client.stdin is not None
        client.stdin.write(json.dumps(job) + "\n")
        client.stdin.flush()
    for client in clients:
        assert client.stdout is not None
        if client.stdout.readline().strip() != "ready":
            raise BenchmarkError("a load client did not start")
    events_before = engine_events(server)
    start_at = time.time() + 0.2
    for client in clients:
        assert client.stdin is not None
        client.stdin.write(f"{start_at}\n")
        client.stdin.flush()
    window_start = start_at + warmup_s
    time.sleep(max(0.0, window_start - time.time()))
    server_before = process_cpu_s(server.pid)
    wait_before = runqueue_wait_s(server.pid)
    machine_before = machine_cpu()
    time.sleep(max(0.0, window_start + seconds - time.time()))
    server_after = process_cpu_s(server.pid)
    wait_after = runqueue_wait_s(server.pid)
    machine_after = machine_cpu()
    results = []
    for client in clients:
        assert client.stdout is not None
        line = client.stdout.readline()
        if not line:
            raise BenchmarkError(f"a load client failed ({client.poll()})")
        results.append(json.loads(line))
    events_after = engine_events(server)
    per_request = None
    if events_before is not None and events_after is not None:
        requests = events_after[1] - events_before[1]
        per_request = (events_after[0] - events_before[0]) / requests if requests else None
    waiting = None
    if wait_before is not None and wait_after is not None:
        waiting = (wait_after - wait_before) / seconds
    latencies = sorted(x for r in results for x in r["latencies"])
    ok = sum(r["ok"] for r in results)
    errors = sum(r["errors"] for r in results)
    server_cpu = None
    if server_before is not None and server_after is not None:
        server_cpu = (server_after - server_before) / seconds
    machine_busy = None
    if machine_before is not None and machine_after is not None:
        total = machine_after[1] - machine_before[1]
        machine_busy = (machine_after[0] - machine_before[0]) / total if total > 0 else None
    summary = {f"p{p:g}": percentile(latencies, p) * 1e3 for p in PERCENTILES}
    summary["max"] = (latencies[-1] if latencies else float("nan")) * 1e3
    summary["mean"] = (sum(latencies) / len(latencies) if latencies else float("nan")) * 1e3
    return LoadResult(
        requests_per_s=ok / seconds,
        ok=ok,
        errors=errors,
        seconds=seconds,
        latencies_ms=summary,
        server_cpu=server_cpu,
        server_waiting=waiting,
        events_per_engine_request=per_request,
        client_cpu=[r["cpu_seconds"] / seconds for r in results],
        machine_busy=machine_busy,
        processes=len(shares),
        connections=connections,
        error_sample=[e for r in results for e in r["error_sample"]][:3],
        client=", ".join(sorted({f"{r['client']} on {r['event_loop']}" for r in results})),
    )


# -- the batch endpoint ---------------------------------------------------------------------------


async def batch_run(
    server: Server, rng: random.Random, size: int, total: int, streams: int
) -> tuple[float, int, float | None, float]:
    """Batches of `size` to ``POST /v1/transfers/batch`` on `streams` connections, one request
    after another on each: (transfers/s, transfers, server CPU cores over the run, this
    process's (the client's) CPU cores over the run)."""
    calls = max(streams, total // size)
    bodies = []
    for _ in range(calls):
        items = [json.loads(b) for b in _bodies(rng, server.account_ids, size)]
        bodies.append(json.dumps({"transfers": items}, separators=(",", ":")).encode())
    tail = f'"created":{size},"failed":0}}'.encode()
    async with session(server.url, server.token, streams, 300.0) as client:
        # One small request per connection first, so that they are open before the timed region.
        async def open_one() -> None:
            await client.health()

        await asyncio.gather(*(open_one() for _ in range(streams)))

        async def stream(share: list[bytes]) -> None:
            for body in share:
                answer = await client.send_encoded("batch", body)
                status, content = answer.status, answer.content
                if status != 200:
                    raise BenchmarkError(
                        f"batch of {size}: HTTP {status}: {content[:300].decode(errors='replace')}"
                    )
                if not content.endswith(tail):
                    outcome = json.loads(content)
                    raise BenchmarkError(
                        f"batch of {size}: {outcome.get('created')} created, "
                        f"{outcome.get('failed')} failed"
                    )

        cpu_before = process_cpu_s(server.pid)
        own_before = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(stream(share) for share in split(bodies, streams)))
        seconds = time.perf_counter() - start
        own_cpu = (time.process_time() - own_before) / seconds
        cpu_after = process_cpu_s(server.pid)
    cpu = None
    if cpu_before is not None and cpu_after is not None:
        cpu = (cpu_after - cpu_before) / seconds
    return calls * size / seconds, calls * size, cpu, own_cpu


# -- profile --------------------------------------------------------------------------------------

_GROUPS = (
    ("tbledger/api", "tbledger API (routes, auth, rendering)"),
    ("tbledger/store", "tbledger store"),
    ("tbledger/embedded", "twin engine"),
    ("tbledger", "tbledger service"),
    ("fastapi", "FastAPI"),
    ("starlette", "Starlette"),
    ("pydantic", "pydantic"),
    ("uvicorn", "uvicorn"),
    ("h11", "h11 (HTTP parser)"),
    ("httptools", "httptools (HTTP parser)"),
    ("sqlalchemy", "SQLAlchemy"),
    ("asyncpg", "asyncpg"),
    ("aiosqlite", "aiosqlite"),
    ("tigerbeetle", "tigerbeetle package"),
    ("asyncio", "asyncio event loop"),
    ("json", "json"),
)


def profile_groups(path: str) -> list[tuple[str, float]]:
    """Busy time (cProfile ``tottime``, the event loop's idle wait left out) per library, as
    fractions of the total, largest first."""
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    groups: dict[str, float] = {}
    total = 0.0
    for (filename, _, function), (_, _, own, _, _) in stats.items():
        where = filename.replace("\\", "/")
        if filename == "~":
            if "poll" in function or "select" in function:
                continue  # the event loop waiting for I/O: idle, not work
            if "_socket.socket" in function:
                name = "socket send/recv (kernel)"
            else:
                name = "other C built-ins (hashing, json, locks, ...)"
        else:
            name = "other Python"
            for marker, label in _GROUPS:
                if f"/{marker}/" in where or where.endswith(f"/{marker}.py"):
                    name = label
                    break
        total += own
        groups[name] = groups.get(name, 0.0) + own
    if total <= 0:
        return []
    return sorted(((k, v / total) for k, v in groups.items()), key=lambda kv: -kv[1])


# -- the section ----------------------------------------------------------------------------------


async def run_http(ctx: Context) -> Section:
    plan = ctx.plan
    section = Section("http", "HTTP: the API under uvicorn (own process) vs the library path")
    store_kind = ctx.audit_store
    k = plan.http_connections
    section.settings = {
        "server": "uvicorn, 1 process, app over the twin in memory, audit trail in "
        + ("PostgreSQL (a fresh schema)" if store_kind == "postgresql" else "SQLite (a file)"),
        "uvicorn_loop_http": "auto (uvloop and httptools when installed, else asyncio and h11)",
        "load_client": f"aiohttp {aiohttp.__version__} on {event_loop()}, keep-alive "
        "(one ClientSession per client process, TCPConnector(limit=its connections))",
        "accounts": plan.http_accounts,
        "connections": k,
        "client_processes": list(plan.http_client_processes),
        "window_seconds": plan.http_seconds,
        "warmup_seconds": plan.http_warmup_seconds,
        "latency_connections": list(plan.http_latency_connections),
        "batch_sizes": list(plan.http_batch_sizes),
        "batch_transfers_per_run": plan.http_batch_transfers,
        "batch_streams": list(plan.http_batch_streams),
        "library_concurrent_transfers_per_run": plan.http_library_concurrent,
        "repeat": plan.repeat,
    }
    rng = random.Random(f"{ctx.seed}:http")
    if store_kind == "postgresql":
        assert ctx.postgres.url is not None
        database_url, schema = ctx.postgres.url, ctx.postgres.new_schema("http")
    else:
        database_url, schema = f"sqlite:///{Path(ctx.folder) / 'http-server.db'}", None
    ctx.steps("http: starting the server process")
    pool = ClientPool()
    try:
        # Started now, so that they import while the server starts.
        pool.get(max(plan.http_client_processes))
        await _section(ctx, section, pool, rng, store_kind, database_url, schema)
    finally:
        pool.close()
    _ratios_and_notes(ctx, section)
    return section


async def _section(
    ctx: Context,
    section: Section,
    pool: ClientPool,
    rng: random.Random,
    store_kind: str,
    database_url: str,
    schema: str | None,
) -> None:
    plan = ctx.plan
    async with engine_client(TWIN_MEMORY, ctx.folder, None) as client:
        bench = Workbench(client, "http-library", ctx.seed)
        await bench.create_accounts(plan.http_accounts)
        async with open_service(
            bench,
            store_kind,
            audit=True,
            folder=ctx.folder,
            postgres=ctx.postgres,
            purpose="http_library",
        ) as service:
            default_url = f"embedded:///{Path(ctx.folder) / 'http-default.tbj'}"
            default_db = f"sqlite:///{Path(ctx.folder) / 'http-default.db'}"
            with (
                serve(ctx, database_url, schema) as server,
                serve(ctx, default_db, None, engine_url=default_url) as default,
                serve(ctx, "", None, module="tbledger.tools.bench.minimal") as minimal,
            ):
                others = {"default": default, "minimal": minimal}
                await _measure(ctx, section, server, others, pool, bench, service, rng)
        await bench.verify()
    if plan.http_profile_seconds > 0:
        ctx.steps("http: profiling the server")
        await _profile(ctx, section, pool, rng, store_kind)


# The other servers measured in the same rounds: the default service (`tbledger serve`: the
# durable twin and SQLite) and the minimal FastAPI handler, the baseline of CPU per request.
_OTHERS = {
    "default": "POST /v1/transfers, default service (durable twin + SQLite)",
    "minimal": "minimal FastAPI handler (pydantic body, one header dependency)",
}


async def _measure(
    ctx: Context,
    section: Section,
    server: Server,
    others: dict[str, Server],
    pool: ClientPool,
    bench: Workbench,
    service: Any,
    rng: random.Random,
) -> None:
    plan = ctx.plan
    k = plan.http_connections
    library_conc = section.figure(
        "library.concurrent",
        f"library: service.create_transfer, {k} concurrent tasks",
        concurrency=k,
    )
    library_batch = {
        size: section.figure(
            f"library.batch.{size}", f"library: service.create_transfers, {size}/call"
        )
        for size in plan.http_batch_sizes
    }
    single = {
        procs: section.figure(
            f"single.p{procs}",
            f"POST /v1/transfers, {k} connections over {procs} client process"
            + ("es" if procs > 1 else ""),
            "requests/s",
            connections=k,
            client_processes=procs,
        )
        for procs in plan.http_client_processes
    }
    other = {
        name: section.figure(
            "single.default" if name == "default" else name,
            f"{label}, {k} connections over 1 client process",
            "requests/s",
            connections=k,
            client_processes=1,
        )
        for name, label in _OTHERS.items()
    }
    cpu_of = {
        figure.key: section.figure(
            f"cpu.{figure.key}", f"server CPU per request: {figure.label}", "us/request"
        )
        for figure in [*single.values(), *other.values()]
    }
    batch = {
        (size, streams): section.figure(
            f"batch.{size}" + (f".streams{streams}" if streams > 1 else ""),
            f"POST /v1/transfers/batch, {size}/request, {streams} connection"
            + ("s" if streams > 1 else ""),
            batch_size=size,
            streams=streams,
        )
        for size in plan.http_batch_sizes
        for streams in plan.http_batch_streams
    }
    cpu_of.update(
        (
            figure.key,
            section.figure(
                f"cpu.{figure.key}", f"server CPU per transfer: {figure.label}", "us/transfer"
            ),
        )
        for figure in batch.values()
    )
    # Warm-up: the library path and one batch (every closed loop has a warm-up of its own).
    ctx.steps("http: warm-up")
    await bench.service_concurrent(service, max(k, plan.http_library_concurrent // 10), k)
    await batch_run(server, rng, plan.http_batch_sizes[0], plan.http_batch_sizes[0], 1)
    for round_ in range(plan.repeat):
        step = f"round {round_ + 1}/{plan.repeat}"
        ctx.steps(f"http: library path, {step}")
        done = await bench.service_concurrent(service, plan.http_library_concurrent, k)
        library_conc.runs.append(done.rate)
        _cpu_per_transfer(library_conc, done)
        for size, figure in library_batch.items():
            total = max(size, plan.http_batch_transfers)
            done = await bench.service_sequential(service, total - total % size, size)
            figure.runs.append(done.rate)
            _cpu_per_transfer(figure, done)
        closed_loops = [
            *(
                (server, procs, f"single transfers, {procs} client process(es)", figure)
                for procs, figure in single.items()
            ),
            *((others[name], 1, name, figure) for name, figure in other.items()),
        ]
        for target, procs, what, figure in closed_loops:
            ctx.steps(f"http: {what}, {step}")
            load = await asyncio.to_thread(
                closed_loop,
                target,
                pool,
                rng,
                processes=procs,
                connections=k,
                warmup_s=plan.http_warmup_seconds,
                seconds=plan.http_seconds,
            )
            if load.errors or load.ok == 0:
                raise BenchmarkError(
                    f"{what}: {load.errors} errors, {load.ok} ok: {load.error_sample}"
                )
            _record(figure, cpu_of[figure.key], load)
        for (size, streams), figure in batch.items():
            ctx.steps(f"http: batches of {size}, {streams} connection(s), {step}")
            rate, sent, cpu, client_cpu = await batch_run(
                server, rng, size, max(size, plan.http_batch_transfers), streams
            )
            figure.runs.append(rate)
            figure.params["transfers_per_run"] = sent
            figure.extra.setdefault("server_cpu_cores", []).append(cpu)
            figure.extra.setdefault("client_cpu_cores", []).append(client_cpu)
            if cpu is not None:
                per_transfer_us = cpu / rate * 1e6
                figure.extra.setdefault("server_cpu_us_per_transfer", []).append(per_transfer_us)
                cpu_of[figure.key].runs.append(per_transfer_us)
    for size in plan.http_latency_connections:
        procs = max(plan.http_client_processes)
        ctx.steps(f"http: latency at {size} connections")
        load = await asyncio.to_thread(
            closed_loop,
            server,
            pool,
            rng,
            processes=min(procs, size),
            connections=size,
            warmup_s=plan.http_warmup_seconds,
            seconds=plan.http_seconds,
        )
        figure = section.figure(
            f"latency.c{size}",
            f"POST /v1/transfers, {size} connections (latency)",
            "requests/s",
            connections=size,
            client_processes=min(procs, size),
        )
        figure.runs.append(load.requests_per_s)
        figure.extra.update(load.as_json())
        figure.extra["bottleneck"] = load.bottleneck


def _record(figure: Figure, cpu: Figure, load: LoadResult) -> None:
    figure.runs.append(load.requests_per_s)
    figure.extra.setdefault("runs", []).append(load.as_json())
    figure.extra["bottleneck"] = load.bottleneck
    if load.server_cpu_us_per_request is not None:
        cpu.runs.append(load.server_cpu_us_per_request)


def _cpu_per_transfer(figure: Figure, done: Run) -> None:
    if done.cpu_seconds is not None:
        us = done.cpu_seconds / done.transfers * 1e6
        figure.extra.setdefault("cpu_us_per_transfer", []).append(us)


async def _profile(
    ctx: Context, section: Section, pool: ClientPool, rng: random.Random, store_kind: str
) -> None:
    """A separate, profiled server under the single-transfer closed loop: where its time goes."""
    plan = ctx.plan
    if store_kind == "postgresql":
        assert ctx.postgres.url is not None
        database_url, schema = ctx.postgres.url, ctx.postgres.new_schema("http_profile")
    else:
        database_url, schema = f"sqlite:///{Path(ctx.folder) / 'http-profile.db'}", None
    path = str(Path(ctx.folder) / "http-server.prof")
    with serve(ctx, database_url, schema, profile=path) as server:
        load = await asyncio.to_thread(
            closed_loop,
            server,
            pool,
            rng,
            processes=max(plan.http_client_processes),
            connections=plan.http_connections,
            warmup_s=plan.http_warmup_seconds,
            seconds=plan.http_profile_seconds,
        )
    if not os.path.exists(path):
        section.notes.append("server profile: not written (the server did not stop cleanly)")
        return
    groups = profile_groups(path)
    section.settings["server_profile"] = {
        "requests_per_s_under_profiler": load.requests_per_s,
        "own_time_share": {name: round(share, 4) for name, share in groups},
    }


def _ratios_and_notes(ctx: Context, section: Section) -> None:
    plan = ctx.plan
    for procs in plan.http_client_processes:
        section.ratio(
            f"single.p{procs}/library",
            f"HTTP single transfers ({procs} client process"
            + ("es" if procs > 1 else "")
            + ") / library concurrent create_transfer",
            f"single.p{procs}",
            "library.concurrent",
        )
    for size in plan.http_batch_sizes:
        for streams in plan.http_batch_streams:
            key = f"batch.{size}" + (f".streams{streams}" if streams > 1 else "")
            section.ratio(
                f"{key}/library",
                f"HTTP batch endpoint, {size}/request, {streams} connection(s) / library "
                f"create_transfers {size}/call",
                key,
                f"library.batch.{size}",
                target=0.9,
            )
    # CPU per request as a ratio that grows with speed: the minimal handler's over ours. 0.5
    # or more: tbledger spends at most twice the minimal handler's CPU per request.
    for key, what in (("single.default", "default service"), ("single.p1", "twin in memory")):
        section.ratio(
            f"cpu.minimal/cpu.{key}",
            f"server CPU per request, minimal FastAPI handler / tbledger ({what}); "
            ">= 0.5: at most 2x",
            "cpu.minimal",
            f"cpu.{key}",
            target=0.5 if key == "single.default" else None,
            attach=False,
        )
    section.ratio(
        "single.default/minimal",
        "HTTP single transfers, default service / minimal FastAPI handler (requests/s)",
        "single.default",
        "minimal",
    )
    best = best_single(section)
    if best is not None:
        runs = best.extra.get("runs", [])
        middle = runs[len(runs) // 2] if runs else {}
        server_cpu = middle.get("server_cpu_cores")
        library = section.get("library.concurrent")
        library_cpu = library.extra.get("cpu_us_per_transfer") if library is not None else None
        if server_cpu and best.value and library_cpu:
            per_request_us = server_cpu / best.value * 1e6
            library_us = statistics.median(library_cpu)
            section.settings["server_cpu_us_per_request"] = round(per_request_us, 1)
            section.settings["library_cpu_us_per_transfer"] = round(library_us, 1)
            section.notes.append(
                f"CPU per single-transfer request in the server process: {per_request_us:,.0f} "
                f"us; the library path (service, audit trail, twin engine) costs "
                f"{library_us:,.0f} us of CPU per transfer when called directly at the same "
                f"concurrency; the difference, about {per_request_us - library_us:,.0f} us, is "
                "the HTTP layer (uvicorn, parsing, routing, auth, validation, rendering) plus "
                "the smaller groups the coalescer forms when requests arrive one by one."
            )
        section.notes.append(
            f"bottleneck of the best single-transfer run ({best.key}): "
            f"{best.extra.get('bottleneck')}"
        )
    load_client = section.settings.get("load_client")
    if load_client:
        section.notes.append(
            f"load clients: {load_client}; each single-transfer and latency run below gives the "
            "number of client processes, their CPU and its ratio to the server's CPU over the "
            "same window (a client side well under the server's means the server is measured)"
        )
    for figure in section.figures:
        run: dict[str, Any] | None = None
        if figure.key.startswith("single.") and figure.extra.get("runs"):
            run = figure.extra["runs"][len(figure.extra["runs"]) // 2]
        elif figure.key.startswith("latency.") and "client_cpu_cores" in figure.extra:
            run = figure.extra
        if run is not None:
            section.notes.append(_load_note(figure.key, run))
    for figure in section.figures:
        clients = figure.extra.get("client_cpu_cores")
        servers = figure.extra.get("server_cpu_cores")
        if figure.key.startswith("batch.") and clients and servers:
            section.notes.append(
                f"{figure.key}: server {_cores(_median(servers))}, client (this process) "
                f"{_cores(_median(clients))}"
            )


def _load_note(key: str, run: dict[str, Any]) -> str:
    waiting = run.get("server_waiting_for_cpu")
    group = run.get("events_per_engine_request")
    processes = run.get("client_processes", len(run["client_cpu_cores"]))
    total = run.get("client_cpu_cores_total", sum(run["client_cpu_cores"]))
    versus = run.get("client_to_server_cpu")
    per_request = run.get("client_cpu_us_per_request")
    return (
        f"{key}: {run['requests_per_s']:,.0f} requests/s; server {_cores(run['server_cpu_cores'])} "
        f"(runnable but waiting for a CPU {_share(waiting)} of the window; "
        f"{'?' if group is None else f'{group:.1f}'} transfers per engine request); "
        f"{processes} client process{'es' if processes != 1 else ''} "
        f"({', '.join(_cores(c) for c in run['client_cpu_cores'])}; {_cores(total)} in all, "
        f"{_share(versus)} of the server's CPU, "
        f"{'?' if per_request is None else f'{per_request:,.0f}'} us per request); whole "
        f"machine {_share(run['machine_busy_fraction'])} busy ({os.cpu_count()} cores); p50 "
        f"{run['latency_ms']['p50']:.1f} ms, p99 {run['latency_ms']['p99']:.1f} ms; bottleneck: "
        f"{run.get('bottleneck', '?')}"
    )


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def best_single(section: Section) -> Figure | None:
    candidates = [f for f in section.figures if f.key.startswith("single.") and f.value is not None]
    return max(candidates, key=lambda f: f.value or 0.0) if candidates else None


def _cores(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f} cores"


def _share(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"
