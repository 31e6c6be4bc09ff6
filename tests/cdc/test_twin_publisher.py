"""The embedded engine's change stream, published to a real RabbitMQ as `tigerbeetle amqp` does.

Every event once, in order, with TigerBeetle's body, headers and properties; resumption from the
progress queue after a restart with nothing lost; one publisher per cluster (the locker queue); a
missing exchange refused with a clear message that never shows the password.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from tigerbeetle import Account, AccountFlags, Transfer, TransferFlags

from tbledger.cdc import (
    ChangeEvent,
    ChangePublishError,
    TwinPublisher,
    change_event,
    decode,
    headers,
)
from tbledger.embedded import ClientSync, ManualClock
from tests.cdc.support import AMQP_URL, Received, amqp_reason, new_cluster_id, stream

T0 = 1_700_000_000_000_000_000
IDLE_S = 0.05


@pytest.fixture(autouse=True)
async def _broker() -> None:
    reason = await amqp_reason()
    if reason is not None:
        pytest.skip(reason)


def workload(c: ClientSync, clock: ManualClock, first_id: int = 1) -> None:
    """Accounts, a single-phase transfer, a hold posted in part, one voided, one that expires."""
    i = first_id
    if first_id == 1:
        results = c.create_accounts(
            [
                Account(id=1, ledger=1, code=10, flags=AccountFlags.HISTORY),
                Account(id=2, ledger=1, code=20, user_data_64=5),
            ]
        )
        assert all(r.status.name == "CREATED" for r in results)
    batch = [
        Transfer(id=i, debit_account_id=1, credit_account_id=2, amount=100, ledger=1, code=1),
        Transfer(
            id=i + 1,
            debit_account_id=1,
            credit_account_id=2,
            amount=50,
            ledger=1,
            code=2,
            flags=TransferFlags.PENDING,
        ),
        Transfer(
            id=i + 2,
            pending_id=i + 1,
            amount=20,
            flags=TransferFlags.POST_PENDING_TRANSFER,
        ),
        Transfer(
            id=i + 3,
            debit_account_id=2,
            credit_account_id=1,
            amount=7,
            ledger=1,
            code=3,
            flags=TransferFlags.PENDING,
        ),
        Transfer(id=i + 4, pending_id=i + 3, flags=TransferFlags.VOID_PENDING_TRANSFER),
        Transfer(
            id=i + 5,
            debit_account_id=1,
            credit_account_id=2,
            amount=9,
            ledger=1,
            code=4,
            timeout=1,
            flags=TransferFlags.PENDING,
        ),
    ]
    for t in batch:
        (result,) = c.create_transfers([t])
        assert result.status.name == "CREATED", (t.id, result)
    clock.advance(ns=1_100_000_000)  # the last hold expires at the next operation


def expected(c: ClientSync, timestamp_min: int = 0) -> list[ChangeEvent]:
    return [change_event(r) for r in c.replica.change_events(timestamp_min, 8189)]


def check_message(message: Received, event: ChangeEvent) -> None:
    assert decode(message.body) == event
    assert message.headers == headers(event)
    assert message.properties["content_type"] == "application/json"
    assert message.properties["delivery_mode"] == 2
    assert message.properties["app_id"] == "tigerbeetle"
    assert message.properties["timestamp"] == datetime.fromtimestamp(
        event.timestamp // 1_000_000_000, tz=UTC
    )


async def wait_for(publisher: TwinPublisher, timestamp: int, deadline_s: float = 20) -> None:
    end = time.monotonic() + deadline_s
    while publisher.timestamp_last < timestamp:
        assert time.monotonic() < end, "the publisher did not catch up"
        await asyncio.sleep(0.02)


async def test_every_event_once_in_order_with_tigerbeetles_message() -> None:
    cluster = new_cluster_id()
    clock = ManualClock(T0)
    async with stream((cluster,)) as s:
        with ClientSync(cluster_id=cluster, clock=clock) as c:
            workload(c, clock)
            async with TwinPublisher(
                c.replica, url=AMQP_URL, exchange=s.exchange, idle_interval_s=IDLE_S
            ) as publisher:
                messages = await s.collect(7)
                events = expected(c)
                assert [e.type.value for e in events] == [
                    "single_phase",
                    "two_phase_pending",
                    "two_phase_posted",
                    "two_phase_pending",
                    "two_phase_voided",
                    "two_phase_pending",
                    "two_phase_expired",
                ]
                await wait_for(publisher, events[-1].timestamp)
                for message, event in zip(messages, events, strict=True):
                    check_message(message, event)
                # The expiry: the pending transfer's, with the amount released.
                assert events[-1].transfer.id == 6
                assert events[-1].transfer.amount == 9
                assert events[-1].debit_account.debits_pending == 0
                # Later writes are published as they come.
                (result,) = c.create_transfers(
                    [
                        Transfer(
                            id=50,
                            debit_account_id=2,
                            credit_account_id=1,
                            amount=1,
                            ledger=1,
                            code=9,
                        )
                    ]
                )
                assert result.status.name == "CREATED"
                (late,) = await s.collect(1)
                check_message(late, expected(c)[-1])
            assert await s.drain() == []


async def test_a_restart_resumes_after_the_last_confirmed_event() -> None:
    cluster = new_cluster_id()
    clock = ManualClock(T0)
    async with stream((cluster,)) as s:
        with ClientSync(cluster_id=cluster, clock=clock) as c:
            workload(c, clock)
            first = TwinPublisher(
                c.replica,
                url=AMQP_URL,
                exchange=s.exchange,
                idle_interval_s=IDLE_S,
                event_count_max=2,
            )
            async with first:
                before = await s.collect(7)
                await wait_for(first, expected(c)[-1].timestamp)
            workload(c, clock, first_id=100)
            async with TwinPublisher(
                c.replica, url=AMQP_URL, exchange=s.exchange, idle_interval_s=IDLE_S
            ) as second:
                after = await s.collect(7)
                await wait_for(second, expected(c)[-1].timestamp)
            assert await s.drain() == []
            for message, event in zip(before + after, expected(c), strict=True):
                check_message(message, event)
            # A replay from a given point publishes from right after it.
            events = expected(c)
            async with TwinPublisher(
                c.replica,
                url=AMQP_URL,
                exchange=s.exchange,
                idle_interval_s=IDLE_S,
                timestamp_last=events[-3].timestamp,
            ):
                replayed = await s.collect(2)
            for message, event in zip(replayed, events[-2:], strict=True):
                check_message(message, event)


async def test_one_publisher_per_cluster() -> None:
    cluster = new_cluster_id()
    async with stream((cluster,)) as s:
        with ClientSync(cluster_id=cluster) as c:
            async with TwinPublisher(c.replica, url=AMQP_URL, exchange=s.exchange):
                second = TwinPublisher(c.replica, url=AMQP_URL, exchange=s.exchange)
                with pytest.raises(ChangePublishError, match="another change stream publisher"):
                    await second.start()
            # Once the first has stopped, the lock is free.
            async with TwinPublisher(c.replica, url=AMQP_URL, exchange=s.exchange):
                pass


async def test_a_missing_exchange_is_refused_without_showing_the_password() -> None:
    with ClientSync(cluster_id=new_cluster_id()) as c:
        publisher = TwinPublisher(c.replica, url=AMQP_URL, exchange="tbledger.test.cdc.nonexistent")
        with pytest.raises(ChangePublishError, match="does not exist") as raised:
            await publisher.start()
        assert "guest:guest" not in str(raised.value)
        assert "***" in str(raised.value)


async def test_an_unreachable_broker_is_refused_without_showing_the_password() -> None:
    with ClientSync(cluster_id=new_cluster_id()) as c:
        publisher = TwinPublisher(c.replica, url="amqp://user:s3cret@127.0.0.1:1/", exchange="x")
        with pytest.raises(ChangePublishError, match="cannot connect") as raised:
            await publisher.start()
        assert "s3cret" not in str(raised.value)
