"""The change stream end to end on a real TigerBeetle: `tigerbeetle amqp`, supervised by
tbledger, publishes to the machine's RabbitMQ and the consumer records every event.

A fresh replica of its own (so the stream holds this test's events alone) runs the service's
workload: deposits, payments, a hold posted, one voided, one left to expire, and a transfer
written with the raw official client behind the service's back. The store then holds every
event once, the expiry recorded the moment the engine released the hold (no expiry pass runs
here), and the raw transfer as a foreign transfer; the job, killed, is started again and loses
nothing; and a replay of the whole stream from timestamp 0 records nothing new.

Skipped, with the reason, without ``TIGERBEETLE_BIN`` or a broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest
import sqlalchemy as sa
import tigerbeetle as tb

from tbledger.cdc import (
    AmqpJob,
    AmqpJobOptions,
    ChangeConsumer,
    ChangeStream,
    ConsumerOptions,
    job_options_from,
)
from tbledger.config import Settings
from tbledger.model import EventKind
from tbledger.service import LedgerService
from tbledger.store import Store
from tbledger.store.tables import change_events
from tests.cdc.test_consumer_crash import SRC, counts
from tests.service.helpers import request, wait_until
from tests.support.book import open_service_book
from tests.support.broker import BROKER_URL, Names, broker_reason, throwaway_names
from tests.support.tbserver import RealServer, real_server_reason, start_replica

WAIT_S = 60.0


@pytest.fixture(scope="module")
def replica() -> Iterator[RealServer]:
    for reason in (real_server_reason(), broker_reason()):
        if reason is not None:
            pytest.skip(reason)
    binary = os.environ.get("TIGERBEETLE_BIN")
    if not binary:
        pytest.skip("a replica of its own needs TIGERBEETLE_BIN (a running cluster is shared)")
    with start_replica(binary) as server:
        yield server


@pytest.fixture
async def names(replica: RealServer) -> AsyncIterator[Names]:
    # The job resumes from its cluster's progress queue on the broker: this replica is new, so
    # its stream starts from nothing another run left there.
    connection = await aio_pika.connect(BROKER_URL)
    try:
        channel = await connection.channel()
        await channel.queue_delete(f"tigerbeetle.internal.progress.{replica.cluster_id}")
    finally:
        await connection.close()
    async with throwaway_names(BROKER_URL, declare=False) as names:
        yield names


async def recorded(service: LedgerService) -> dict[tuple[int, str], int]:
    """Every change event the store holds: (timestamp, type) -> transfer id."""
    c = change_events.c
    async with service.store.engine.connect() as conn:
        rows = (await conn.execute(sa.select(c.timestamp, c.type, c.transfer_id))).all()
    return {(int(t), str(k)): int(i) for t, k, i in rows}


async def test_the_supervised_job_feeds_the_store_exactly(
    replica: RealServer, names: Names, tmp_path: Path
) -> None:
    settings = Settings(
        engine_url=f"tigerbeetle://{replica.addresses}?cluster_id={replica.cluster_id}",
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
        request_timeout_ms=10_000,
        cdc_url=BROKER_URL,
        cdc_exchange=names.exchange,
        cdc_queue=names.queue,
        cdc_supervise=True,
        tigerbeetle_bin=os.environ["TIGERBEETLE_BIN"],
    )
    service = LedgerService(settings)
    await service.connect()
    stream = ChangeStream(service, settings)
    stream.start()
    raw = tb.ClientAsync(cluster_id=replica.cluster_id, replica_addresses=replica.addresses)
    try:
        book = await open_service_book(service)
        await service.create_transfer(request(book.treasury, book.alice, 1_000, code=2))
        for amount in (10, 20, 30):
            await service.create_transfer(request(book.alice, book.bob, amount))
        posted = await service.create_pending_transfer(request(book.alice, book.bob, 40))
        await service.post_pending_transfer(posted.id, amount=25)
        voided = await service.create_pending_transfer(request(book.alice, book.bob, 50))
        await service.void_pending_transfer(voided.id)
        expiring = await service.create_pending_transfer(
            request(book.alice, book.bob, 60, timeout=1)
        )
        # Behind the service's back, with the official client.
        foreign = tb.Transfer(
            id=tb.id(), debit_account_id=book.bob, credit_account_id=book.alice, amount=7,
            ledger=1, code=1,
        )  # fmt: skip
        (result,) = await raw.create_transfers([foreign])
        assert result.status == tb.CreateTransferStatus.CREATED

        # 10 transfers and the expiry of one hold.
        await wait_until(lambda: _count(service, 11), WAIT_S)
        audit = await service.store.transfer_audit(expiring.id)
        assert [e.kind for e in audit][-1] is EventKind.EXPIRED
        events = await recorded(service)
        released = [t for (t, kind) in events if kind == "two_phase_expired"]
        assert released == [int(audit[-1].detail["engine_now"])]
        (foreign_audit,) = await service.store.transfer_audit(foreign.id)
        assert foreign_audit.kind is EventKind.FOREIGN_TRANSFER
        # The service's own transfers are not foreign.
        foreign_ids = {i for (_, kind), i in events.items() if kind != "two_phase_expired"} - {
            foreign.id
        }
        statuses = await service.store.transfer_audits(foreign_ids)
        assert all(
            EventKind.FOREIGN_TRANSFER not in {e.kind for e in es} for es in statuses.values()
        )

        # The job dies; the supervisor starts it again and it resumes where it left off.
        assert stream.job is not None and stream.job.pid is not None
        os.kill(stream.job.pid, signal.SIGKILL)
        await wait_until(lambda: stream.job is not None and stream.job.starts >= 2, WAIT_S)
        await service.create_transfer(request(book.alice, book.bob, 1))
        await wait_until(lambda: _count(service, 12), WAIT_S)
    finally:
        await stream.stop()

    # Replay everything from timestamp 0: every message again, nothing new in the store.
    before = await recorded(service)
    replay = AmqpJob(dataclasses.replace(job_options_from(settings), timestamp_last=0))
    consumer = ChangeConsumer(
        service, ConsumerOptions(url=BROKER_URL, exchange=names.exchange, queue=names.queue)
    )
    consumer.start()
    await consumer.wait_connected(WAIT_S)
    replay.start()
    try:
        await wait_until(lambda: consumer.duplicates >= len(before), WAIT_S)
    finally:
        await replay.stop()
        await consumer.stop()
        await raw.close()
    assert consumer.recorded == 0
    assert await recorded(service) == before
    print(
        f"\ncdc real: {len(before)} events recorded once; replay from 0 delivered "
        f"{consumer.duplicates}, recorded {consumer.recorded} new"
    )
    await service.close()


async def _count(service: LedgerService, expected: int) -> bool:
    count = len(await recorded(service))
    assert count <= expected, f"{count} events recorded, expected {expected}"
    return count == expected


KILLS = 5
WRITES = 4_000
WRITE_BATCH = 10


async def test_a_consumer_killed_mid_stream_loses_nothing(
    replica: RealServer, names: Names, tmp_path: Path
) -> None:
    """`tbledger cdc run` SIGKILLed again and again while the official client writes to the
    cluster and `tigerbeetle amqp` publishes: every transfer ends up recorded exactly once."""
    # A replica of its own: the stream then holds this test's transfers and nothing else.
    with start_replica(os.environ["TIGERBEETLE_BIN"], cluster_id=1) as server:
        url = f"sqlite:///{tmp_path / 'store.db'}"
        store = await Store.connect(url, migrate=True)
        job = AmqpJob(
            AmqpJobOptions(
                binary=os.environ["TIGERBEETLE_BIN"],
                addresses=server.addresses,
                cluster_id=server.cluster_id,
                url=BROKER_URL,
                exchange=names.exchange,
                idle_interval_ms=50,
            )
        )
        env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "TBLEDGER_CDC_URL": BROKER_URL,
            "TBLEDGER_CDC_EXCHANGE": names.exchange,
            "TBLEDGER_CDC_QUEUE": names.queue,
            "TBLEDGER_CDC_DECLARE_EXCHANGE": "1",
            "TBLEDGER_ENGINE_URL": f"tigerbeetle://{server.addresses}?cluster_id=1",
        }
        argv = [sys.executable, "-m", "tbledger", "cdc", "run", "--database-url", url]

        async def consumer() -> asyncio.subprocess.Process:
            with open(tmp_path / "consumer.log", "ab") as log:
                return await asyncio.create_subprocess_exec(*argv, env=env, stdout=log, stderr=log)

        raw = tb.ClientAsync(cluster_id=1, replica_addresses=server.addresses)
        accounts = [tb.Account(id=tb.id(), ledger=1, code=1) for _ in range(10)]
        assert all(
            r.status == tb.CreateAccountStatus.CREATED for r in await raw.create_accounts(accounts)
        )

        async def write() -> None:
            # Small batches spread over about 20 s, so that every kill lands mid-stream.
            for start in range(0, WRITES, WRITE_BATCH):
                batch = [
                    tb.Transfer(
                        id=tb.id(),
                        debit_account_id=accounts[i % 10].id,
                        credit_account_id=accounts[(i + 1) % 10].id,
                        amount=1,
                        ledger=1,
                        code=1,
                    )
                    for i in range(start, start + WRITE_BATCH)
                ]
                results = await raw.create_transfers(batch)
                assert all(r.status == tb.CreateTransferStatus.CREATED for r in results)
                await asyncio.sleep(0.05)

        # The consumer binds its queue before the job publishes anything.
        process = await consumer()
        await wait_until(lambda: _queue_exists(names.queue), WAIT_S)
        job.start()
        writer = asyncio.create_task(write())
        rng = random.Random(5)
        kills: list[int] = []
        try:
            for _ in range(KILLS):
                before = (await counts(store))[0]
                await wait_until(functools.partial(_more, store, before), WAIT_S)
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                assert not writer.done(), "the writes ended before the kill: spread them longer"
                process.send_signal(signal.SIGKILL)
                await process.wait()
                kills.append((await counts(store))[0])
                process = await consumer()
            await writer
            deadline = time.monotonic() + 120
            while (await counts(store))[0] < WRITES and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            writer.cancel()
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await process.wait()
            await job.stop()
            await raw.close()
        recorded, audits, distinct = await counts(store)
        await store.close()
    print(
        f"\ncdc real kill: {KILLS} kills of the consumer (recorded at each: {kills}); {WRITES} "
        f"transfers written, {recorded} recorded, {WRITES - recorded} lost, "
        f"{audits - distinct} recorded twice"
    )
    assert kills[-1] < WRITES, "the stream drained before the last kill"
    assert (recorded, audits, distinct) == (WRITES, WRITES, WRITES)


async def _queue_exists(queue: str) -> bool:
    connection = await aio_pika.connect(BROKER_URL)
    try:
        channel = await connection.channel()
        await channel.declare_queue(queue, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return False
    finally:
        await connection.close()
    return True


async def _more(store: Store, than: int) -> bool:
    return (await counts(store))[0] > than
