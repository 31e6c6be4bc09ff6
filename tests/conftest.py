"""Fixtures shared by every test: a real TigerBeetle server and PostgreSQL, when they exist."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.database import (
    PostgresServer,
    SessionDatabase,
    create_test_database,
    drop_test_database,
    postgres_server,
)
from tests.support.tbserver import RealServer, real_server, real_server_reason


@pytest.fixture(scope="session")
def tb_real_server() -> Iterator[RealServer]:
    """A real TigerBeetle cluster for this session, or a skip that says why there is none."""
    reason = real_server_reason()
    if reason is not None:
        pytest.skip(reason)
    with real_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server, or a skip saying why there is none."""
    with postgres_server() as server:
        if isinstance(server, str):
            pytest.skip(server)
        yield server


@pytest.fixture(scope="session")
def postgres_database(postgres: PostgresServer) -> Iterator[SessionDatabase]:
    """A database of this session's own, dropped at the end; tests take schemas in it."""
    database = create_test_database(postgres)
    try:
        yield database
    finally:
        drop_test_database(postgres, database)
