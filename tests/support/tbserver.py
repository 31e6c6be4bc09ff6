"""Start a real TigerBeetle replica for tests, or find a running cluster.

A real server comes from ``TIGERBEETLE_ADDRESSES`` (a running cluster, used as is) or from
``TIGERBEETLE_BIN`` (a binary: a fresh data file is formatted in a temporary folder and one replica
is started on a free loopback port, in production mode, not ``--development``, so batches hold
8189 events). With neither, `real_server_reason()` says why the real-server cases skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

CLUSTER_ID = 0


@dataclass(frozen=True)
class RealServer:
    addresses: str
    cluster_id: int = CLUSTER_ID


def real_server_reason() -> str | None:
    """None when a real server can be had, else the reason the real-server cases skip."""
    if os.environ.get("TIGERBEETLE_ADDRESSES"):
        return None
    binary = os.environ.get("TIGERBEETLE_BIN")
    if not binary:
        return "no real TigerBeetle: set TIGERBEETLE_BIN (server binary) or TIGERBEETLE_ADDRESSES"
    if not os.access(binary, os.X_OK):
        return f"TIGERBEETLE_BIN={binary!r} is not an executable file"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tigerbeetle exited early with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"tigerbeetle did not listen on port {port} within {timeout_s}s")


@contextlib.contextmanager
def start_replica(binary: str, *, cluster_id: int = CLUSTER_ID) -> Iterator[RealServer]:
    """Format a fresh data file in a temporary folder and run one replica on loopback."""
    folder = tempfile.mkdtemp(prefix="tbledger-tb-")
    data_file = os.path.join(folder, f"{cluster_id}_0.tigerbeetle")
    log_path = os.path.join(folder, "replica.log")
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
        port = free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [binary, "start", f"--addresses=127.0.0.1:{port}", data_file],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_listening(port, process, timeout_s=60)
            yield RealServer(addresses=f"127.0.0.1:{port}", cluster_id=cluster_id)
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
def real_server() -> Iterator[RealServer]:
    """The real server to test against; call only when `real_server_reason()` is None."""
    addresses = os.environ.get("TIGERBEETLE_ADDRESSES")
    if addresses:
        cluster_id = int(os.environ.get("TIGERBEETLE_CLUSTER_ID", str(CLUSTER_ID)))
        yield RealServer(addresses=addresses, cluster_id=cluster_id)
        return
    binary = os.environ["TIGERBEETLE_BIN"]
    with start_replica(binary) as server:
        yield server
