"""Where the run happens: the machine, the versions, PostgreSQL and a real TigerBeetle server.

PostgreSQL: ``--postgres-url``, else ``TBLEDGER_BENCH_DATABASE_URL``, else
``TBLEDGER_TEST_DATABASE_URL`` (as the test suite), else the local server at
``postgresql://postgres@127.0.0.1:5432/test``. Every section that uses it works in fresh schemas
``tbledger_bench_<random>_...``, dropped at the end. Without one, those figures are skipped with
the reason.

A real TigerBeetle: ``--tigerbeetle-addresses`` / ``TIGERBEETLE_ADDRESSES`` (a running cluster,
used as is: fresh accounts and transfers are created in it), else ``--tigerbeetle-bin`` /
``TIGERBEETLE_BIN`` (a server binary: a fresh data file is formatted in a temporary folder and one
production-mode replica runs on a free loopback port for the run). Without either, the real-server
figures are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import platform
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tbledger.tools.bench.common import BenchOptions

__all__ = ["Postgres", "RealServer", "find_postgres", "machine", "real_server", "versions"]

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/test"
ENV_URLS = ("TBLEDGER_BENCH_DATABASE_URL", "TBLEDGER_TEST_DATABASE_URL")
CONNECT_TIMEOUT_S = 5.0


# -- PostgreSQL -----------------------------------------------------------------------------------


def asyncpg_dsn(url: str) -> str:
    """A plain postgresql:// DSN for asyncpg (SQLAlchemy driver suffixes dropped)."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Postgres:
    """The PostgreSQL server of the run (`url` None: none, see `reason`) and its schemas."""

    url: str | None
    origin: str
    reason: str | None = None
    version: str | None = None
    settings: dict[str, str] = field(default_factory=dict)
    schemas: list[str] = field(default_factory=list)

    def new_schema(self, purpose: str) -> str:
        """A fresh schema name, remembered so that `drop_schemas` removes it."""
        name = f"tbledger_bench_{secrets.token_hex(4)}_{purpose}"
        self.schemas.append(name)
        return name

    async def drop_schemas(self) -> None:
        import asyncpg  # noqa: PLC0415

        if self.url is None or not self.schemas:
            return
        connection = await asyncpg.connect(asyncpg_dsn(self.url), timeout=CONNECT_TIMEOUT_S)
        try:
            for schema in self.schemas:
                # The audit trail's append-only triggers refuse TRUNCATE, not DROP.
                await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await connection.close()
        self.schemas.clear()

    def as_json(self) -> dict[str, Any]:
        return {
            "available": self.url is not None,
            "origin": self.origin,
            "reason": self.reason,
            "version": self.version,
            "settings": self.settings,
        }


async def _probe(url: str) -> tuple[str, dict[str, str]]:
    import asyncpg  # noqa: PLC0415

    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=CONNECT_TIMEOUT_S)
    try:
        version = str(await connection.fetchval("SHOW server_version"))
        shown = {}
        for name in ("max_connections", "fsync", "synchronous_commit", "shared_buffers"):
            shown[name] = str(await connection.fetchval(f"SHOW {name}"))
        return version, shown
    finally:
        await connection.close()


def find_postgres(url: str | None) -> Postgres:
    """The server to use, probed (version and durability settings), or why there is none."""
    candidates: list[tuple[str, str]] = []
    if url:
        candidates.append((url, "--postgres-url"))
    else:
        for name in ENV_URLS:
            if os.environ.get(name):
                candidates.append((os.environ[name], name))
                break
        else:
            candidates.append((LOCAL_URL, "local"))
    reasons = []
    for candidate, origin in candidates:
        try:
            version, shown = asyncio.run(_probe(candidate))
        except Exception as exc:
            reasons.append(f"{origin}: {type(exc).__name__}: {exc}")
            continue
        return Postgres(candidate, origin, version=version, settings=shown)
    return Postgres(None, "none", reason="no PostgreSQL answered (" + "; ".join(reasons) + ")")


# -- a real TigerBeetle ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RealServer:
    """A real cluster to measure (`addresses` None: none, see `reason`)."""

    addresses: str | None
    cluster_id: int = 0
    origin: str = "none"
    version: str | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "available": self.addresses is not None,
            "origin": self.origin,
            "version": self.version,
            "reason": self.reason,
        }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_version(binary: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [binary, "version"], check=False, capture_output=True, text=True, timeout=30
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines:
            return lines[0]
    return "unknown"


@contextlib.contextmanager
def start_replica(
    binary: str, cluster_id: int, *, prefix: str = "tbledger-bench-tb-"
) -> Iterator[str]:
    """Format a fresh data file in a temporary folder and run one replica on loopback, in
    production mode (never --development); yield its address. The test suite uses it too."""
    folder = tempfile.mkdtemp(prefix=prefix)
    data_file = os.path.join(folder, f"{cluster_id}_0.tigerbeetle")
    try:
        subprocess.run(
            [
                binary,
                "format",
                f"--cluster={cluster_id}",
                "--replica=0",
                "--replica-count=1",
                data_file,
            ],
            check=True,
            capture_output=True,
        )
        port = _free_port()
        with open(os.path.join(folder, "replica.log"), "wb") as log:
            process = subprocess.Popen(
                [binary, "start", f"--addresses=127.0.0.1:{port}", data_file],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"tigerbeetle exited early with code {process.returncode}")
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tigerbeetle did not listen on port {port} within 60 s")
                time.sleep(0.05)
            yield f"127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def real_server(options: BenchOptions) -> Iterator[RealServer]:
    """The real cluster of this run, started here from a binary if need be, or why there is
    none."""
    addresses = options.tigerbeetle_addresses
    if addresses:
        yield RealServer(
            addresses, options.tigerbeetle_cluster_id, "addresses", version="unknown (running)"
        )
        return
    binary = options.tigerbeetle_bin
    if not binary:
        yield RealServer(
            None,
            reason="no real TigerBeetle: set TIGERBEETLE_BIN (server binary) or "
            "TIGERBEETLE_ADDRESSES, or pass --tigerbeetle-bin",
        )
        return
    if not os.access(binary, os.X_OK):
        yield RealServer(None, reason=f"{binary!r} is not an executable file")
        return
    version = server_version(binary)
    try:
        replica = start_replica(binary, options.tigerbeetle_cluster_id)
        where = replica.__enter__()
    except Exception as exc:
        yield RealServer(None, reason=f"could not start {binary}: {exc}")
        return
    try:
        yield RealServer(
            where, options.tigerbeetle_cluster_id, "binary (fresh replica)", version=version
        )
    finally:
        replica.__exit__(None, None, None)


# -- machine and versions -------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1024 * 1024), 1)
    return None


def load_average() -> list[float] | None:
    with contextlib.suppress(OSError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "load_average_at_start": load_average(),
    }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {
        name: _version(name)
        for name in (
            "tbledger",
            "tigerbeetle",
            "fastapi",
            "uvicorn",
            "httpx",
            "aiohttp",
            "asyncpg",
            "sqlalchemy",
            "pydantic",
            "uvloop",
            "httptools",
            "matplotlib",
        )
    }
    out["sqlite"] = sqlite3.sqlite_version
    out["python_executable"] = sys.executable
    return out
