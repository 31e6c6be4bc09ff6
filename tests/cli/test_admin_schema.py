"""Keys and upgrades without a server reach the PostgreSQL schema the service's settings name."""

from __future__ import annotations

import pytest

from tbledger import admin
from tbledger.store import Store, StoreOptions
from tests.support.database import SessionDatabase


async def test_keys_and_upgrades_use_the_settings_schema(
    postgres_database: SessionDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = postgres_database.new_schema()
    monkeypatch.setenv("TBLEDGER_DATABASE_SCHEMA", schema)
    await admin.upgrade_database(postgres_database.url)
    key = await admin.create_key(postgres_database.url, name="ops", admin=True)
    listed = await admin.list_keys(postgres_database.url)
    assert [k.id for k in listed] == [key.id]
    store = await Store.connect(postgres_database.url, options=StoreOptions(schema=schema))
    try:
        found = await store.get_api_key(key.id)
    finally:
        await store.close()
    assert found is not None and found.name == "ops"
