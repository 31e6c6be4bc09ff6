"""The store's SQLite backend (the embedded default): aiosqlite, durable commits, one writer.

SQLite runs in-process, so the round trips that make PostgreSQL want one statement per batch do
not exist here; a batch is one prepared INSERT executed for every row (``executemany``) inside
one transaction, which measures about ten times faster than SQLAlchemy's multi-row VALUES for a
full 8189-row batch (compiling the giant statement dominates). It goes to the driver directly,
in the transaction SQLAlchemy began, once the types SQLite lacks are converted a column at a
time (u128/u64 to the hex text of `tbledger.store.types`, datetimes to SQLAlchemy's text):
SQLAlchemy's per-value type processing cost more than SQLite itself.

Every connection is set up for a money log: foreign keys on; WAL journal with
``synchronous=FULL`` so a commit is on disk before the intent is acknowledged (the engine must
never see a transfer the store could lose); a busy timeout instead of immediate "database is
locked" errors; and transactions begun by SQLAlchemy with an explicit ``BEGIN`` (the driver's own
implicit transactions would leave reads and DDL outside them). Only one writer runs at a time, so
audit seqs are assigned in commit order; within a process, calls take turns on one pooled
connection rather than contending for SQLite's lock. An in-memory database (``sqlite://``) lives in
one connection shared by every call; the `Store` serialises calls on it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, pool
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tbledger.errors import ConfigurationError, InvariantViolationError, StoreUnavailableError
from tbledger.limits import STORE_BATCH_ROWS_MAX
from tbledger.store.backend import StoreOptions
from tbledger.store.rows import EVENT_COLUMNS, Columns
from tbledger.store.tables import audit_events
from tbledger.store.types import U64, U128, UtcDateTime

__all__ = ["SqliteBackend"]


class SqliteBackend:
    """SQLite through aiosqlite; a file, or memory for ``sqlite://``."""

    name = "sqlite"
    # A direct insert is one transaction of a few driver calls, not SQLAlchemy's dozen
    # (begin, statements, cursors, commit): it serves batches of every size.
    direct_rows_max = STORE_BATCH_ROWS_MAX

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
            # One connection, awaited in turn: SQLite has one writer, and a second connection of
            # this process waiting for the write lock would sleep in SQLite's busy handler (1 to
            # 100 ms naps), not in the event loop's queue. Readers lose little: every statement
            # is in-process and short.
            engine = create_async_engine(
                self._url,
                pool_size=1,
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
        self, conn: AsyncConnection, table: sa.Table, names: Sequence[str], columns: Columns
    ) -> None:
        await _insert(conn, table, names, columns)

    async def insert_direct(
        self,
        conn: AsyncConnection,
        rows: tuple[sa.Table, Sequence[str], Columns] | None,
        events: Columns,
    ) -> None:
        # Each call to the driver is a hand-off to its thread and back; SQLAlchemy's begin,
        # statements, cursors and commit made a dozen per transaction, measured at about a
        # millisecond of CPU per commit. Here: BEGIN, one executemany per table, COMMIT.
        if conn.in_transaction():
            raise InvariantViolationError("a direct insert commits on its own: no transaction")
        statements = [] if rows is None else [_prepared(conn.dialect, *rows)]
        statements.append(_prepared(conn.dialect, audit_events, EVENT_COLUMNS, events))
        driver = (await conn.get_raw_connection()).driver_connection
        if driver is None or driver.in_transaction:
            raise InvariantViolationError("the store's connection is not idle")
        await driver.execute("BEGIN")
        try:
            for statement, values in statements:
                await driver.executemany(statement, values)
            await driver.commit()
        except BaseException:
            await driver.rollback()
            raise

    async def lock_audit(self, conn: AsyncConnection) -> None:
        # Nothing to take: this process's calls take turns on its one connection, so no other
        # append of this process runs inside the transaction. An append by another process
        # between this transaction's first read and its first write makes that write fail
        # (SQLITE_BUSY_SNAPSHOT: WAL refuses to write on a stale read), never go through on it.
        return None

    async def insert_events(
        self, conn: AsyncConnection, columns: Columns, *, returning: bool
    ) -> list[int]:
        await _insert(conn, audit_events, EVENT_COLUMNS, columns)
        if not returning:
            return []
        count = len(columns[0])
        # This transaction holds SQLite's only write lock since its first INSERT, so the last
        # `count` seqs up to last_insert_rowid() are exactly the rows just inserted.
        seq = audit_events.c.seq
        query = (
            sa.select(seq)
            .where(seq <= sa.func.last_insert_rowid())
            .order_by(seq.desc())
            .limit(count)
        )
        seqs = sorted((await conn.execute(query)).scalars().all())
        if len(seqs) != count:
            raise InvariantViolationError(f"found {len(seqs)} audit seqs for {count} events")
        return [int(s) for s in seqs]


async def _insert(
    conn: AsyncConnection, table: sa.Table, names: Sequence[str], columns: Columns
) -> None:
    statement, values = _prepared(conn.dialect, table, names, columns)
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None or not driver.in_transaction:
        # The "begin" listener above sends BEGIN when SQLAlchemy begins; never write outside it.
        raise InvariantViolationError("the store's batch write is not in a transaction")
    cursor = await driver.executemany(statement, values)
    await cursor.close()


def _prepared(
    dialect: Dialect, table: sa.Table, names: Sequence[str], columns: Columns
) -> tuple[str, Iterator[tuple[Any, ...]]]:
    """The INSERT statement for `names` of `table`, and its rows as SQLite stores them."""
    converted = [
        values if convert is None else convert(values)
        for convert, values in zip(
            (_converter(table.c[name], dialect) for name in names), columns, strict=True
        )
    ]
    quote = dialect.identifier_preparer.quote
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    return statement, zip(*converted, strict=True)


_Converter = Callable[[Sequence[Any]], Sequence[Any]]


def _converter(column: sa.Column[Any], dialect: Dialect) -> _Converter | None:
    """How a column of validated Python values becomes what SQLite stores, or None: as is."""
    kind = column.type
    if isinstance(kind, U128 | U64):
        # The canonical fixed-width hex of tbledger.store.types (checked by its reader).
        spell = f"0x%0{kind.bits // 4}x".__mod__
        return lambda values: _spelled(values, spell)
    if isinstance(kind, UtcDateTime):
        # SQLAlchemy's own text for the value.
        process = kind.bind_processor(dialect)
        if process is None:
            raise InvariantViolationError("UtcDateTime has no bind processor for SQLite")
        return lambda values: _spelled(values, process)
    return None


def _spelled(values: Sequence[Any], spell: Callable[[Any], Any]) -> list[Any]:
    distinct = set(values)
    if len(distinct) * 4 > len(values):
        if None in distinct:
            return [None if value is None else spell(value) for value in values]
        return list(map(spell, values))
    # Most columns of a batch hold a few distinct values (zeros, the batch's time): spell each
    # once. (A set merges True into 1, but rows.py lets exact ints through only.)
    spelled = {value: None if value is None else spell(value) for value in distinct}
    return list(map(spelled.__getitem__, values))
