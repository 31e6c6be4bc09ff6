"""Fixtures for the LedgerService suite: one service per test, on each store, over the twin.

`service` is a connected `LedgerService` over the embedded TigerBeetle twin in memory, whose
clock is a `ManualClock` (the engine's time moves only when a test says so), and over a fresh
store: SQLite in a file of its own (a copy of a migrated template), or PostgreSQL in a schema of
its own in this session's database, acting as the application role. PostgreSQL is found the way
the store suite finds it (``TBLEDGER_TEST_DATABASE_URL``, else the local server at
127.0.0.1:5432, else a throwaway cluster; see tests/support/database.py) and its cases skip with
the reason when there is none. Tests of what the engine alone decides (flags, balances,
refusals, reads of money) narrow this to SQLite with `helpers.one_store`.

`ledger` bundles what a test needs next to the service: the engine client (to look behind the
service's back), the clock, the store, and `open_service` to build a second service on the same
store and engine with other settings or a wrapped engine (deadlines, the circuit breaker).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tbledger.embedded import ClientAsync, ManualClock
from tbledger.service import LedgerService
from tbledger.store import DEFAULT_APP_ROLE, Store, StoreOptions
from tests.support.database import (
    SessionDatabase,
)

STORES = ["sqlite", "postgresql"]

# A generous deadline (the twin answers in microseconds; a loaded CI box may not) and almost no
# retry backoff. Tests of deadlines and the breaker pass their own through `open_service`.
DEFAULT_SETTINGS: dict[str, Any] = {
    "request_timeout_ms": 5_000,
    "retry_delay_ms": 1,
    "retry_delay_max_ms": 10,
}


@dataclass
class StoreTarget:
    """Where a test's store lives: enough to open it (again) or to break it on purpose."""

    kind: str
    url: str
    options: StoreOptions | None = None

    async def open(self) -> Store:
        return await Store.connect(self.url, migrate=True, options=self.options)


@dataclass
class Ledger:
    """A connected service and what stands behind it."""

    kind: str
    service: LedgerService
    client: ClientAsync
    clock: ManualClock
    store: Store
    target: StoreTarget

    @contextlib.asynccontextmanager
    async def open_service(
        self, *, engine: Any = None, store: Store | None = None, **settings: Any
    ) -> AsyncIterator[LedgerService]:
        """Another service on this ledger's store and engine (or `engine`), with `settings`."""
        merged = {**DEFAULT_SETTINGS, **settings}
        other = LedgerService(
            engine=self.client if engine is None else engine,
            store=self.store if store is None else store,
            **merged,
        )
        await other.connect()
        try:
            yield other
        finally:
            await other.close()


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite store file; each test starts from a copy (migrating is slower)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "store.db"

    async def migrate() -> None:
        store = await Store.connect(f"sqlite:///{path}", migrate=True)
        await store.close()

    # A thread of its own: this may be set up while an event loop is running.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, migrate()).result()
    return path


@pytest.fixture
def store_target(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> StoreTarget:
    if store_kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "store.db"
        for suffix in ("", "-wal"):  # the WAL is checkpointed on close, but be sure
            if Path(f"{template}{suffix}").exists():
                shutil.copyfile(f"{template}{suffix}", f"{path}{suffix}")
        return StoreTarget(kind="sqlite", url=f"sqlite:///{path}")
    database: SessionDatabase = request.getfixturevalue("postgres_database")
    schema = f"{database.prefix}_{secrets.token_hex(4)}"
    return StoreTarget(
        kind="postgresql",
        url=database.url,
        options=StoreOptions(schema=schema, role=DEFAULT_APP_ROLE),
    )


@pytest.fixture
def clock() -> ManualClock:
    """The engine's clock: it stands still unless a test advances it."""
    return ManualClock()


@pytest.fixture
async def client(clock: ManualClock) -> AsyncIterator[ClientAsync]:
    """The embedded twin in memory, on the manual clock."""
    engine = ClientAsync(cluster_id=0, clock=clock)
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture
async def store(store_target: StoreTarget) -> AsyncIterator[Store]:
    opened = await store_target.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def ledger(
    store_target: StoreTarget, client: ClientAsync, clock: ManualClock, store: Store
) -> AsyncIterator[Ledger]:
    service = LedgerService(engine=client, store=store, **DEFAULT_SETTINGS)
    await service.connect()
    try:
        yield Ledger(
            kind=store_target.kind,
            service=service,
            client=client,
            clock=clock,
            store=store,
            target=store_target,
        )
    finally:
        await service.close()


@pytest.fixture
def service(ledger: Ledger) -> LedgerService:
    """A connected LedgerService over the twin (ManualClock) and a fresh store of each kind."""
    return ledger.service
