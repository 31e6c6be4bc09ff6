"""The same service over a real TigerBeetle cluster (skipped, with the reason, without one).

The engine port is the official client's API, so the service runs unchanged on
``tigerbeetle.ClientAsync``; these few checks cover the write path, two-phase transfers and
recovery against the real state machine. A server comes from ``TIGERBEETLE_BIN`` or
``TIGERBEETLE_ADDRESSES`` (see tests/support/tbserver.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tigerbeetle as tb

from tbledger.service import LedgerService
from tbledger.store import EventKind, Store, TransferIntent
from tests.service.conftest import DEFAULT_SETTINGS
from tests.service.helpers import LEDGER, PAYMENT, deposit, request
from tests.support.book import open_service_book
from tests.support.tbserver import RealServer

pytestmark = pytest.mark.real


@pytest.fixture
async def real_service(
    tb_real_server: RealServer, tmp_path: Path
) -> AsyncIterator[tuple[LedgerService, Store]]:
    client = tb.ClientAsync(
        cluster_id=tb_real_server.cluster_id, replica_addresses=tb_real_server.addresses
    )
    store = await Store.connect(f"sqlite:///{tmp_path / 'store.db'}", migrate=True)
    service = LedgerService(engine=client, store=store, **DEFAULT_SETTINGS)
    await service.connect()
    try:
        yield service, store
    finally:
        await service.close()
        await store.close()
        await client.close()


async def test_transfers_and_holds_on_a_real_cluster(
    real_service: tuple[LedgerService, Store],
) -> None:
    service, _ = real_service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 30))
    await service.post_pending_transfer(hold.id, 20)
    alice, bob = await service.get_balances([book.alice, book.bob])
    assert (alice.posted, alice.available, bob.posted) == (80, 80, 20)
    kinds = [e.kind for e in await service.get_transfer_audit(hold.id)]
    assert kinds == [EventKind.SUBMITTED, EventKind.PENDING, EventKind.POSTED]


async def test_recovery_on_a_real_cluster_applies_once(
    real_service: tuple[LedgerService, Store],
) -> None:
    service, store = real_service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    stranded = TransferIntent(
        id=tb.id(),
        debit_account_id=book.alice,
        credit_account_id=book.bob,
        amount=10,
        ledger=LEDGER,
        code=PAYMENT,
    )
    await store.insert_intents([stranded])
    assert (await service.recover(grace_s=0)).resubmitted == 1
    assert (await service.recover(grace_s=0)).examined == 0
    assert (await service.get_balance(book.bob)).posted == 10
