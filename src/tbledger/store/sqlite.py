"""The store's SQLite backend (the embedded default): aiosqlite, durable commits, one writer.

SQLite runs in-process, so the round trips that make PostgreSQL want one statement per batch do
not exist here; a batch is one prepared INSERT executed for every row (``executemany``) inside
one transaction, which measures about ten times faster than SQLAlchemy's multi-row VALUES for a
full 8189-row batch (compiling the giant statement dominates). Every connection is set up for a
money log: foreign keys on; WAL journal with ``synchronous=FULL`` so a commit is on disk before
the intent is acknowledged (the engine must never see a transfer the store could lose); a busy
timeout instead of immediate "database is locked" errors; and transactions begun by SQLAlchemy
with an explicit ``BEGIN`` (the driver's own implicit transactions would leave reads and DDL
outside them). Only one writer runs at a time, so audit seqs are assigned in commit order. An
in-memory database (``sqlite://``) lives in one connection shared by every call; the `Store`
serialises calls on it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, pool
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tbledger.errors import ConfigurationError, InvariantViolationError, StoreUnavailableError
from tbledger.store.backend import Row, StoreOptions
from tbledger.store.tables import audit_events

__all__ = ["SqliteBackend"]


class SqliteBackend:
    """SQLite through aiosqlite; a file, or memory for ``sqlite://``."""

    name = "sqlite"

    def __init__(self, url: URL, options: StoreOptions) -> None:
        if options.schema is not None or options.role is not None:
            raise ConfigurationError("schema and role are PostgreSQL options; SQLite has neither")
        self._url = url.set(drivername="sqlite+aiosqlite")
        self._options = options
        self.single_connection = url.database in (None, "", ":memory:")

    def create_engine(self) -> AsyncEngine:
        options = self._options
        if not self.single_connection and self._url.database is not None:
            folder = os.path.dirname(os.path.abspath(self._url.database))
            if not os.path.isdir(folder):
                # Refused here: a failed aiosqlite connect leaves its worker thread behind.
                raise StoreUnavailableError(f"cannot open the SQLite store: no folder {folder!r}")
        # sqlite3's `timeout` is the busy timeout: how long a writer waits for the lock.
        connect_args: dict[str, Any] = {"timeout": options.statement_timeout_s}
        if self.single_connection:
            # One connection is the database; StaticPool hands out that same one every time.
            engine = create_async_engine(
                self._url,
                poolclass=pool.StaticPool,
                connect_args={**connect_args, "check_same_thread": False},
            )
        else:
            engine = create_async_engine(
                self._url,
                pool_size=options.pool_connections_max,
                max_overflow=0,
                pool_timeout=options.statement_timeout_s,
                connect_args=connect_args,
            )
        memory = self.single_connection

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Autocommit at the driver level, so the pragmas below run outside a transaction
            # (foreign_keys is a no-op inside one) and SQLAlchemy's BEGIN below is the only one.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA foreign_keys = ON")
                if not memory:
                    cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = FULL")
            finally:
                cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            # Deferred BEGIN: every write transaction of the store starts with its INSERT or
            # UPDATE, which takes the write lock at once (waiting up to the busy timeout).
            connection.exec_driver_sql("BEGIN")

        return engine

    async def insert_rows(
        self, conn: AsyncConnection, table: sa.Table, rows: Sequence[Row]
    ) -> None:
        await conn.execute(sa.insert(table), list(rows))

    async def insert_events(self, conn: AsyncConnection, rows: Sequence[Row]) -> list[int]:
        await conn.execute(sa.insert(audit_events), list(rows))
        # This transaction holds SQLite's only write lock since its first INSERT, so the last
        # len(rows) seqs up to last_insert_rowid() are exactly the rows just inserted.
        seq = audit_events.c.seq
        query = (
            sa.select(seq)
            .where(seq <= sa.func.last_insert_rowid())
            .order_by(seq.desc())
            .limit(len(rows))
        )
        seqs = sorted((await conn.execute(query)).scalars().all())
        if len(seqs) != len(rows):
            raise InvariantViolationError(
                f"found {len(seqs)} audit seqs for {len(rows)} inserted events"
            )
        return [int(s) for s in seqs]
