"""Fixtures for the HTTP API suite: the app over the embedded twin and a real PostgreSQL.

`api` is a running app (lifespan entered; see tests/support/api.py) on a `LedgerService` over the
twin in memory (on a `ManualClock`) and a PostgreSQL store in a schema of its own, acting as the
application role. It carries an httpx client talking ASGI to the app, an admin key and a helper
to mint owner keys. PostgreSQL is found as elsewhere (``TBLEDGER_TEST_DATABASE_URL``, else
127.0.0.1:5432, else a throwaway cluster); without one these tests skip with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tbledger.store import Store
from tests.support.api import Api, running_api
from tests.support.database import SessionDatabase


@pytest.fixture
async def api(postgres_database: SessionDatabase) -> AsyncIterator[Api]:
    options = postgres_database.store_options()
    store = await Store.connect(postgres_database.url, migrate=True, options=options)
    async with running_api(store) as running:
        yield running
