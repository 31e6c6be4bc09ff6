"""The house the adversarial suite attacks: the real app, an admin key and two owner keys.

`house` is the HTTP app over the embedded twin (in memory, on a `ManualClock`) and a store, run
once on SQLite and once on PostgreSQL (as the application role), with the chart's system
accounts created on start-up. Two owners, ``alice`` and ``bob``, each have an owner key; alice has
a funded USD account (`A`) and an empty EUR account (`AE`), bob a USD merchant account (`BM`).
Every test asserts on money (balances in the engine, statuses in the store and in the engine),
not only on status codes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tbledger.store import Store
from tests.support.api import Api, running_api
from tests.support.database import SessionDatabase

STORES = ["sqlite", "postgresql"]


@dataclass
class House:
    """The app, its keys and the accounts every attack starts from."""

    api: Api
    alice: dict[str, str]
    bob: dict[str, str]
    A: str  # alice's USD user account, funded with 100.00
    AE: str  # alice's EUR user account, empty
    BM: str  # bob's USD merchant account, empty

    @property
    def http(self) -> httpx.AsyncClient:
        return self.api.http

    @property
    def admin(self) -> dict[str, str]:
        return self.api.admin

    async def balance(self, account_id: str) -> dict[str, Any]:
        """An account's balance as the admin reads it (from the engine)."""
        r = await self.http.get(f"/v1/balances/{account_id}", headers=self.admin)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def posted(self, account_id: str) -> str:
        return str((await self.balance(account_id))["posted"])


async def _store_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if kind == "sqlite":
        return await Store.connect(f"sqlite:///{tmp_path / 'store.db'}", migrate=True)
    database: SessionDatabase = request.getfixturevalue("postgres_database")
    return await Store.connect(database.url, migrate=True, options=database.store_options())


@contextlib.asynccontextmanager
async def open_house(
    request: pytest.FixtureRequest, tmp_path: Path, **settings: Any
) -> AsyncIterator[House]:
    """A house on the store `request.param` names; `settings` replace the service's own."""
    store = await _store_for(request.param, request, tmp_path)
    async with running_api(store, **settings) as api:
        alice = await api.owner("alice")
        bob = await api.owner("bob")
        a = await api.account("alice")
        ae = await api.account("alice", ledger="EUR")
        bm = await api.account("bob", account_type="merchant")
        await api.deposit(a, "100.00")
        yield House(api, alice, bob, a, ae, bm)


@pytest.fixture(params=STORES)
async def house(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[House]:
    async with open_house(request, tmp_path) as opened:
        yield opened
