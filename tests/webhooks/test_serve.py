"""The API app runs the deliverer in its lifespan when ``Settings.webhooks`` is on."""

from __future__ import annotations

import asyncio
import time

from tbledger.api import create_app
from tbledger.config import Settings
from tbledger.store import Store
from tbledger.webhooks.manage import create_endpoint
from tests.webhooks.receiver import Receiver


async def test_the_app_delivers_webhooks_when_enabled(
    store: Store, receiver: Receiver, db_url: str
) -> None:
    endpoint = await create_endpoint(store, url=receiver.url, owner_id=None, cursor=0)
    settings = Settings(
        engine_url="memory://",
        database_url=db_url,
        webhooks=True,
        webhook_allow_private=True,
        webhook_poll_s=0.05,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        # Start-up creates the chart's system accounts: audit events the endpoint is sent.
        deadline = time.monotonic() + 15
        while not receiver.received:
            assert time.monotonic() < deadline, "nothing was delivered"
            await asyncio.sleep(0.05)
    assert receiver.received[0].seq == 1
    assert receiver.received[0].headers["webhook-id"] == "evt_1"
    assert endpoint.secret
