"""Store URLs, unavailable databases, in-memory SQLite, and recovery from dropped connections."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tbledger.errors import ConfigurationError, StoreError, StoreUnavailableError
from tbledger.ids import new_id
from tbledger.store import AccountRecord, Store, StoreOptions, TransferIntent
from tbledger.store.connect import open_backend
from tbledger.store.postgres import DriverCalls, PostgresBackend
from tbledger.store.sqlite import SqliteBackend
from tests.store.conftest import StoreCase, sqlite_url
from tests.support.database import SessionDatabase, free_port
from tests.support.records import intent


@pytest.mark.parametrize(
    ("url", "backend", "memory"),
    [
        ("postgresql://u:p@127.0.0.1:5432/db", PostgresBackend, False),
        ("postgres://u@127.0.0.1/db", PostgresBackend, False),
        ("postgresql+asyncpg://u@127.0.0.1/db", PostgresBackend, False),
        ("sqlite:///relative.db", SqliteBackend, False),
        ("sqlite:////tmp/absolute.db", SqliteBackend, False),
        ("sqlite+aiosqlite:////tmp/absolute.db", SqliteBackend, False),
        ("sqlite://", SqliteBackend, True),
        ("sqlite:///:memory:", SqliteBackend, True),
    ],
)
def test_urls_choose_the_backend_and_async_driver(
    url: str, backend: type[object], memory: bool
) -> None:
    chosen = open_backend(url)
    assert isinstance(chosen, backend)
    assert chosen.single_connection is memory


def test_postgres_urls_always_use_asyncpg() -> None:
    engine = open_backend("postgres://u@127.0.0.1/db").create_engine()
    assert engine.url.drivername == "postgresql+asyncpg"
    engine = open_backend("sqlite:///x.db").create_engine()
    assert engine.url.drivername == "sqlite+aiosqlite"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u@h/db",
        "postgresql+psycopg://u@h/db",
        "sqlite+pysqlite:///x.db",
        "not a url",
        "",
        "memory://",
    ],
)
def test_other_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_backend(url)


@pytest.mark.parametrize(
    "options",
    [StoreOptions(schema="s"), StoreOptions(role="r")],
)
def test_sqlite_has_no_schema_or_role(options: StoreOptions) -> None:
    with pytest.raises(ConfigurationError):
        open_backend("sqlite://", options)


@pytest.mark.parametrize("name", ['x"; DROP TABLE accounts; --', "Public", "1abc", "a-b", ""])
def test_postgres_schema_and_role_must_be_plain_identifiers(name: str) -> None:
    with pytest.raises(ConfigurationError):
        open_backend("postgresql://u@127.0.0.1/db", StoreOptions(schema=name))
    with pytest.raises(ConfigurationError):
        open_backend("postgresql://u@127.0.0.1/db", StoreOptions(role=name))


async def test_closed_port_is_unavailable_quickly() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as raised:
        await Store.connect(url)
    assert time.monotonic() - started < 2.0
    assert isinstance(raised.value.__cause__, OSError)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


async def test_a_server_that_never_answers_is_unavailable_after_the_timeout(
    silent_server: int,
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{silent_server}/test"
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        await Store.connect(url, options=StoreOptions(connect_timeout_s=0.5))
    assert time.monotonic() - started < 3.0


async def test_unknown_database_is_unavailable(postgres_database: SessionDatabase) -> None:
    url = sa.make_url(postgres_database.url).set(database="tbledger_no_such_database")
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        await Store.connect(url.render_as_string(hide_password=False))


async def test_missing_sqlite_folder_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError):
        await Store.connect(sqlite_url(tmp_path / "no" / "such" / "store.db"))


async def test_store_errors_are_under_the_root() -> None:
    from tbledger.errors import TbledgerError

    assert issubclass(StoreUnavailableError, StoreError)
    assert issubclass(StoreError, TbledgerError)


async def test_memory_store_is_migrated_and_private() -> None:
    first = await Store.connect("sqlite://")
    second = await Store.connect("sqlite://")
    try:
        record = AccountRecord(id=new_id(), account_type="user", ledger=1, code=1)
        await first.create_accounts([record])
        assert await first.get_account(record.id) is not None
        assert await second.get_account(record.id) is None
    finally:
        await first.close()
        await second.close()


async def test_memory_store_serialises_concurrent_calls() -> None:
    async with await Store.connect("sqlite://") as store:

        async def write(n: int) -> None:
            await store.insert_intents(
                TransferIntent(
                    id=new_id(), debit_account_id=1, credit_account_id=2, amount=n, ledger=1, code=1
                )
                for _ in range(5)
            )
            await store.events_since(0, 100)

        await asyncio.gather(*(write(n) for n in range(1, 21)))
        events = await store.events_since(0, 1000)
        assert [e.seq for e in events] == list(range(1, 101))


async def test_file_store_migrates_on_connect(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "m.db")
    async with await Store.connect(url, migrate=True) as store:
        await store.ping()
    # Opening again, migrated already, is fine with or without migrate.
    async with await Store.connect(url, migrate=True) as store:
        assert store.backend_name == "sqlite"
    async with await Store.connect(url) as store:
        assert await store.events_since(0, 1) == []


async def _terminate_store_sessions(case: StoreCase) -> None:
    """Terminate the store's sessions, and wait until the server has ended them."""
    async with case.admin.connect() as conn:
        found = await conn.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'tbledger' "
                "AND pid <> pg_backend_pid() AND datname = current_database() "
                "AND usename = current_user"
            )
        )
        pids = list(found.scalars().all())
        assert pids
        await conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid"),
            {"pids": pids},
        )
        for _ in range(500):
            alive = await conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                {"pids": pids},
            )
            if alive.scalar_one() == 0:
                return
            await conn.commit()  # pg_stat_activity is a snapshot taken once per transaction
            await asyncio.sleep(0.01)
    raise AssertionError(f"sessions {pids} did not end")


async def test_postgres_store_survives_dropped_connections(postgres_case: StoreCase) -> None:
    # A restart or failover closes the store's connections while they sit in the pool: the
    # driver sees each one closed and the pool replaces it, with no error for the caller.
    store = postgres_case.store
    await asyncio.gather(store.ping(), store.events_since(0, 1), store.ping())
    await _terminate_store_sessions(postgres_case)
    await asyncio.sleep(0.05)  # the event loop reads the end of each connection's stream
    await asyncio.gather(store.ping(), store.events_since(0, 1), store.ping())
    await store.insert_intents([intent(amount=1)], returning=False)
    assert len(await store.events_since(0, 10)) == 1


# What a server sends an idle session it terminates (a restart, a failover, pg_terminate_backend)
# just before it closes the socket: a FATAL ErrorResponse, 57P01.
_FAREWELL_FIELDS = (
    b"SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0"
)
_FAREWELL = b"E" + struct.pack("!i", 4 + len(_FAREWELL_FIELDS)) + _FAREWELL_FIELDS


async def test_pooled_connections_the_server_said_farewell_to_are_replaced(
    postgres_case: StoreCase,
) -> None:
    # Between the server's farewell and the end of its stream, which the event loop reads turns
    # later, a pooled connection is neither known closed nor usable: its driver refuses the next
    # statement without sending it. Every store call then retries on another connection, and
    # the refusing ones are dropped. Here the farewell reaches every pooled connection and the
    # ends of their streams never do, so each is found out by a refused statement.
    store = postgres_case.store
    item = intent(amount=1)
    # Through SQLAlchemy (a read), then straight to the driver (a small batch, one statement).
    calls = [
        lambda: store.events_since(0, 10),
        lambda: store.insert_intents(iter([item]), returning=False),
    ]
    for call in calls:
        async with contextlib.AsyncExitStack() as stack:
            conns = [await stack.enter_async_context(store.engine.connect()) for _ in range(4)]
            drivers = [(await conn.get_raw_connection()).driver_connection for conn in conns]
        for driver in drivers:
            assert driver is not None
            driver._protocol.data_received(_FAREWELL)
            assert not driver.is_closed()
        await call()
        # Every pooled connection is taken: none of those the server left is handed out again.
        await asyncio.gather(*(store.ping() for _ in range(8)))
        assert all(driver is not None and driver.is_closed() for driver in drivers)
    assert [e.transfer_id for e in await store.events_since(0, 10)] == [item.id]


async def test_an_idle_connection_is_checked_before_use(postgres_case: StoreCase) -> None:
    # A connection idle past the threshold is pinged before it is handed out, so one the driver
    # has not seen closed yet is replaced too. (Threshold 0: every checkout is checked.)

    class NotNoticed(DriverCalls):
        """Once armed, the driver never has seen a pooled connection closed."""

        def __init__(self) -> None:
            self.armed = False
            self.asked: list[object] = []

        def known_closed(self, dbapi_connection: object) -> bool:
            if not self.armed:
                return super().known_closed(dbapi_connection)
            self.asked.append(dbapi_connection)
            return False

    options = StoreOptions(schema=postgres_case.schema, ping_idle_s=0.0)
    calls = NotNoticed()
    backend = PostgresBackend(make_url(postgres_case.url), options, calls=calls)
    async with Store(backend.create_engine(), backend) as store:
        await store.ping()
        calls.armed = True
        await _terminate_store_sessions(postgres_case)
        await store.ping()
        assert await store.events_since(0, 1) == []
        assert calls.asked
