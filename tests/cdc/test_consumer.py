"""The change-stream consumer against the machine's RabbitMQ: TigerBeetle's messages into the
store, each once, bad messages moved aside, nothing acknowledged before the store has it.

The messages are published exactly as `tigerbeetle amqp` publishes them (`tbledger.cdc`'s body,
headers and properties) for transfers the twin holds. Skipped, with the reason, when no broker
answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tigerbeetle as tb

from tbledger.cdc import ChangeConsumer, ChangeEvent, ConsumerOptions
from tbledger.embedded import ClientAsync, ManualClock
from tbledger.model import EventKind
from tbledger.service import ChangeReport, LedgerService
from tbledger.store import Store
from tests.service.helpers import request, wait_until
from tests.support.book import open_service_book
from tests.support.broker import (
    BROKER_URL,
    Names,
    broker_reason,
    drain,
    publish,
    queue_depth,
    throwaway_names,
)
from tests.support.changes import event_now

WAIT_S = 20.0


@pytest.fixture(scope="module")
def broker() -> str:
    reason = broker_reason()
    if reason is not None:
        pytest.skip(reason)
    return BROKER_URL


@pytest.fixture
async def names(broker: str) -> AsyncIterator[Names]:
    async with throwaway_names(broker) as names:
        yield names


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[LedgerService]:
    engine = ClientAsync(cluster_id=0, clock=ManualClock())
    store = await Store.connect(f"sqlite:///{tmp_path / 'store.db'}", migrate=True)
    service = LedgerService(engine=engine, store=store, request_timeout_ms=5_000)
    await service.connect()
    try:
        yield service
    finally:
        await service.close()
        await store.close()
        await engine.close()


async def workload(service: LedgerService) -> list[ChangeEvent]:
    """A deposit, two payments and a foreign transfer; their change events."""
    engine = service.engine
    book = await open_service_book(service)
    ids = [(await service.create_transfer(request(book.treasury, book.alice, 100, code=2))).id]
    for amount in (10, 20):
        ids.append((await service.create_transfer(request(book.alice, book.bob, amount))).id)
    foreign = tb.Transfer(
        id=0xABCDEF, debit_account_id=book.bob, credit_account_id=book.alice, amount=3, ledger=1,
        code=1,
    )  # fmt: skip
    assert (await engine.create_transfers([foreign]))[0].status == tb.CreateTransferStatus.CREATED
    ids.append(foreign.id)
    return [await event_now(engine, i) for i in ids]


async def test_each_message_is_recorded_once_and_bad_ones_moved_aside(
    service: LedgerService, names: Names, broker: str
) -> None:
    events = await workload(service)
    reports: list[ChangeReport] = []
    rejected: list[str] = []
    consumer = ChangeConsumer(
        service,
        ConsumerOptions(url=broker, exchange=names.exchange, queue=names.queue),
        on_report=lambda report, lag_s: reports.append(report),
        on_rejected=rejected.append,
    )
    consumer.start()
    try:
        await consumer.wait_connected(WAIT_S)
        # Every event, then every event again (at least once), and a message that is not one.
        await publish(names.exchange, events, url=broker)
        await publish(names.exchange, events, bodies=[b'{"timestamp":1}'], url=broker)
        latest = max(e.timestamp for e in events)

        async def drained() -> bool:
            return consumer.recorded + consumer.duplicates + consumer.rejected == 9

        await wait_until(drained, WAIT_S)
        assert await service.latest_change_timestamp() == latest
    finally:
        await consumer.stop()
    assert (consumer.recorded, consumer.duplicates, consumer.rejected) == (4, 4, 1)
    assert sum(r.foreign for r in reports) == 1
    assert len(rejected) == 1 and "not a change event" in rejected[0]
    (aside,) = await drain(names.rejected, url=broker)
    assert aside.body == b'{"timestamp":1}'
    assert "not a change event" in str(aside.headers["x-tbledger-rejected"])
    # Acknowledged: nothing waits to be delivered again.
    assert await queue_depth(names.queue, url=broker) == 0
    (foreign,) = await service.get_transfer_audit(0xABCDEF)
    assert foreign.kind is EventKind.FOREIGN_TRANSFER


async def test_nothing_is_acknowledged_before_the_store_has_it(
    service: LedgerService, names: Names, broker: str, tmp_path: Path
) -> None:
    events = await workload(service)
    options = ConsumerOptions(url=broker, exchange=names.exchange, queue=names.queue, retry_s=0.1)
    # The queue exists and is bound before anything is published.
    first = ChangeConsumer(service, options)
    first.start()
    await first.wait_connected(WAIT_S)
    await first.stop()
    await publish(names.exchange, events, url=broker)
    # A consumer whose store is closed cannot record: it acknowledges nothing.
    closed_store = await Store.connect(f"sqlite:///{tmp_path / 'other.db'}", migrate=True)
    other = LedgerService(engine=service.engine, store=closed_store, request_timeout_ms=5_000)
    await other.connect(recover=False)
    await closed_store.close()
    failing = ChangeConsumer(other, options)
    failing.start()
    try:
        await asyncio.sleep(0.5)
        assert failing.recorded == 0
    finally:
        await failing.stop()
        await other.close()
    assert await queue_depth(names.queue, url=broker) == len(events)
    # The next consumer gets every message and records each.
    consumer = ChangeConsumer(service, options)
    consumer.start()
    try:
        await wait_until(lambda: consumer.recorded == len(events), WAIT_S)
    finally:
        await consumer.stop()
