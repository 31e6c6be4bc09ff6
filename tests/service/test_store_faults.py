"""The store comes first: when it cannot be written, nothing reaches the engine.

Step 2 of the write path persists the intent before the engine sees the transfer (DESIGN §3), so
a store that is unreachable, closed or broken fails the call with a store error and the engine
never hears of the transfer. A service cannot even connect to a store it cannot reach.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
import tigerbeetle as tb

from tbledger.embedded import ClientAsync
from tbledger.errors import StoreError, StoreUnavailableError
from tbledger.service import LedgerService
from tbledger.store import Store
from tests.service.conftest import Ledger
from tests.service.helpers import deposit, request
from tests.support.book import open_service_book
from tests.support.database import _asyncpg_dsn

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"


@pytest.mark.parametrize("migrate", [True, False])
async def test_connect_fails_with_store_unavailable_when_postgres_is_unreachable(
    client: ClientAsync, migrate: bool
) -> None:
    service = LedgerService(engine=client, database_url=UNREACHABLE, migrate=migrate)
    with pytest.raises(StoreUnavailableError):
        await service.connect()
    await service.close()


async def test_connect_fails_with_store_unavailable_when_the_sqlite_folder_is_missing(
    client: ClientAsync, tmp_path: Path
) -> None:
    service = LedgerService(engine=client, database_url=f"sqlite:///{tmp_path}/no/such/store.db")
    with pytest.raises(StoreUnavailableError):
        await service.connect()
    await service.close()


async def test_a_closed_store_refuses_the_write_before_the_engine_sees_it(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 10)
    await ledger.store.close()
    transfer_id = tb.id()
    requests_before = service.batcher.stats.requests
    with pytest.raises(StoreError):
        await service.create_transfer(request(book.alice, book.bob, 1, transfer_id=transfer_id))
    with pytest.raises(StoreError):
        await service.create_transfers([request(book.alice, book.bob, 1)] * 3)
    with pytest.raises(StoreError):
        await service.create_pending_transfer(request(book.alice, book.bob, 1))
    assert await ledger.client.lookup_transfers([transfer_id]) == []
    assert service.batcher.stats.requests == requests_before
    (alice,) = await ledger.client.lookup_accounts([book.alice])
    assert alice.debits_posted == alice.debits_pending == 0


@pytest.mark.parametrize("store_kind", ["postgresql"])
async def test_a_dropped_schema_refuses_the_write_before_the_engine_sees_it(
    ledger: Ledger,
) -> None:
    service = ledger.service
    book = await open_service_book(service)
    options = ledger.target.options
    assert options is not None
    admin = await asyncpg.connect(_asyncpg_dsn(ledger.target.url))
    try:
        await admin.execute(f'DROP SCHEMA "{options.schema}" CASCADE')
    finally:
        await admin.close()
    transfer_id = tb.id()
    requests_before = service.batcher.stats.requests
    with pytest.raises(StoreError):
        await service.create_transfer(request(book.treasury, book.bob, 1, transfer_id=transfer_id))
    assert await ledger.client.lookup_transfers([transfer_id]) == []
    assert service.batcher.stats.requests == requests_before


async def store_backend_pids(store: Store) -> list[int]:
    """The server pids of every idle connection in the store's pool."""
    idle = store.engine.sync_engine.pool.checkedin()  # type: ignore[attr-defined]
    async with contextlib.AsyncExitStack() as stack:
        pids = []
        for _ in range(idle):
            conn = await stack.enter_async_context(store.engine.connect())
            pids.append(int(await conn.scalar(sa.text("SELECT pg_backend_pid()"))))
    return pids


@pytest.mark.parametrize("store_kind", ["postgresql"])
async def test_connections_killed_by_the_server_are_replaced_transparently(
    ledger: Ledger,
) -> None:
    service = ledger.service
    book = await open_service_book(service)
    pids = await store_backend_pids(ledger.store)
    assert pids
    admin = await asyncpg.connect(_asyncpg_dsn(ledger.target.url))
    try:
        killed = await admin.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
            "FROM unnest($1::int[]) AS pid",
            pids,
        )
    finally:
        await admin.close()
    assert killed == len(pids)
    result = await deposit(service, book, book.alice, 5)
    assert result.ok
    assert (await service.get_balance(book.alice)).posted == 5


async def test_health_check_reports_a_store_that_went_away(ledger: Ledger) -> None:
    health = await ledger.service.health_check()
    assert (health.ok, health.engine_ok, health.store_ok) == (True, True, True)
    assert health.engine_latency_ms is not None
    await ledger.store.close()
    health = await ledger.service.health_check()
    assert (health.ok, health.engine_ok, health.store_ok) == (False, True, False)
    assert "store" in health.detail


async def test_a_reopened_store_serves_what_was_written_before(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    result = await deposit(service, book, book.alice, 5)
    reopened: Store = await ledger.target.open()
    try:
        async with ledger.open_service(store=reopened) as again:
            audit = await again.get_transfer_audit(result.id)
            assert [e.kind.value for e in audit] == ["submitted", "posted"]
            assert (await again.get_account(book.alice)).record.owner_id == "alice"
    finally:
        await reopened.close()
