"""Lifecycle: connect, close, health, and a service that builds its own engine and store.

A service is usable between `connect()` and `close()` (or inside ``async with``); outside that
window every call raises `NotConnectedError`. Given no engine or store, it builds them from its
settings and closes them itself; given them, it leaves them open for their owner. With
``background=True`` it runs recovery and hold expiry on an interval.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tigerbeetle as tb

from tbledger.embedded import ClientAsync
from tbledger.errors import NotConnectedError
from tbledger.resilience import CircuitState
from tbledger.service import LedgerService
from tbledger.store import EventKind, TransferIntent
from tests.service.conftest import DEFAULT_SETTINGS, Ledger
from tests.service.helpers import LEDGER, PAYMENT, deposit, request, wait_until
from tests.support.book import open_service_book


async def test_a_service_is_unusable_before_connect_and_after_close(
    client: ClientAsync, tmp_path: Path
) -> None:
    service = LedgerService(engine=client, database_url=f"sqlite:///{tmp_path / 's.db'}")
    for attribute in ("store", "engine", "batcher"):
        with pytest.raises(NotConnectedError):
            getattr(service, attribute)
    with pytest.raises(NotConnectedError):
        await service.create_account(owner_id="a", account_type="user", ledger=LEDGER)
    with pytest.raises(NotConnectedError):
        await service.create_transfer(request(1, 2, 1))
    await service.connect()
    await service.connect()  # idempotent
    book = await open_service_book(service)
    await service.close()
    with pytest.raises(NotConnectedError) as caught:
        await service.get_balance(book.alice)
    assert caught.value.code == "not_connected"
    # The engine was the caller's: still open.
    assert len(await client.lookup_accounts([book.alice])) == 1


async def test_async_with_connects_and_closes_a_service_that_owns_everything(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'own.db'}"
    async with LedgerService(engine_url="memory://", database_url=url) as service:
        book = await open_service_book(service)
        result = await deposit(service, book, book.alice, 9)
        assert (await service.get_balance(book.alice)).posted == 9
        assert (await service.health_check()).ok
    with pytest.raises(NotConnectedError):
        service.store  # noqa: B018
    # The store it made was migrated on disk and outlives the service.
    async with LedgerService(engine_url="memory://", database_url=url) as again:
        audit = await again.get_transfer_audit(result.id)
        assert [e.kind for e in audit] == [EventKind.SUBMITTED, EventKind.POSTED]


async def test_disconnect_is_close(ledger: Ledger) -> None:
    async with ledger.open_service() as other:
        await other.disconnect()
        with pytest.raises(NotConnectedError):
            other.engine  # noqa: B018


async def test_health_check_reports_engine_store_and_breaker(ledger: Ledger) -> None:
    health = await ledger.service.health_check()
    assert health.ok
    assert (health.engine_ok, health.store_ok, health.breaker) == (True, True, CircuitState.CLOSED)
    assert health.engine_latency_ms is not None and health.engine_latency_ms >= 0
    assert health.detail == {}
    for _ in range(5):
        ledger.service.breaker.record_failure()
    opened = await ledger.service.health_check()
    assert (opened.ok, opened.breaker) == (False, CircuitState.OPEN)


async def test_health_check_reports_a_closed_engine(ledger: Ledger) -> None:
    other_client = ClientAsync(cluster_id=0)
    async with ledger.open_service(engine=other_client) as other:
        await other_client.close()
        health = await other.health_check()
        assert (health.ok, health.engine_ok, health.store_ok) == (False, False, True)
        assert "engine" in health.detail


async def test_background_recovery_settles_stranded_intents_on_its_own(ledger: Ledger) -> None:
    book = await open_service_book(ledger.service)
    await deposit(ledger.service, book, book.alice, 10)
    stranded = TransferIntent(
        id=tb.id(),
        debit_account_id=book.alice,
        credit_account_id=book.bob,
        amount=4,
        ledger=LEDGER,
        code=PAYMENT,
    )
    service = LedgerService(
        engine=ledger.client,
        store=ledger.store,
        recovery_interval_s=0.05,
        recovery_grace_s=0,
        **DEFAULT_SETTINGS,
    )
    await service.connect(recover=False, background=True)
    try:
        await ledger.store.insert_intents([stranded])

        async def settled() -> bool:
            audit = await ledger.store.transfer_audit(stranded.id)
            return audit[-1].kind is EventKind.POSTED

        await wait_until(settled)
    finally:
        await service.close()
    assert (await ledger.service.get_balance(book.bob)).posted == 4
