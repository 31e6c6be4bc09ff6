"""Fixtures for the store suite: one suite, both stores.

`store_case` is parametrized over SQLite (a fresh file per test) and PostgreSQL (a fresh schema
per test in this session's own database). The PostgreSQL store connects as the application role
(``SET ROLE tbledger_app`` through the startup packet), so every store test also proves the
role's grants are enough; `admin` is a second engine on the same schema as the tables' owner,
for checks the application may not do. PostgreSQL cases skip with the discovery's reason when
no server can be had (see tests/support/database.py). `open_store` opens a second store on a
case's database over a backend built by hand, for tests that put a fault between the store and
its driver.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tbledger.store import DEFAULT_APP_ROLE, Store, StoreOptions, upgrade
from tbledger.store.backend import Backend
from tbledger.store.connect import open_backend
from tests.support.database import (
    SessionDatabase,
)

BACKENDS = ["sqlite", "postgresql"]


@dataclass
class StoreCase:
    """A migrated, empty store of one kind, and how to reach its database directly."""

    kind: str
    url: str
    schema: str | None
    store: Store
    admin: AsyncEngine


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@contextlib.asynccontextmanager
async def open_case(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreCase]:
    """A migrated, empty store of `kind` and an owner's engine on the same database."""
    if kind == "sqlite":
        url = sqlite_url(tmp_path / "store.db")
        store = await Store.connect(url, migrate=True)
        schema = None
    else:
        database: SessionDatabase = request.getfixturevalue("postgres_database")
        schema = database.new_schema()
        url = database.url
        await upgrade(url, schema=schema)
        store = await Store.connect(url, options=StoreOptions(schema=schema, role=DEFAULT_APP_ROLE))
    admin = open_backend(url, StoreOptions(schema=schema)).create_engine()
    try:
        yield StoreCase(kind=kind, url=url, schema=schema, store=store, admin=admin)
    finally:
        await store.close()
        await admin.dispose()


def case_options(case: StoreCase, **options: Any) -> StoreOptions:
    """The options `case.store` was opened with, and `options` besides."""
    if case.kind == "sqlite":
        return StoreOptions(**options)
    return StoreOptions(schema=case.schema, role=DEFAULT_APP_ROLE, **options)


@contextlib.asynccontextmanager
async def open_store(backend: Backend) -> AsyncIterator[Store]:
    """A store over `backend` (built by hand, for a fault to be injected), closed on exit."""
    async with Store(backend.create_engine(), backend) as store:
        yield store


@pytest.fixture(params=BACKENDS)
async def store_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreCase]:
    """A migrated, empty store per test, on each backend."""
    async with open_case(request.param, request, tmp_path) as case:
        yield case


@pytest.fixture
async def postgres_case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreCase]:
    """A migrated, empty PostgreSQL store (for what only PostgreSQL has: roles, schemas)."""
    async with open_case("postgresql", request, tmp_path) as case:
        yield case


@pytest.fixture
def store(store_case: StoreCase) -> Store:
    return store_case.store
