"""The engine port and engine selection by URL.

The port is the official ``tigerbeetle`` client API: eight operations over the ``tigerbeetle``
package's own dataclasses, results and exceptions. Two engines implement it: a real cluster through
``tigerbeetle.ClientAsync``/``ClientSync``, and the embedded twin (``tbledger.embedded``).

An engine is chosen by URL:

* ``tigerbeetle://10.0.0.1:3000,10.0.0.2:3000?cluster_id=7`` — a real cluster. Every replica
  address is passed to the client, which finds the primary and fails over by itself. Host names
  are resolved here because the official client accepts IP addresses only.
* ``embedded:///var/lib/tbledger/ledger.tbj`` — the twin, durable in that journal file
  (``embedded://ledger.tbj`` is relative to the working directory).
* ``memory://`` — the twin, in memory.

With no URL, ``TBLEDGER_ENGINE_URL`` is used; else the specification's ``TIGERBEETLE_ADDRESSES``
(with ``TIGERBEETLE_CLUSTER_ID``) selects a real cluster; else the engine is ``memory://``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import tigerbeetle

from tbledger.embedded import ClientAsync as EmbeddedClientAsync
from tbledger.embedded import ClientSync as EmbeddedClientSync
from tbledger.embedded import Replica
from tbledger.engine.port import EngineClient, EngineClientSync
from tbledger.errors import ConfigurationError
from tbledger.limits import REPLICA_ADDRESSES_MAX, U128_MAX

__all__ = [
    "EngineClient",
    "EngineClientSync",
    "EngineConfig",
    "connect",
    "connect_sync",
    "embedded_replica",
    "parse_engine_url",
    "resolve_addresses",
]

# TigerBeetle's default port when an address names no port.
DEFAULT_PORT = 3001


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Which engine to use: a real cluster (`addresses`) or the twin (`path`, None = memory)."""

    kind: Literal["tigerbeetle", "embedded", "memory"]
    cluster_id: int = 0
    addresses: tuple[str, ...] = ()
    path: str | None = None

    @property
    def url(self) -> str:
        if self.kind == "tigerbeetle":
            return f"tigerbeetle://{','.join(self.addresses)}?cluster_id={self.cluster_id}"
        if self.kind == "embedded":
            return f"embedded://{self.path}"
        return "memory://"


def _cluster_id(raw: str) -> int:
    try:
        value = int(raw, 0)
    except ValueError as exc:
        raise ConfigurationError(f"cluster_id must be an integer, got {raw!r}") from exc
    if not 0 <= value <= U128_MAX:
        raise ConfigurationError(f"cluster_id must be a u128, got {value}")
    return value


def _split_addresses(raw: str) -> tuple[str, ...]:
    addresses = tuple(a.strip() for a in raw.split(",") if a.strip())
    if not addresses:
        raise ConfigurationError("a TigerBeetle cluster needs at least one replica address")
    if len(addresses) > REPLICA_ADDRESSES_MAX:
        raise ConfigurationError(
            f"at most {REPLICA_ADDRESSES_MAX} replica addresses, got {len(addresses)}"
        )
    return addresses


def parse_engine_url(url: str | None = None, env: Mapping[str, str] | None = None) -> EngineConfig:
    """Parse an engine URL (or, with none, the environment) into an EngineConfig."""
    env = os.environ if env is None else env
    if url is None:
        url = env.get("TBLEDGER_ENGINE_URL") or None
    if url is None:
        addresses = env.get("TIGERBEETLE_ADDRESSES")
        if addresses:
            return EngineConfig(
                kind="tigerbeetle",
                cluster_id=_cluster_id(env.get("TIGERBEETLE_CLUSTER_ID", "0")),
                addresses=_split_addresses(addresses),
            )
        return EngineConfig(kind="memory")
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"cluster_id"}
    if unknown:
        raise ConfigurationError(f"unknown engine URL parameter(s): {', '.join(sorted(unknown))}")
    cluster_id = _cluster_id(query["cluster_id"][-1]) if "cluster_id" in query else 0
    if parts.scheme == "tigerbeetle":
        # netloc holds "host:port,host:port"; urlsplit keeps the commas.
        return EngineConfig(
            kind="tigerbeetle",
            cluster_id=cluster_id,
            addresses=_split_addresses(unquote(parts.netloc)),
        )
    if parts.scheme == "embedded":
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise ConfigurationError(
                "embedded:// needs a journal path, e.g. embedded:///data/l.tbj"
            )
        return EngineConfig(kind="embedded", cluster_id=cluster_id, path=path)
    if parts.scheme == "memory":
        return EngineConfig(kind="memory", cluster_id=cluster_id)
    raise ConfigurationError(
        f"unknown engine URL scheme {parts.scheme!r}: use tigerbeetle://, embedded:// or memory://"
    )


def _split_host_port(address: str) -> tuple[str, int]:
    """Split one replica address the way the official client reads it, host names allowed."""
    if address.isdigit():
        return "127.0.0.1", int(address)
    if address.startswith("["):
        host, sep, rest = address[1:].partition("]")
        if not sep:
            raise ConfigurationError(f"bad IPv6 replica address {address!r}")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
    if port and not port.isdigit():
        raise ConfigurationError(f"bad port in replica address {address!r}")
    port_number = int(port) if port else DEFAULT_PORT
    if not 0 < port_number < 65536:
        raise ConfigurationError(f"port out of range in replica address {address!r}")
    return host, port_number


def _format(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _pick(infos: list[tuple[object, ...]], address: str) -> str:
    ips = [str(info[4][0]) for info in infos if isinstance(info[4], tuple)]
    if not ips:
        raise ConfigurationError(f"replica address {address!r} did not resolve")
    ipv4 = [ip for ip in ips if ":" not in ip]
    return (ipv4 or ips)[0]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def resolve_addresses(addresses: tuple[str, ...]) -> str:
    """The replica addresses as the official client wants them: IP literals with ports."""
    out = []
    for address in addresses:
        host, port = _split_host_port(address)
        if not _is_ip(host):
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ConfigurationError(f"cannot resolve replica host {host!r}: {exc}") from exc
            host = _pick(list(infos), address)
        out.append(_format(host, port))
    return ",".join(out)


async def _resolve_addresses_async(addresses: tuple[str, ...]) -> str:
    loop = asyncio.get_running_loop()
    out = []
    for address in addresses:
        host, port = _split_host_port(address)
        if not _is_ip(host):
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ConfigurationError(f"cannot resolve replica host {host!r}: {exc}") from exc
            host = _pick(list(infos), address)
        out.append(_format(host, port))
    return ",".join(out)


async def connect(url: str | None = None) -> EngineClient:
    """An async engine client for `url` (or the environment; see the module docstring)."""
    config = parse_engine_url(url)
    if config.kind == "tigerbeetle":
        addresses = await _resolve_addresses_async(config.addresses)
        return tigerbeetle.ClientAsync(cluster_id=config.cluster_id, replica_addresses=addresses)
    if config.kind == "embedded" and config.path is not None:
        path = config.path
        # Replaying a long journal takes time; keep it off the event loop.
        return await asyncio.to_thread(EmbeddedClientAsync, cluster_id=config.cluster_id, path=path)
    return EmbeddedClientAsync(cluster_id=config.cluster_id)


def connect_sync(url: str | None = None) -> EngineClientSync:
    """A sync engine client for `url` (or the environment; see the module docstring)."""
    config = parse_engine_url(url)
    if config.kind == "tigerbeetle":
        addresses = resolve_addresses(config.addresses)
        return tigerbeetle.ClientSync(cluster_id=config.cluster_id, replica_addresses=addresses)
    return EmbeddedClientSync(cluster_id=config.cluster_id, path=config.path)


def embedded_replica(client: EngineClient | EngineClientSync) -> Replica | None:
    """The embedded engine behind `client` (its state, clock and journal), or None for a real
    cluster: what runs beside the engine in-process (the change stream publisher) reaches it so."""
    if isinstance(client, (EmbeddedClientAsync, EmbeddedClientSync)):
        return client.replica
    return None
