"""RabbitMQ for the change stream tests: reachability, a unique exchange and queue, collection.

The tests use the real broker at ``TBLEDGER_TEST_AMQP_URL`` (default the local guest account) and
skip, saying why, when it cannot be reached. Every test declares its own exchange and queue and
uses its own cluster id, so its progress and locker queues are its own too; all are deleted after.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractQueue

from tests.support.broker import BROKER_URL, broker_reason

AMQP_URL = BROKER_URL


async def amqp_reason() -> str | None:
    """None when the broker answers, else why the change stream tests skip."""
    return await asyncio.to_thread(broker_reason, AMQP_URL)


@dataclass
class Received:
    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]


@dataclass
class Stream:
    exchange: str
    queue: AbstractQueue
    connection: AbstractConnection

    async def collect(self, count: int, *, deadline_s: float = 20.0) -> list[Received]:
        """Exactly `count` messages (waiting for them up to the deadline), then checks that no
        more arrive for a moment."""
        out: list[Received] = []
        end = time.monotonic() + deadline_s
        while len(out) < count:
            message = await self.queue.get(no_ack=True, fail=False)
            if message is None:
                if time.monotonic() > end:
                    raise AssertionError(f"got {len(out)} of {count} messages")
                await asyncio.sleep(0.02)
                continue
            out.append(_received(message))
        return out

    async def drain(self) -> list[Received]:
        out = []
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            out.append(_received(message))
        return out


def _received(message: aio_pika.abc.AbstractIncomingMessage) -> Received:
    return Received(
        body=message.body,
        headers=dict(message.headers),
        properties={
            "content_type": message.content_type,
            "delivery_mode": int(message.delivery_mode) if message.delivery_mode else None,
            "app_id": message.app_id,
            "timestamp": message.timestamp,
        },
    )


def unique(prefix: str) -> str:
    return f"{prefix}.{secrets.token_hex(6)}"


@contextlib.asynccontextmanager
async def stream(cluster_ids: tuple[int, ...] = ()) -> AsyncIterator[Stream]:
    """A fresh fanout exchange with one queue bound to it; deletes them (and the progress queues
    of `cluster_ids`) afterwards."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        name = unique("tbledger.test.cdc")
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT)
        queue = await channel.declare_queue(unique("tbledger.test.cdc.q"), exclusive=True)
        await queue.bind(exchange)
        yield Stream(exchange=name, queue=queue, connection=connection)
        await queue.delete(if_unused=False, if_empty=False)
        await exchange.delete()
        for cluster_id in cluster_ids:
            with contextlib.suppress(Exception):
                await channel.queue_delete(f"tigerbeetle.internal.progress.{cluster_id}")
    finally:
        await connection.close()


def new_cluster_id() -> int:
    """A cluster id of its own, so a test's progress and locker queues are its own."""
    return secrets.randbits(64) | (1 << 64)
