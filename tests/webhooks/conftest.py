"""Fixtures of the webhook tests: a migrated SQLite store in a file and a loopback receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tbledger.store import Store
from tests.webhooks.receiver import Receiver


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hooks.db'}"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = await Store.connect(db_url, migrate=True)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = await Receiver().start()
    try:
        yield receiver
    finally:
        await receiver.stop()
