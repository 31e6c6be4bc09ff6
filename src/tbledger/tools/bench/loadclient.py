"""A closed-loop HTTP client process for the HTTP section: K connections, one request each at a
time.

Run as ``python -m tbledger.tools.bench.loadclient``; for each JSON job read from stdin (url,
route (``transfer`` or ``batch``), token, bodies, connections, warmup_s, seconds), prints
``ready``, waits for a line holding the wall-clock start time, runs, and prints one JSON result:
requests completed inside the measured window, errors, the window's latencies (seconds) and the
process's CPU seconds over the window. It serves jobs until stdin closes, so that one process
serves every run of a section.

The client is `tbledger.client` on its aiohttp transport (one ``ClientSession``, a
``TCPConnector`` limited to K keep-alive connections), sending bodies encoded once up front
(`AsyncLedgerClient.send_encoded`), on uvloop when it is installed: it costs a fraction of the
CPU per request that the server spends, so that the figures measure the server, not the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any, Literal

import aiohttp

from tbledger.client import AiohttpTransport, AsyncLedgerClient
from tbledger.errors import ApiUnreachableError
from tbledger.tools.loop import event_loop, run

__all__ = ["main", "session"]

LATENCY_SAMPLES_MAX = 200_000


def session(url: str, token: str, connections: int, timeout_s: float) -> AsyncLedgerClient:
    """A client of the service at `url` on the aiohttp transport, holding at most `connections`
    keep-alive connections and sending the bearer `token` with every request."""
    transport = AiohttpTransport(
        url,
        headers={"authorization": f"Bearer {token}"},
        timeout_s=timeout_s,
        connections=connections,
    )
    return AsyncLedgerClient(transport=transport)


Route = Literal["transfer", "batch"]


def _route(job: dict[str, Any]) -> Route:
    route = str(job["route"])
    if route not in ("transfer", "batch"):
        raise ValueError(f"unknown route {route!r}: transfer or batch")
    return "transfer" if route == "transfer" else "batch"


async def _run(job: dict[str, Any], start_at: float) -> dict[str, Any]:
    bodies: list[bytes] = [b.encode() for b in job["bodies"]]
    connections = int(job["connections"])
    route = _route(job)
    expect = int(job["expect"])
    window_start = start_at + float(job["warmup_s"])
    window_end = window_start + float(job["seconds"])
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0, "all": 0}
    error_sample: list[str] = []
    cpu: dict[str, float] = {}
    async with session(job["url"], job["token"], connections, 60.0) as client:

        async def worker(index: int) -> None:
            n = index
            while True:
                now = time.time()
                if now >= window_end:
                    return
                body = bodies[n % len(bodies)]
                n += connections
                started = time.perf_counter()
                try:
                    answer = await client.send_encoded(route, body)
                    status = answer.status
                    payload = answer.content
                    detail = payload[:200].decode(errors="replace") if status != expect else ""
                except ApiUnreachableError as exc:
                    cause = exc.__cause__ or exc
                    status, detail = -1, f"{type(cause).__name__}: {cause}"
                took = time.perf_counter() - started
                done = time.time()
                counts["all"] += 1
                if now >= window_start and done <= window_end:
                    if status == expect:
                        counts["ok"] += 1
                        if len(latencies) < LATENCY_SAMPLES_MAX:
                            latencies.append(took)
                    else:
                        counts["errors"] += 1
                if status != expect and len(error_sample) < 3:
                    error_sample.append(f"{status}: {detail}")

        async def clock() -> None:
            await asyncio.sleep(max(0.0, window_start - time.time()))
            cpu["start"] = time.process_time()
            await asyncio.sleep(max(0.0, window_end - time.time()))
            cpu["end"] = time.process_time()

        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(clock(), *(worker(i) for i in range(connections)))
    return {
        "ok": counts["ok"],
        "errors": counts["errors"],
        "all": counts["all"],
        "seconds": float(job["seconds"]),
        "latencies": latencies,
        "cpu_seconds": cpu.get("end", 0.0) - cpu.get("start", 0.0),
        "error_sample": error_sample,
        "client": f"aiohttp {aiohttp.__version__}",
        "event_loop": event_loop(),
    }


def _write_line(text: str) -> None:
    """`text` and a newline on stdout, whole. A result holds every latency sample, so it is
    often longer than a pipe holds (64 KiB). Written with print(), a full-size run's result
    sometimes reached the parent cut after exactly 65,536 bytes and followed by the newline, the
    rest lost; here it is written to the descriptor, set blocking, until every byte is out."""
    sys.stdout.flush()
    os.set_blocking(sys.stdout.fileno(), True)
    data = (text + "\n").encode()
    view = memoryview(data)
    while view:
        written = os.write(sys.stdout.fileno(), view)
        view = view[written:]


def main() -> int:
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        job = json.loads(line)
        print("ready", flush=True)
        start_at = float(sys.stdin.readline())
        result = run(_run(job, start_at))
        _write_line(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
