"""The change-stream consumer: TigerBeetle's CDC messages from RabbitMQ into the store.

`tigerbeetle amqp` (or the embedded engine's publisher) publishes every change event to an
exchange, at least once. The consumer reads them from its own durable queue bound to that
exchange and hands them to `LedgerService.apply_change_events`, a batch at a time: a batch is
acknowledged only after the store has committed it, so a consumer killed at any point loses
nothing (the broker delivers what was not acknowledged again) and repeats nothing (the store
knows each event by its timestamp and type and records it once).

* Batches: up to `CDC_BATCH_EVENTS_MAX` messages, or what arrived within `CDC_BATCH_WAIT_S` of
  the first; the channel's prefetch is the batch size, so the broker never hands over more than
  one batch ahead.
* A message that is not a change event (`tbledger.cdc.decode` refuses it) is moved to the
  ``<queue>.rejected`` queue, with the reason in its headers, and acknowledged: one bad message
  must not stop the stream, nor be lost. It is counted (``on_rejected``).
* Faults (the broker or the store unreachable, the engine refusing a read) drop the connection
  without acknowledging the batch; the consumer connects again after `CDC_RETRY_S` and the
  broker redelivers.

Topology: the exchange is the one `tigerbeetle amqp --publish-exchange` names. With
`declare_exchange` the consumer declares it (durable, fanout) so that it exists before the job
starts; otherwise it must exist. The queue is durable and bound with `routing_key` (the job's
``--publish-routing-key``, "" by default, which a fanout exchange ignores).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aio_pika
import aio_pika.abc

from tbledger.cdc._amqp import redact_url
from tbledger.cdc._message import ChangeEvent, decode
from tbledger.config import Settings
from tbledger.errors import ChangeEventError, ConfigurationError, TbledgerError
from tbledger.limits import CDC_BATCH_EVENTS_MAX, CDC_BATCH_WAIT_S, CDC_RETRY_S

if TYPE_CHECKING:
    from tbledger.service import ChangeReport, LedgerService

__all__ = ["ChangeConsumer", "ConsumerOptions", "consumer_options_from"]

_log = logging.getLogger(__name__)
_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerOptions:
    """Where the change stream is and how the consumer reads it."""

    url: str
    exchange: str
    queue: str = "tbledger.cdc"
    routing_key: str = ""
    declare_exchange: bool = False
    batch_events_max: int = CDC_BATCH_EVENTS_MAX
    batch_wait_s: float = CDC_BATCH_WAIT_S
    retry_s: float = CDC_RETRY_S

    @property
    def rejected_queue(self) -> str:
        return f"{self.queue}.rejected"


def consumer_options_from(settings: Settings) -> ConsumerOptions:
    """The consumer's options from the service's settings (`cdc_url` must be set)."""
    if settings.cdc_url is None:
        raise ConfigurationError("the change stream's broker is not set: TBLEDGER_CDC_URL")
    return ConsumerOptions(
        url=settings.cdc_url,
        exchange=settings.cdc_exchange,
        queue=settings.cdc_queue,
        routing_key=settings.cdc_routing_key,
        declare_exchange=settings.cdc_declare_exchange or settings.cdc_supervise,
    )


class ChangeConsumer:
    """Consumes the change stream into a connected `LedgerService` until stopped.

    `on_report` is told what each batch recorded and the lag of its newest event (the seconds
    from the engine's timestamp of the event to its recording); `on_rejected` of each message
    moved aside. Both are called on the event loop and must not block.
    """

    def __init__(
        self,
        service: LedgerService,
        options: ConsumerOptions,
        *,
        on_report: Callable[[ChangeReport, float], None] | None = None,
        on_rejected: Callable[[str], None] | None = None,
    ) -> None:
        if not 1 <= options.batch_events_max <= CDC_BATCH_EVENTS_MAX:
            raise ValueError(f"batch_events_max must be in [1, {CDC_BATCH_EVENTS_MAX}]")
        self._service = service
        self._options = options
        self._on_report = on_report
        self._on_rejected = on_rejected
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.recorded = 0
        self.duplicates = 0
        self.rejected = 0

    @property
    def options(self) -> ConsumerOptions:
        return self._options

    def start(self) -> None:
        """Consume in a background task (`stop` ends it)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="tbledger-cdc-consumer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until the queue is declared and bound (tests, start-up ordering)."""
        await asyncio.wait_for(self._connected.wait(), timeout_s)

    async def run(self) -> None:
        """Consume until cancelled, connecting again after every fault."""
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (OSError, aio_pika.exceptions.AMQPException, TbledgerError) as exc:
                self._connected.clear()
                _log.warning(
                    "change stream from %s: %s; connecting again in %.1f s",
                    redact_url(self._options.url),
                    exc,
                    self._options.retry_s,
                )
                await asyncio.sleep(self._options.retry_s)

    async def _session(self) -> None:
        o = self._options
        connection = await aio_pika.connect(o.url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=o.batch_events_max)
            if o.declare_exchange:
                exchange = await channel.declare_exchange(
                    o.exchange, aio_pika.ExchangeType.FANOUT, durable=True
                )
            else:
                exchange = await channel.get_exchange(o.exchange, ensure=True)
            queue = await channel.declare_queue(o.queue, durable=True)
            await channel.declare_queue(o.rejected_queue, durable=True)
            await queue.bind(exchange, routing_key=o.routing_key)
            inbox: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
            closed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

            def on_close(_sender: object, exc: BaseException | None = None) -> None:
                if not closed.done():
                    closed.set_result(exc)

            channel.close_callbacks.add(on_close)
            await queue.consume(inbox.put, no_ack=False)
            self._connected.set()
            _log.info("consuming the change stream from %s (%s)", o.exchange, o.queue)
            while True:
                batch = await self._next_batch(inbox, closed)
                await self._handle(channel, batch)
        finally:
            self._connected.clear()
            with contextlib.suppress(Exception):
                await connection.close()

    async def _next_batch(
        self,
        inbox: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage],
        closed: asyncio.Future[Any],
    ) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """The next batch: wait for one message, then take what arrives within the wait."""
        getter: asyncio.Future[Any] = asyncio.ensure_future(inbox.get())
        done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            raise ConnectionError(f"the channel closed: {closed.result()}")
        batch: list[aio_pika.abc.AbstractIncomingMessage] = [getter.result()]
        deadline = time.monotonic() + self._options.batch_wait_s
        while len(batch) < self._options.batch_events_max:
            if not inbox.empty():
                batch.append(inbox.get_nowait())
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(inbox.get(), left))
            except TimeoutError:
                break
        return batch

    async def _handle(
        self,
        channel: aio_pika.abc.AbstractChannel,
        batch: list[aio_pika.abc.AbstractIncomingMessage],
    ) -> None:
        events: list[ChangeEvent] = []
        bad: list[tuple[aio_pika.abc.AbstractIncomingMessage, str]] = []
        for message in batch:
            try:
                events.append(decode(message.body))
            except ChangeEventError as exc:
                bad.append((message, str(exc)))
        if events:
            report = await self._service.apply_change_events(events)
            self.recorded += report.recorded
            self.duplicates += report.duplicates
            if self._on_report is not None and report.timestamp_max is not None:
                lag_s = max(0.0, (time.time_ns() - report.timestamp_max) / _NS_PER_S)
                self._on_report(report, lag_s)
        # Moved aside once the rest is recorded: a batch that fails is delivered again whole.
        for message, reason in bad:
            await self._reject(channel, message, reason)
        # Every message of the batch is recorded or moved aside: acknowledge them all at once.
        await batch[-1].ack(multiple=True)

    async def _reject(
        self,
        channel: aio_pika.abc.AbstractChannel,
        message: aio_pika.abc.AbstractIncomingMessage,
        reason: str,
    ) -> None:
        """Move a message that is not a change event aside, with the reason, confirmed by the
        broker before the original is acknowledged."""
        headers = dict(message.headers or {})
        headers["x-tbledger-rejected"] = reason[:255]
        await channel.default_exchange.publish(
            aio_pika.Message(
                body=message.body,
                headers=headers,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self._options.rejected_queue,
        )
        self.rejected += 1
        _log.warning(
            "change stream: moved a message aside to %s: %s", self._options.rejected_queue, reason
        )
        if self._on_rejected is not None:
            self._on_rejected(reason)
