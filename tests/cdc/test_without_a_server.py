"""The change stream with no TigerBeetle server: one `tbledger serve` process publishes the
embedded engine's stream to RabbitMQ and consumes it into its own store.

No recovery or expiry pass runs here, and the test reads the store directly (a read through the
service would settle a hold itself): a hold's ``expired`` can only come from the stream, the
moment the engine released it. A transfer written behind the service's back comes back as a
foreign transfer, and an account without the history flag gets its history. Skipped, with the
reason, when no broker answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tigerbeetle as tb

from tbledger.api import create_app
from tbledger.embedded import ClientAsync
from tbledger.model import EventKind
from tbledger.service import LedgerService
from tbledger.store import Store
from tests.service.helpers import DEPOSIT, request
from tests.support.book import open_service_book
from tests.support.broker import BROKER_URL, Names, broker_reason, throwaway_names

WAIT_S = 20.0


@pytest.fixture
async def names() -> AsyncIterator[Names]:
    reason = broker_reason()
    if reason is not None:
        pytest.skip(reason)
    async with throwaway_names(BROKER_URL) as names:
        yield names


async def test_one_process_publishes_and_consumes_the_twins_stream(
    names: Names, tmp_path: Path
) -> None:
    # Its own cluster id: the publisher's progress queue is named after it.
    cluster = int.from_bytes(names.queue.encode()[-8:], "big")
    engine = ClientAsync(cluster_id=cluster)
    store = await Store.connect(f"sqlite:///{tmp_path / 'store.db'}", migrate=True)
    service = LedgerService(
        engine=engine,
        store=store,
        cdc_publish_url=BROKER_URL,
        cdc_publish_idle_interval_s=0.05,
        cdc_url=BROKER_URL,
        cdc_exchange=names.exchange,
        cdc_queue=names.queue,
    )
    app = create_app(service=service)
    try:
        async with app.router.lifespan_context(app):
            book = await open_service_book(service)
            await service.create_transfer(request(book.treasury, book.alice, 100, code=DEPOSIT))
            hold = await service.create_pending_transfer(
                request(book.alice, book.bob, 30, timeout=1)
            )
            anchor = await service.create_account(owner_id=None, account_type="anchor", ledger=1)
            moved = await service.create_transfer(
                request(book.treasury, anchor.id, 5, code=DEPOSIT)
            )
            foreign = tb.Transfer(
                id=tb.id(), debit_account_id=book.alice, credit_account_id=book.bob, amount=2,
                ledger=1, code=1,
            )  # fmt: skip
            (result,) = await engine.create_transfers([foreign])
            assert result.status == tb.CreateTransferStatus.CREATED

            deadline = time.monotonic() + WAIT_S
            while True:
                audit = await store.transfer_audit(hold.id)
                if audit[-1].kind is EventKind.EXPIRED:
                    break
                assert time.monotonic() < deadline, "the expiry did not come from the stream"
                await asyncio.sleep(0.05)
            assert hold.timestamp is not None
            assert audit[-1].engine_timestamp == hold.timestamp + 1_000_000_000
            released = int(audit[-1].detail["engine_now"])
            assert released >= hold.timestamp + 1_000_000_000

            (noticed,) = await store.transfer_audit(foreign.id)
            assert noticed.kind is EventKind.FOREIGN_TRANSFER
            history = await service.balance_history(anchor.id)
            assert [p.transfer.id for p in history.points if p.transfer] == [moved.id]
    finally:
        await service.close()
        await store.close()
        await engine.close()
