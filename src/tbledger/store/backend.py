"""What differs between the store's databases, behind one small interface, and error mapping.

`Store` is written once against SQLAlchemy Core; a `Backend` supplies only what really differs
between PostgreSQL and SQLite: how to build the async engine for a URL (driver, pool, per
connection settings), how to insert a validated batch (`tbledger.store.rows`) in as few
statements as the database allows, and how to append audit events so that ``seq`` order is commit
order (the durable tail depends on it). Batches are written through the driver itself, below
SQLAlchemy (its per-value type processing cost more than the database did), inside the
transaction SQLAlchemy opened. `translate_error` turns driver and SQLAlchemy exceptions, wrapped
or not, into the store's exception tree, keeping the original as ``__cause__``: "cannot reach the
database" (`StoreUnavailableError`) is kept apart from "the database refused this statement"
(`StoreError`, `DuplicateRecordError`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tbledger.errors import (
    DuplicateRecordError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from tbledger.limits import (
    STORE_CONNECT_TIMEOUT_S,
    STORE_PING_IDLE_S,
    STORE_POOL_CONNECTIONS_MAX,
    STORE_STATEMENT_TIMEOUT_S,
)
from tbledger.store.rows import Columns
from tbledger.store.tables import metadata

__all__ = ["Backend", "StoreOptions", "sent_nothing", "translate_error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreOptions:
    """How to connect: PostgreSQL schema and role, pool size, and time limits."""

    # PostgreSQL only: the schema the tables live in (search_path), and the role to act as
    # (SET ROLE at connect; the login user must be a member of it).
    schema: str | None = None
    role: str | None = None
    pool_connections_max: int = STORE_POOL_CONNECTIONS_MAX
    connect_timeout_s: float = STORE_CONNECT_TIMEOUT_S
    statement_timeout_s: float = STORE_STATEMENT_TIMEOUT_S
    # PostgreSQL only: a pooled connection idle this long is pinged before it is handed out.
    ping_idle_s: float = STORE_PING_IDLE_S


class Backend(Protocol):
    """The database-specific part of the store."""

    @property
    def name(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        ...

    @property
    def single_connection(self) -> bool:
        """True when every call shares one connection (SQLite in memory): calls take turns."""
        ...

    def create_engine(self) -> AsyncEngine:
        """A new async engine with this backend's driver, pool and per-connection settings."""
        ...

    async def insert_rows(
        self, conn: AsyncConnection, table: sa.Table, names: Sequence[str], columns: Columns
    ) -> None:
        """Insert a validated batch (`columns`, of `names`) in the caller's transaction."""
        ...

    async def insert_events(
        self, conn: AsyncConnection, columns: Columns, *, returning: bool
    ) -> list[int]:
        """Append audit events (`columns` of `EVENT_COLUMNS`); seq order is commit order.

        With `returning`, return their seqs in input order; without, return [] and spare the
        database sending them.
        """
        ...

    async def lock_audit(self, conn: AsyncConnection) -> None:
        """Take the audit log's append lock for the rest of the caller's transaction: another
        append waits until it commits, and what the transaction reads after this includes every
        append committed before it (a check, then an append that depends on it)."""
        ...

    @property
    def direct_rows_max(self) -> int:
        """Batches of up to this many rows may go through `insert_direct` (0: none may)."""
        ...

    async def insert_direct(
        self,
        conn: AsyncConnection,
        rows: tuple[sa.Table, Sequence[str], Columns] | None,
        events: Columns,
    ) -> None:
        """Insert `rows` (a table, its column names and a validated batch), if any, and append
        `events` as one statement that commits on its own (`conn` has no transaction open);
        seq order is commit order, as with `insert_events`."""
        ...


# PostgreSQL SQLSTATEs that mean "no usable connection", not "this statement is wrong":
# connection exceptions (08), bad login (28), unknown database (3D000), too many connections,
# and the server shutting down or starting up (57P01-57P03).
_PG_UNAVAILABLE_PREFIXES = ("08", "28")
_PG_UNAVAILABLE_STATES = frozenset({"3D000", "53300", "57P01", "57P02", "57P03"})
_PG_UNIQUE_VIOLATION = "23505"

# SQLite result codes that mean the database file cannot be used right now (cannot open, I/O
# error, locked past the busy timeout), as opposed to a refused statement.
_SQLITE_UNAVAILABLE_PREFIXES = ("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_LOCKED")
_SQLITE_UNIQUE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def translate_error(exc: Exception) -> Exception | None:
    """The store exception for `exc`, or None when `exc` is not a database fault."""
    if isinstance(exc, StoreError | ValidationError):
        return None
    if isinstance(exc, sa_exc.StatementError) and isinstance(exc.orig, ValidationError):
        # A column type refused a value while binding; that is the caller's input, not the store.
        return exc.orig
    if isinstance(exc, sa_exc.DBAPIError):
        return _translate_dbapi(exc)
    # Batch writes go to the driver directly (COPY, executemany): its exceptions come unwrapped.
    if isinstance(exc, asyncpg.PostgresError):
        return _translate_postgres(exc.sqlstate, exc.constraint_name, str(exc))
    if isinstance(exc, sqlite3.Error):
        return _translate_sqlite(exc, str(exc))
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        # A closed connection, or one the driver lost step with (a message from a dying server
        # arrived between statements); the backend has invalidated it, a retry gets a new one.
        return StoreUnavailableError(f"store connection unusable: {exc!r}")
    if isinstance(exc, sa_exc.TimeoutError):
        return StoreUnavailableError(f"no free store connection in time: {exc}")
    if isinstance(exc, OSError | TimeoutError):
        # asyncpg raises these unwrapped while connecting: refused, unreachable, timed out.
        return StoreUnavailableError(f"cannot reach the store database: {exc!r}")
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return StoreError(f"store failure: {exc}")
    return None


def sent_nothing(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) is the driver refusing a statement it never sent.

    asyncpg checks its connection before it writes a statement: one it knows closed says
    "connection is closed", and one whose protocol is not idle says "cannot switch to state".
    The second is what a connection the server terminated looks like in the pool until the
    event loop has read the end of its stream: the server's farewell (a FATAL ErrorResponse,
    57P01 on a restart or pg_terminate_backend) arrived while it was idle, which put the
    protocol out of step. Nothing of the statement reached the database, and a transaction on a
    connection the server dropped was rolled back, so the store may retry the whole call on
    another connection. Anything else (a statement lost in flight included) may have been
    applied and is not retried.
    """
    seen: BaseException | None = exc
    for _ in range(_CAUSES_MAX):
        if seen is None:
            return False
        if isinstance(seen, asyncpg.exceptions.InternalClientError):
            return str(seen).startswith("cannot switch to state")
        if isinstance(seen, asyncpg.InterfaceError):
            return str(seen) in _CLOSED_BEFORE_SENDING
        # SQLAlchemy keeps the driver's exception in .orig, its asyncpg adapter in __cause__.
        orig = getattr(seen, "orig", None)
        seen = orig if isinstance(orig, BaseException) else seen.__cause__
    return False


# asyncpg's messages for a statement refused because the connection was already closed.
_CLOSED_BEFORE_SENDING = frozenset(
    {"connection is closed", "cannot perform operation: connection is closed"}
)
# The store's exception, SQLAlchemy's, the adapter's, the driver's: a chain is never longer.
_CAUSES_MAX = 6


def _translate_dbapi(exc: sa_exc.DBAPIError) -> StoreError:
    orig = exc.orig
    message = str(orig) if orig is not None else str(exc)
    if exc.connection_invalidated:
        return StoreUnavailableError(f"store connection lost: {message}")
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        # SQLAlchemy's asyncpg adapter keeps asyncpg's own exception, which names the index.
        driver = getattr(orig, "orig", None)
        return _translate_postgres(sqlstate, getattr(driver, "constraint_name", None), message)
    if isinstance(orig, sqlite3.Error):
        return _translate_sqlite(orig, message)
    if isinstance(exc, sa_exc.InterfaceError):
        return StoreUnavailableError(f"store connection unusable: {message}")
    return StoreError(f"store statement failed: {message}")


def _translate_postgres(sqlstate: str | None, constraint: str | None, message: str) -> StoreError:
    if sqlstate == _PG_UNIQUE_VIOLATION:
        return DuplicateRecordError(f"duplicate record: {message}", constraint=constraint)
    if sqlstate is not None and (
        sqlstate.startswith(_PG_UNAVAILABLE_PREFIXES) or sqlstate in _PG_UNAVAILABLE_STATES
    ):
        return StoreUnavailableError(f"store database unavailable: {message}")
    return StoreError(f"store statement failed ({sqlstate}): {message}")


def _translate_sqlite(exc: sqlite3.Error, message: str) -> StoreError:
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name in _SQLITE_UNIQUE:
        return DuplicateRecordError(
            f"duplicate record: {message}", constraint=_sqlite_constraint(message)
        )
    if name.startswith(_SQLITE_UNAVAILABLE_PREFIXES):
        return StoreUnavailableError(f"store database unavailable: {message}")
    return StoreError(f"store statement failed ({name or 'sqlite'}): {message}")


def _sqlite_constraint(message: str) -> str | None:
    # SQLite names columns, not the index ("UNIQUE constraint failed: transfers.id"); map them to
    # the names PostgreSQL reports, so callers can tell an idempotency key from an id on both.
    prefix = "constraint failed: "
    index = message.find(prefix)
    if index < 0:
        return None
    columns = message[index + len(prefix) :].strip()
    return _UNIQUE_NAMES.get(columns, columns)


def _unique_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for table in metadata.tables.values():
        key = ", ".join(f"{table.name}.{column.name}" for column in table.primary_key.columns)
        names[key] = str(table.primary_key.name)
        for index in table.indexes:
            if index.unique:
                key = ", ".join(f"{table.name}.{column.name}" for column in index.columns)
                names[key] = str(index.name)
    return names


_UNIQUE_NAMES = _unique_names()
