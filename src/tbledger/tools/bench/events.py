"""Section 6, events: events out of the service per second, against what carrying them costs.

* Webhooks: the deliverer sending the audit log's events to one endpoint (a receiver on loopback
  that answers 204 at once), in order, one POST at a time, each signed and its cursor advanced in
  the store; vs a plain loop POSTing the same bodies to the same receiver with the same HTTP
  client, one at a time (what ordered delivery to one endpoint costs with nothing else).
* Change stream: the consumer taking TigerBeetle's CDC messages from RabbitMQ into the store
  (SQLite, and PostgreSQL when there is one), batch by batch, each acknowledged after its
  commit; vs consuming and acknowledging the same messages the same way with nothing recorded
  (what the broker alone costs). Skipped, with the reason, when no broker answers
  (``TBLEDGER_BENCH_AMQP_URL``, default RabbitMQ on 127.0.0.1:5672 as guest/guest).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator

import aio_pika
import httpx

from tbledger.cdc import (
    ChangeAccount,
    ChangeConsumer,
    ChangeEvent,
    ChangeEventType,
    ChangeTransfer,
    ConsumerOptions,
    amqp_message,
)
from tbledger.embedded import ClientAsync
from tbledger.limits import CDC_BATCH_EVENTS_MAX
from tbledger.model import EventKind, NewAuditEvent
from tbledger.service import LedgerService
from tbledger.tools.bench.common import Section
from tbledger.tools.bench.context import Context
from tbledger.tools.bench.workbench import open_store
from tbledger.webhooks.deliverer import Deliverer, DeliveryOptions
from tbledger.webhooks.manage import create_endpoint
from tbledger.webhooks.policy import payload

__all__ = ["run_events", "synthetic_event"]

AMQP_URL = os.environ.get("TBLEDGER_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
_T0 = 1_800_000_000_000_000_000
_WAIT_S = 600.0
# How often the measurement looks whether the work is done: rarely enough not to compete with it,
# often enough that the wait adds well under 1% to a run of seconds.
_POLL_S = 0.05


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """HTTP/1.1 with keep-alive, just enough: read a request, answer 204."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def _receiver() -> AsyncIterator[str]:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.close()
        await server.wait_closed()


async def _webhooks(ctx: Context, section: Section, kind: str, count: int) -> None:
    store, _ = await open_store(kind, ctx.folder, ctx.postgres, "events_webhooks")
    try:
        await store.append_events(
            [NewAuditEvent(kind=EventKind.POSTED, transfer_id=i + 1) for i in range(count)],
            returning=False,
        )
        events = await store.events_since(0, count)
        bodies = [payload(e) for e in events]
        async with _receiver() as url:
            ctx.steps(f"events: webhooks to one endpoint, {kind}, raw POST loop")
            async with httpx.AsyncClient(trust_env=False) as http:
                start = time.perf_counter()
                for body in bodies:
                    response = await http.post(url, content=body)
                    response.raise_for_status()
                raw_s = time.perf_counter() - start
            ctx.steps(f"events: webhooks to one endpoint, {kind}, deliverer")
            endpoint = await create_endpoint(store, url=url, owner_id=None, cursor=0)
            latest = events[-1].seq
            # The default poll: a busy endpoint's task goes from page to page without waiting,
            # and the supervisor's listing of endpoints is not part of what is measured.
            deliverer = Deliverer(store, DeliveryOptions(allow_private=True))
            start = time.perf_counter()
            deliverer.start()
            try:
                deadline = start + _WAIT_S
                while True:
                    current = await store.get_webhook_endpoint(endpoint.id)
                    if current is not None and current.cursor >= latest:
                        break
                    if time.perf_counter() > deadline:
                        raise TimeoutError("the deliverer did not finish")
                    # Seldom: on SQLite this read waits its turn with the deliverer's writes.
                    await asyncio.sleep(_POLL_S)
                delivered_s = time.perf_counter() - start
            finally:
                await deliverer.stop()
    finally:
        await store.close()
    raw = section.figure(
        f"webhooks.raw.{kind}", f"plain POST loop, one endpoint ({kind} run)", "events/s"
    )
    raw.runs.append(count / raw_s)
    figure = section.figure(
        f"webhooks.deliverer.{kind}",
        f"webhook deliverer, one endpoint, store {kind}",
        "events/s",
        events=count,
    )
    figure.runs.append(count / delivered_s)


def synthetic_event(i: int) -> ChangeEvent:
    """The `i`-th of a stream of single-phase change events between 128 accounts, for
    transfers no tbledger intent asked for (to the store, all foreign transfers)."""

    def account(account_id: int) -> ChangeAccount:
        return ChangeAccount(
            id=account_id, debits_pending=0, debits_posted=i, credits_pending=0,
            credits_posted=i, user_data_128=0, user_data_64=0, user_data_32=0, code=1, flags=0,
            timestamp=_T0 - account_id,
        )  # fmt: skip

    transfer = ChangeTransfer(
        id=(1 << 100) + i, amount=1 + i % 97, pending_id=0, user_data_128=0, user_data_64=0,
        user_data_32=0, timeout=0, code=1, flags=0, timestamp=_T0 + i,
    )  # fmt: skip
    return ChangeEvent(
        timestamp=_T0 + i,
        type=ChangeEventType.SINGLE_PHASE,
        ledger=1,
        transfer=transfer,
        debit_account=account(1 + i % 64),
        credit_account=account(100 + i % 64),
    )


async def _publish(exchange: str, count: int) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange)
        chunk = 500
        for first in range(0, count, chunk):
            await asyncio.gather(
                *(
                    target.publish(amqp_message(synthetic_event(i)), routing_key="")
                    for i in range(first, min(first + chunk, count))
                )
            )
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def _stream(count: int) -> AsyncIterator[tuple[str, str]]:
    """A fresh exchange and queue (bound) holding `count` change events; deleted afterwards."""
    suffix = secrets.token_hex(4)
    exchange, queue = f"bench.cdc.{suffix}", f"bench.cdc.{suffix}"
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        target = await channel.declare_exchange(
            exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        declared = await channel.declare_queue(queue, durable=True)
        await declared.bind(target, routing_key="")
        await _publish(exchange, count)
        yield exchange, queue
    finally:
        with contextlib.suppress(Exception):
            channel = await connection.channel()
            await channel.queue_delete(queue)
            await channel.queue_delete(f"{queue}.rejected")
            await channel.exchange_delete(exchange)
        await connection.close()


async def _raw_consume(queue: str, count: int, batch: int) -> float:
    """Seconds to consume and acknowledge `count` messages in batches of `batch`."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=batch)
        declared = await channel.declare_queue(queue, durable=True)
        done = asyncio.get_running_loop().create_future()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            seen += 1
            if seen % batch == 0 or seen == count:
                await message.ack(multiple=True)
            if seen == count and not done.done():
                done.set_result(None)

        start = time.perf_counter()
        tag = await declared.consume(on_message)
        await asyncio.wait_for(done, _WAIT_S)
        elapsed = time.perf_counter() - start
        await declared.cancel(tag)
        return elapsed
    finally:
        await connection.close()


async def _cdc(ctx: Context, section: Section, kind: str, count: int) -> None:
    ctx.steps(f"events: change stream, broker alone ({count} events)")
    async with _stream(count) as (_, queue):
        raw_s = await _raw_consume(queue, count, CDC_BATCH_EVENTS_MAX)
    ctx.steps(f"events: change stream into {kind} ({count} events)")
    store, _ = await open_store(kind, ctx.folder, ctx.postgres, "events_cdc")
    engine = ClientAsync()
    try:
        service = LedgerService(engine=engine, store=store)
        await service.connect(recover=False)
        try:
            async with _stream(count) as (exchange, queue):
                consumer = ChangeConsumer(
                    service, ConsumerOptions(url=AMQP_URL, exchange=exchange, queue=queue)
                )
                start = time.perf_counter()
                consumer.start()
                try:
                    deadline = start + _WAIT_S
                    while consumer.recorded < count:
                        if time.perf_counter() > deadline:
                            raise TimeoutError("the consumer did not finish")
                        await asyncio.sleep(0.005)
                    recorded_s = time.perf_counter() - start
                finally:
                    await consumer.stop()
        finally:
            await service.close()
    finally:
        await store.close()
        await engine.close()
    raw = section.get("cdc.raw")
    if raw is None:
        raw = section.figure("cdc.raw", "RabbitMQ alone: consume and acknowledge", "events/s")
    raw.runs.append(count / raw_s)
    figure = section.figure(
        f"cdc.consumer.{kind}", f"change-stream consumer into {kind}", "events/s", events=count
    )
    figure.runs.append(count / recorded_s)


async def _broker_reason() -> str | None:
    try:
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
    except Exception as exc:  # any failure to connect is the reason to skip
        return f"no RabbitMQ at {AMQP_URL.rsplit('@', 1)[-1]}: {type(exc).__name__}"
    await connection.close()
    return None


async def run_events(ctx: Context) -> Section:
    plan = ctx.plan
    section = Section("events", "Events out: webhooks to one endpoint, the change stream")
    stores = ["sqlite"] + (["postgresql"] if ctx.postgres.url is not None else [])
    section.settings = {
        "webhook_events": plan.events_webhooks,
        "cdc_events": plan.events_cdc,
        "stores": stores,
    }
    for kind in stores:
        await _webhooks(ctx, section, kind, plan.events_webhooks)
        section.ratio(
            f"webhooks.{kind}",
            f"webhook deliverer ({kind}) / plain POST loop",
            f"webhooks.deliverer.{kind}",
            f"webhooks.raw.{kind}",
        )
    reason = await _broker_reason()
    for kind in stores:
        if reason is not None:
            section.skip(f"cdc.consumer.{kind}", f"change-stream consumer into {kind}", reason)
            continue
        await _cdc(ctx, section, kind, plan.events_cdc)
        section.ratio(
            f"cdc.{kind}",
            f"change-stream consumer ({kind}) / RabbitMQ alone",
            f"cdc.consumer.{kind}",
            "cdc.raw",
        )
    section.notes.append(
        "one run per figure; the webhook figures include signing, the delivery log and the "
        "cursor's update per event; the change-stream figures include decoding, the store's "
        "transaction per batch (events, both balances, the audit event of each foreign "
        "transfer: these synthetic events are all foreign) and the acknowledgement."
    )
    return section
