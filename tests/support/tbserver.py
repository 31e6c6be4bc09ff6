"""Start a real TigerBeetle replica for tests, or find a running cluster.

A real server comes from ``TIGERBEETLE_ADDRESSES`` (a running cluster, used as is) or from
``TIGERBEETLE_BIN`` (a binary: a fresh data file is formatted in a temporary folder and one replica
is started on a free loopback port, in production mode, not ``--development``, so batches hold
8189 events). With neither, `real_server_reason()` says why the real-server cases skip.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from tbledger.tools.bench.env import start_replica as local_replica

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


@contextlib.contextmanager
def start_replica(binary: str, *, cluster_id: int = CLUSTER_ID) -> Iterator[RealServer]:
    """Format a fresh data file in a temporary folder and run one replica on loopback."""
    with local_replica(binary, cluster_id, prefix="tbledger-tb-") as address:
        yield RealServer(addresses=address, cluster_id=cluster_id)


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
