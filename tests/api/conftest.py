"""Fixtures for the HTTP API suite: the app over the embedded twin and a real PostgreSQL.

`api` is a running app (lifespan entered) on a `LedgerService` over the twin in memory (on a
`ManualClock`) and a PostgreSQL store in a schema of its own, acting as the application role. It
carries an httpx client talking ASGI to the app, an admin key and a helper to mint owner keys.
PostgreSQL is found as elsewhere (``TBLEDGER_TEST_DATABASE_URL``, else 127.0.0.1:5432, else a
throwaway cluster); without one these tests skip with the reason.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tbledger.api import create_app, mint_key
from tbledger.embedded import ClientAsync, ManualClock
from tbledger.service import LedgerService
from tbledger.store import DEFAULT_APP_ROLE, Store, StoreOptions
from tests.support.database import SessionDatabase

SETTINGS: dict[str, Any] = {
    "request_timeout_ms": 5_000,
    "retry_delay_ms": 1,
    "retry_delay_max_ms": 10,
}


@dataclass
class Api:
    """A running app and what stands behind it."""

    app: FastAPI
    http: httpx.AsyncClient
    service: LedgerService
    engine: ClientAsync
    clock: ManualClock
    store: Store
    admin_key: str
    _owner_keys: dict[str, str] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        """Headers with the admin key."""
        return {"Authorization": f"Bearer {self.admin_key}"}

    async def owner(self, owner_id: str, **limits: Any) -> dict[str, str]:
        """Headers with a (new, cached per owner) key bound to `owner_id`."""
        if owner_id not in self._owner_keys or limits:
            minted = mint_key(name=f"key of {owner_id}", scope="owner", owner_id=owner_id, **limits)
            await self.store.create_api_key(minted.record)
            if limits:
                return {"Authorization": f"Bearer {minted.token}"}
            self._owner_keys[owner_id] = minted.token
        return {"Authorization": f"Bearer {self._owner_keys[owner_id]}"}

    def engine_requests(self) -> int:
        """Create requests the engine has received through the service (to prove none were)."""
        return self.service.batcher.stats.requests

    async def account(self, owner_id: str = "alice", *, ledger: str = "USD", **body: Any) -> str:
        """A new account's id (admin key)."""
        r = await self.http.post(
            "/v1/accounts",
            json={"ledger": ledger, "owner_id": owner_id, **body},
            headers=self.admin,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def deposit(self, account_id: str, amount: str, *, ledger: str = "USD") -> None:
        """Fund an account from the ledger's treasury (admin key)."""
        r = await self.http.post(
            "/v1/flows/deposit",
            json={"account_id": account_id, "amount": amount, "ledger": ledger},
            headers=self.admin,
        )
        assert r.status_code in (200, 201), r.text


@pytest.fixture
def postgres_target(postgres_database: SessionDatabase) -> tuple[str, StoreOptions]:
    schema = f"{postgres_database.prefix}_{secrets.token_hex(4)}"
    return postgres_database.url, StoreOptions(schema=schema, role=DEFAULT_APP_ROLE)


@pytest.fixture
async def api(postgres_target: tuple[str, StoreOptions]) -> AsyncIterator[Api]:
    url, options = postgres_target
    clock = ManualClock()
    engine = ClientAsync(cluster_id=0, clock=clock)
    store = await Store.connect(url, migrate=True, options=options)
    service = LedgerService(engine=engine, store=store, **SETTINGS)
    app = create_app(service=service, clock=clock)
    try:
        async with app.router.lifespan_context(app):
            admin = mint_key(name="test admin", scope="admin")
            await store.create_api_key(admin.record)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                yield Api(app, http, service, engine, clock, store, admin.token)
    finally:
        await service.close()
        await store.close()
        await engine.close()
