"""The HTTP API running in-process, for the API and adversarial suites.

`running_api` enters the app's lifespan over a `LedgerService` on the embedded twin in memory
(on a `ManualClock`) and a store the caller opened, mints an admin key and hands back an `Api`:
the app, an httpx client talking ASGI to it, what stands behind it, and shorthands to mint
owner keys, open accounts and fund them. `transfer_body` is the JSON of a transfer request.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from tbledger.api import create_app, mint_key
from tbledger.embedded import ClientAsync, ManualClock
from tbledger.service import LedgerService
from tbledger.store import Store

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


@contextlib.asynccontextmanager
async def running_api(store: Store, **settings: Any) -> AsyncIterator[Api]:
    """The app over `store` and a fresh twin, lifespan entered, with an admin key; on exit the
    service, `store` and the twin are closed. `settings` replace the service's `SETTINGS`."""
    clock = ManualClock()
    engine = ClientAsync(cluster_id=0, clock=clock)
    service = LedgerService(engine=engine, store=store, **{**SETTINGS, **settings})
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


def transfer_body(debit: str, credit: str, amount: str = "1.00", **fields: Any) -> dict[str, Any]:
    """The JSON of a transfer request on the USD ledger; `fields` add to it or replace its own."""
    return {
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "ledger": "USD",
        **fields,
    }
