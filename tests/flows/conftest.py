"""Fixtures for the flow suite: a SpendEngine per test, on each store, over the embedded twin.

`spend` is a `SpendEngine` over a connected `LedgerService` whose engine is the embedded
TigerBeetle twin in memory on a `ManualClock` (engine time moves only when a test says so), and
whose store is fresh for the test: SQLite in a file of its own (a copy of a migrated template), or
real PostgreSQL in a schema of its own in this session's database, acting as the application role.
PostgreSQL is found as the store suite finds it (``TBLEDGER_TEST_DATABASE_URL``, the local server,
else a throwaway cluster; see tests/support/database.py); its cases skip with the reason if none.

`world` adds what most tests start from: alice (a user with 100.00 USD), bob (a user with
nothing), shop (a merchant), all on USD.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tbledger.balances import Balance
from tbledger.embedded import ClientAsync, ManualClock
from tbledger.flows import SpendEngine
from tbledger.service import LedgerService
from tbledger.store import DEFAULT_APP_ROLE, Store, StoreOptions
from tbledger.store.tables import transfers
from tests.support.database import (
    SessionDatabase,
)

STORES = ["sqlite", "postgresql"]
USD = 1
EUR = 2

# A generous deadline (the twin answers in microseconds; a loaded CI box may not).
SETTINGS: dict[str, Any] = {
    "request_timeout_ms": 10_000,
    "retry_delay_ms": 1,
    "retry_delay_max_ms": 10,
}


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite store file; each test starts from a copy (migrating is slower)."""
    path = tmp_path_factory.mktemp("flows-sqlite-template") / "store.db"

    async def migrate() -> None:
        store = await Store.connect(f"sqlite:///{path}", migrate=True)
        await store.close()

    # A thread of its own: this may be set up while an event loop is running.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    return path


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def open_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh, migrated store of `kind` for one test."""
    if kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "store.db"
        shutil.copyfile(template, path)
        return await Store.connect(f"sqlite:///{path}", migrate=True)
    database: SessionDatabase = request.getfixturevalue("postgres_database")
    schema = f"{database.prefix}_{secrets.token_hex(4)}"
    options = StoreOptions(schema=schema, role=DEFAULT_APP_ROLE)
    return await Store.connect(database.url, migrate=True, options=options)


@pytest.fixture
def clock() -> ManualClock:
    """The engine's clock: it stands still unless a test advances it."""
    return ManualClock()


@pytest.fixture
async def client(clock: ManualClock) -> AsyncIterator[ClientAsync]:
    engine = ClientAsync(cluster_id=0, clock=clock)
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture
async def store(
    store_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Store]:
    opened = await open_store(store_kind, request, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def service(client: ClientAsync, store: Store) -> AsyncIterator[LedgerService]:
    ledger = LedgerService(engine=client, store=store, **SETTINGS)
    await ledger.connect()
    try:
        yield ledger
    finally:
        await ledger.close()


@pytest.fixture
def spend(service: LedgerService) -> SpendEngine:
    return SpendEngine(service)


@dataclass
class World:
    """A spend engine and its parts, with alice (100.00 USD), bob (0) and shop (a merchant)."""

    spend: SpendEngine
    service: LedgerService
    client: ClientAsync
    clock: ManualClock
    store: Store
    alice: int
    bob: int
    shop: int

    async def balance(self, account_id: int) -> Balance:
        return await self.service.get_balance(account_id)

    async def available(self, account_id: int) -> int:
        return (await self.service.get_balance(account_id)).available

    async def intents(self) -> int:
        """How many transfer intents the store holds (a refused input adds none)."""
        async with self.store.engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(transfers)
            return int((await conn.execute(query)).scalar_one())

    async def freeze(self, account_id: int) -> None:
        await self.service.update_account_status(account_id, "frozen")

    async def unfreeze(self, account_id: int) -> None:
        await self.service.update_account_status(account_id, "active")


@pytest.fixture
async def world(
    spend: SpendEngine,
    service: LedgerService,
    client: ClientAsync,
    clock: ManualClock,
    store: Store,
) -> World:
    alice = (await spend.open_account("alice", ledger="USD")).id
    bob = (await spend.open_account("bob", ledger="USD")).id
    shop = (await spend.open_account("shop", ledger="USD", account_type="merchant")).id
    await spend.deposit(account=alice, amount=Decimal("100.00"), ledger="USD")
    return World(spend, service, client, clock, store, alice, bob, shop)
