"""Running `tigerbeetle amqp`, TigerBeetle's change-data-capture job, from tbledger.

The job reads the cluster's change events and publishes them to an AMQP exchange, resuming
after the last event the broker confirmed (it keeps its progress in a queue of its own). It
needs the exchange to exist, takes IP addresses only, and exits on faults it cannot ride out
(the broker or the cluster gone for longer than its timeouts). `AmqpJob` makes it a part of the
service an operator does not have to babysit: it declares the exchange (durable, fanout), starts
the job with the engine's addresses and the broker's credentials, and starts it again
`CDC_RETRY_S` after every exit, for as long as it runs. An operator who runs the job under
their own supervisor leaves this off and points the consumer at the same exchange.

Host names are resolved here, as for the client (`tbledger.engine.resolve_addresses`): the job,
like the client, takes IP addresses only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aio_pika

from tbledger.config import Settings
from tbledger.engine import resolve_addresses
from tbledger.errors import ConfigurationError
from tbledger.limits import CDC_RETRY_S

__all__ = [
    "AmqpJob",
    "AmqpJobOptions",
    "amqp_job_arguments",
    "declare_exchange",
    "job_options_from",
]

_log = logging.getLogger(__name__)
_AMQP_PORT = 5672
_STOP_GRACE_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AmqpJobOptions:
    """What `tigerbeetle amqp` is started with."""

    binary: str
    addresses: str  # the cluster's replica addresses, IPs, comma-separated
    cluster_id: int
    url: str  # the broker's AMQP URL (amqp://user:password@host:port/vhost)
    exchange: str
    routing_key: str = ""
    idle_interval_ms: int | None = None
    timestamp_last: int | None = None
    restart_s: float = CDC_RETRY_S


def _broker(url: str) -> tuple[str, str, str, str]:
    """(host:port with the host as an IP, user, password, vhost) of an AMQP URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ConfigurationError("the change stream's broker URL must be amqp://host[:port]/vhost")
    if parts.scheme == "amqps":
        raise ConfigurationError("`tigerbeetle amqp` speaks plain AMQP only (amqp://)")
    try:
        infos = socket.getaddrinfo(parts.hostname, None, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigurationError(f"cannot resolve the broker host {parts.hostname!r}") from exc
    ip = str(infos[0][4][0])
    host = f"[{ip}]" if ":" in ip else ip
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return (
        f"{host}:{parts.port or _AMQP_PORT}",
        unquote(parts.username or "guest"),
        unquote(parts.password or "guest"),
        vhost,
    )


def amqp_job_arguments(options: AmqpJobOptions) -> list[str]:
    """The command line of `tigerbeetle amqp` for `options`."""
    host, user, password, vhost = _broker(options.url)
    argv = [
        options.binary,
        "amqp",
        f"--addresses={options.addresses}",
        f"--cluster={options.cluster_id}",
        f"--host={host}",
        f"--user={user}",
        f"--password={password}",
        f"--vhost={vhost}",
        f"--publish-exchange={options.exchange}",
    ]
    if options.routing_key:
        argv.append(f"--publish-routing-key={options.routing_key}")
    if options.idle_interval_ms is not None:
        argv.append(f"--idle-interval-ms={options.idle_interval_ms}")
    if options.timestamp_last is not None:
        argv.append(f"--timestamp-last={options.timestamp_last}")
    return argv


async def declare_exchange(url: str, exchange: str) -> None:
    """Declare the change stream's exchange (durable, fanout); a no-op when it exists so."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        await channel.declare_exchange(exchange, aio_pika.ExchangeType.FANOUT, durable=True)
    finally:
        await connection.close()


class AmqpJob:
    """`tigerbeetle amqp`, started and started again when it exits, until stopped."""

    def __init__(self, options: AmqpJobOptions) -> None:
        self._options = options
        self._argv = amqp_job_arguments(options)  # refuses a bad URL before anything starts
        self._task: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="tbledger-cdc-job")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Declare the exchange, run the job, and run it again after each exit."""
        o = self._options
        while True:
            try:
                await declare_exchange(o.url, o.exchange)
                self._process = await asyncio.create_subprocess_exec(
                    *self._argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
                self.starts += 1
                _log.info("started tigerbeetle amqp (pid %d)", self._process.pid)
                try:
                    _, stderr = await self._process.communicate()
                finally:
                    if self._process.returncode is None:
                        await self._terminate(self._process)
                tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
                _log.warning(
                    "tigerbeetle amqp exited with %s: %s; starting it again in %.1f s",
                    self._process.returncode,
                    " | ".join(tail) or "no output",
                    o.restart_s,
                )
            except asyncio.CancelledError:
                raise
            except (OSError, aio_pika.exceptions.AMQPException) as exc:
                _log.warning(
                    "cannot start tigerbeetle amqp: %s; trying again in %.1f s", exc, o.restart_s
                )
            await asyncio.sleep(o.restart_s)

    @staticmethod
    async def _terminate(process: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), _STOP_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def job_options_from(settings: Settings) -> AmqpJobOptions:
    """`tigerbeetle amqp`'s options from the service's settings: the engine's cluster (a real
    one: the embedded engine publishes its change stream itself) and the change stream's."""
    engine = settings.engine_config()
    if engine.kind != "tigerbeetle":
        raise ConfigurationError(
            "cdc_supervise runs `tigerbeetle amqp` against a TigerBeetle cluster; the embedded "
            "engine publishes its change stream itself (TBLEDGER_CDC_PUBLISH_URL)"
        )
    if settings.cdc_url is None:
        raise ConfigurationError("cdc_supervise needs the broker: set TBLEDGER_CDC_URL")
    return AmqpJobOptions(
        binary=settings.tigerbeetle_bin,
        addresses=resolve_addresses(engine.addresses),
        cluster_id=engine.cluster_id,
        url=settings.cdc_url,
        exchange=settings.cdc_exchange,
        routing_key=settings.cdc_routing_key,
    )
