"""A real multi-replica TigerBeetle cluster on loopback, for failover tests.

`start_cluster(binary)` formats one data file per replica in a temporary folder on disk (Direct
IO: not tmpfs), starts every replica in production mode (never ``--development``) on free
loopback ports, and yields a `Cluster` that can stop a replica (SIGKILL: a crash; SIGTERM) and
start it again on the same data file and address. Leaving the context stops every replica it
started and removes the folder, whatever happened inside.

Each replica also dies with the thread that started it (Linux ``PR_SET_PDEATHSIG``), so a test
run that is itself killed leaves no replica behind; start replicas from the test's own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import tigerbeetle

CLUSTER_ID = 0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1
# Written to a replica's log before each start, so a restart's lines can be told apart.
_START_MARK = "--- tbcluster start"
# A replica's log line on entering normal status names the view and its role in it, e.g.
# "1N: transition_to_normal_from_view_change_status: view=1..1 primary".
_NORMAL = re.compile(
    r"\b(\d+)[A-Za-z]: transition_to_normal_from_\w+: view=(?:\d+\.\.)?(\d+) (primary|backup)"
)


def _die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get SIGKILL when its parent thread exits (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return preexec


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all bound at once, so none repeats)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@dataclass
class Replica:
    """One replica: its index, address, data file and log, and its process while it runs."""

    index: int
    port: int
    data_file: str
    log_path: str
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    """A formatted cluster: start, stop and restart replicas by index; `close()` stops all."""

    binary: str
    folder: str
    replicas: list[Replica]
    cluster_id: int = CLUSTER_ID
    # What happened, in order: ("start" | "SIGKILL" | "SIGTERM", replica index, monotonic time).
    history: list[tuple[str, int, float]] = field(default_factory=list)

    @property
    def addresses(self) -> str:
        """Every replica's address, in replica order (as replicas and clients must be given)."""
        return ",".join(r.address for r in self.replicas)

    @property
    def engine_url(self) -> str:
        return f"tigerbeetle://{self.addresses}?cluster_id={self.cluster_id}"

    def start(self, index: int, *, wait: bool = True) -> None:
        """Start replica `index` on its data file and address (again, after a stop)."""
        replica = self.replicas[index]
        if replica.running:
            raise RuntimeError(f"replica {index} is already running")
        with open(replica.log_path, "ab") as log:
            log.write(f"\n{_START_MARK} {replica.starts + 1}\n".encode())
            log.flush()
            replica.process = subprocess.Popen(
                [self.binary, "start", f"--addresses={self.addresses}", replica.data_file],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only sets the death signal
            )
        replica.starts += 1
        self.history.append(("start", index, time.monotonic()))
        if wait:
            self.wait_listening(index)

    def wait_listening(self, index: int, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until replica `index` accepts connections (it may still be catching up)."""
        replica = self.replicas[index]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            process = replica.process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise RuntimeError(
                    f"replica {index} exited with code {code}:\n{self.log_tail(index)}"
                )
            if _listening(replica.port):
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"replica {index} did not listen within {timeout_s} s:\n{self.log_tail(index)}"
        )

    def stop(self, index: int, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop replica `index` with `sig` (SIGKILL: a crash) and wait until it is gone."""
        replica = self.replicas[index]
        process = replica.process
        if process is None:
            raise RuntimeError(f"replica {index} is not running")
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        replica.process = None
        self.history.append((sig.name, index, time.monotonic()))

    def restart(self, index: int, *, wait: bool = True) -> None:
        """Start a stopped replica again (stop it first with SIGKILL if it still runs)."""
        if self.replicas[index].running:
            self.stop(index)
        self.start(index, wait=wait)

    def running(self) -> list[int]:
        return [r.index for r in self.replicas if r.running]

    def views(self) -> dict[int, tuple[int, str]]:
        """Each running replica's latest (view, role) in normal status since it last started."""
        views: dict[int, tuple[int, str]] = {}
        for replica in self.replicas:
            if not replica.running:
                continue
            text = self._log_text(replica.index).rpartition(_START_MARK)[2]
            for match in _NORMAL.finditer(text):
                if int(match.group(1)) == replica.index:
                    views[replica.index] = (int(match.group(2)), match.group(3))
        return views

    def primary(self) -> int | None:
        """The running replica that leads the newest view any running replica is in, or None."""
        views = self.views()
        if not views:
            return None
        newest = max(view for view, _ in views.values())
        for index, (view, role) in views.items():
            if view == newest and role == "primary":
                return index
        return None

    def wait_primary(self, timeout_s: float = START_TIMEOUT_S) -> int:
        """Wait until a running replica leads the newest view and return its index."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            primary = self.primary()
            if primary is not None:
                return primary
            time.sleep(0.05)
        raise RuntimeError(f"no primary within {timeout_s} s (views: {self.views()})")

    def _log_text(self, index: int) -> str:
        try:
            with open(self.replicas[index].log_path, "rb") as log:
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, index: int, lines: int = 30) -> str:
        try:
            with open(self.replicas[index].log_path, "rb") as log:
                text = log.read().decode(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Kill every replica still running and reap it (idempotent)."""
        for replica in self.replicas:
            process = replica.process
            if process is None:
                continue
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_TIMEOUT_S)
            replica.process = None


async def wait_answering(cluster: Cluster, timeout_s: float = START_TIMEOUT_S) -> float:
    """Wait until the cluster answers a client request (a quorum runs with synchronized clocks).

    Returns the seconds it took. A fresh client of its own, closed before returning.
    """
    started = time.monotonic()
    client = tigerbeetle.ClientAsync(
        cluster_id=cluster.cluster_id, replica_addresses=cluster.addresses
    )
    try:
        request = asyncio.ensure_future(client.lookup_accounts([1]))
        await asyncio.wait({request}, timeout=timeout_s)
        if not request.done():
            request.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise RuntimeError(f"the cluster did not answer within {timeout_s} s")
        request.result()
    finally:
        await client.close()
    return time.monotonic() - started


def _format(binary: str, cluster_id: int, replica: int, count: int, path: str) -> None:
    completed = subprocess.run(
        [
            binary,
            "format",
            f"--cluster={cluster_id}",
            f"--replica={replica}",
            f"--replica-count={count}",
            path,
        ],
        capture_output=True,
        check=False,
    )
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).decode(errors="replace")
        raise RuntimeError(f"tigerbeetle format of replica {replica} failed:\n{output}")


@contextlib.contextmanager
def start_cluster(
    binary: str,
    *,
    replica_count: int = 3,
    cluster_id: int = CLUSTER_ID,
    parent: str | None = None,
) -> Iterator[Cluster]:
    """Format `replica_count` data files in a temporary folder under `parent` and start them all.

    On exit every replica is killed and the folder removed, also when the body raised.
    """
    folder = tempfile.mkdtemp(prefix="tbledger-cluster-", dir=parent)
    cluster: Cluster | None = None
    try:
        ports = free_ports(replica_count)
        replicas = [
            Replica(
                index=i,
                port=port,
                data_file=os.path.join(folder, f"{cluster_id}_{i}.tigerbeetle"),
                log_path=os.path.join(folder, f"replica_{i}.log"),
            )
            for i, port in enumerate(ports)
        ]
        # Formatting writes each file's whole WAL: do the replicas side by side.
        with ThreadPoolExecutor(max_workers=replica_count) as pool:
            for future in [
                pool.submit(_format, binary, cluster_id, r.index, replica_count, r.data_file)
                for r in replicas
            ]:
                future.result()
        cluster = Cluster(binary=binary, folder=folder, replicas=replicas, cluster_id=cluster_id)
        for replica in replicas:
            cluster.start(replica.index, wait=False)
        for replica in replicas:
            cluster.wait_listening(replica.index)
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        shutil.rmtree(folder, ignore_errors=True)
