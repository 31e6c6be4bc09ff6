"""The test database discovery itself: probing servers, and the throwaway cluster."""

from __future__ import annotations

import os

import pytest

from tbledger.store import Store
from tests.support.database import (
    ENV_FORCE_THROWAWAY,
    answers,
    create_test_database,
    drop_test_database,
    free_port,
    postgres_binaries,
    throwaway_cluster,
)


def test_a_closed_port_does_not_answer() -> None:
    reason = answers(f"postgresql://postgres@127.0.0.1:{free_port()}/test", timeout_s=1.0)
    assert reason is not None
    assert "ConnectionRefusedError" in reason or "OSError" in reason


@pytest.mark.slow
async def test_throwaway_cluster_starts_serves_a_store_and_goes_away() -> None:
    if os.environ.get(ENV_FORCE_THROWAWAY) != "1":
        pytest.skip(f"starts a PostgreSQL cluster (seconds); set {ENV_FORCE_THROWAWAY}=1 to run")
    if postgres_binaries() is None:
        pytest.skip("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    with throwaway_cluster() as server:
        assert server.origin == "throwaway"
        database = create_test_database(server)
        try:
            async with await Store.connect(database.url, migrate=True) as store:
                await store.ping()
        finally:
            drop_test_database(server, database)
        url = server.url
    assert answers(url, timeout_s=1.0) is not None
