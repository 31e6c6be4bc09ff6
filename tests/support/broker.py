"""The machine's RabbitMQ for change-stream tests: reachability, throwaway names, publishing.

The broker is ``TBLEDGER_TEST_AMQP_URL``, else RabbitMQ on 127.0.0.1:5672 as guest/guest. Tests
that need it skip, saying why, when it does not answer. Every test takes names of its own (an
exchange and a queue with a random suffix) and deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import aio_pika

from tbledger.cdc import ChangeEvent, amqp_message

BROKER_URL = os.environ.get("TBLEDGER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
_CONNECT_TIMEOUT_S = 5.0


def broker_reason(url: str = BROKER_URL) -> str | None:
    """None when the broker answers, else why the broker tests skip."""

    async def probe() -> None:
        connection = await aio_pika.connect(url, timeout=_CONNECT_TIMEOUT_S)
        await connection.close()

    try:
        # A thread of its own: this may be asked while an event loop is running.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, probe()).result()
    except Exception as exc:  # any failure to connect is a reason to skip
        return f"no RabbitMQ at {url.rsplit('@', maxsplit=1)[-1]}: {type(exc).__name__}"
    return None


@dataclass(frozen=True)
class Names:
    exchange: str
    queue: str

    @property
    def rejected(self) -> str:
        return f"{self.queue}.rejected"


@contextlib.asynccontextmanager
async def throwaway_names(url: str = BROKER_URL, *, declare: bool = True) -> AsyncIterator[Names]:
    """An exchange (declared durable and fanout unless `declare` is false) and a queue name of
    this test's own, deleted afterwards with the queue and its rejected queue."""
    suffix = secrets.token_hex(4)
    names = Names(exchange=f"test.cdc.{suffix}", queue=f"test.cdc.{suffix}")
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        if declare:
            await channel.declare_exchange(
                names.exchange, aio_pika.ExchangeType.FANOUT, durable=True
            )
        yield names
    finally:
        with contextlib.suppress(Exception):
            channel = await connection.channel()
            for queue in (names.queue, names.rejected):
                await channel.queue_delete(queue)
            await channel.exchange_delete(names.exchange)
        await connection.close()


async def publish(
    exchange: str,
    events: Iterable[ChangeEvent],
    *,
    bodies: Iterable[bytes] = (),
    url: str = BROKER_URL,
) -> int:
    """Publish `events` as `tigerbeetle amqp` does (and raw `bodies` after them), confirmed."""
    count = 0
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange)
        for event in events:
            await target.publish(amqp_message(event), routing_key="")
            count += 1
        for body in bodies:
            await target.publish(aio_pika.Message(body=body), routing_key="")
            count += 1
    finally:
        await connection.close()
    return count


async def queue_depth(queue: str, url: str = BROKER_URL) -> int:
    """How many messages wait in `queue` (declared passively: it must exist)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def drain(queue: str, url: str = BROKER_URL) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take every message waiting in `queue` (acknowledged)."""
    taken = []
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        while (message := await declared.get(fail=False)) is not None:
            await message.ack()
            taken.append(message)
    finally:
        await connection.close()
    return taken
