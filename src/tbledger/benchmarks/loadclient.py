"""A closed-loop HTTP client process for the HTTP section: K connections, one request each at a
time.

Run as ``python -m tbledger.benchmarks.loadclient``; for each JSON job read from stdin (url,
path, token, bodies, connections, warmup_s, seconds), prints ``ready``, waits for a line holding the
wall-clock start time, runs, and prints one JSON result: requests completed inside the measured
window, errors, the window's latencies (seconds) and the process's CPU seconds over the window.
It serves jobs until stdin closes, so that one process serves every run of a section.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

__all__ = ["main"]

LATENCY_SAMPLES_MAX = 200_000


async def _run(job: dict[str, Any], start_at: float) -> dict[str, Any]:
    bodies: list[bytes] = [b.encode() for b in job["bodies"]]
    connections = int(job["connections"])
    window_start = start_at + float(job["warmup_s"])
    window_end = window_start + float(job["seconds"])
    headers = {"authorization": f"Bearer {job['token']}", "content-type": "application/json"}
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0, "all": 0}
    error_sample: list[str] = []
    cpu: dict[str, float] = {}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=job["url"], headers=headers, limits=limits, timeout=60.0
    ) as client:

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
                    response = await client.post(job["path"], content=body)
                    status = response.status_code
                    detail = response.text[:200] if status != job["expect"] else ""
                except httpx.HTTPError as exc:
                    status, detail = -1, f"{type(exc).__name__}: {exc}"
                took = time.perf_counter() - started
                done = time.time()
                counts["all"] += 1
                if now >= window_start and done <= window_end:
                    if status == job["expect"]:
                        counts["ok"] += 1
                        if len(latencies) < LATENCY_SAMPLES_MAX:
                            latencies.append(took)
                    else:
                        counts["errors"] += 1
                if status != job["expect"] and len(error_sample) < 3:
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
    }


def main() -> int:
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        job = json.loads(line)
        print("ready", flush=True)
        start_at = float(sys.stdin.readline())
        result = asyncio.run(_run(job, start_at))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
