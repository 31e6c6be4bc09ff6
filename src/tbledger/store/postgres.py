"""The store's PostgreSQL backend: asyncpg, one INSERT per batch, and commit-ordered audit seqs.

A batch of any size is one statement: ``INSERT ... SELECT ... FROM unnest($1::numeric[], ...)``
sends one array per column, so the statement has as many parameters as the table has columns
(not rows times columns, which would pass asyncpg's 32,767-argument limit at about 1,600 rows)
and PostgreSQL parses and plans it once. Audit events take a transaction-scoped advisory lock
before they are inserted: identity values are handed out at insert time but become visible at
commit, so without it a reader of the tail could see seq 11 commit before seq 10 and move its
cursor past 10 forever. The lock makes seq order equal commit order; it is held only for the
events' INSERT and the commit. Each connection sets its schema (``search_path``), role and
application name in the startup packet, so no extra round trip is spent on them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tbledger.errors import ConfigurationError, InvariantViolationError
from tbledger.store.backend import Row, StoreOptions
from tbledger.store.tables import audit_events

__all__ = ["PostgresBackend", "check_identifier"]

# Lower-case SQL identifiers only: they are interpolated into SET ROLE / GRANT statements (quoted
# as well), and a deployment's schema or role name has no reason to need anything else.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# The lock that orders audit appends: keyed on the table's oid so two schemas in one database
# (tests, tenants) do not wait for each other.
_AUDIT_APPEND_LOCK = sa.text(
    "SELECT pg_advisory_xact_lock(CAST(CAST(CAST('audit_events' AS regclass) AS oid) AS bigint))"
)


def check_identifier(kind: str, name: str) -> str:
    """Return `name` if it is a plain lower-case SQL identifier, else raise ConfigurationError."""
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigurationError(
            f"{kind} {name!r} must be a lower-case SQL identifier ([a-z_][a-z0-9_]*, 63 chars max)"
        )
    return name


class PostgresBackend:
    """PostgreSQL through asyncpg."""

    name = "postgresql"
    single_connection = False

    def __init__(self, url: URL, options: StoreOptions) -> None:
        if options.schema is not None:
            check_identifier("schema", options.schema)
        if options.role is not None:
            check_identifier("role", options.role)
        self._url = url.set(drivername="postgresql+asyncpg")
        self._options = options

    def create_engine(self) -> AsyncEngine:
        options = self._options
        server_settings = {"application_name": "tbledger"}
        if options.schema is not None:
            server_settings["search_path"] = options.schema
        if options.role is not None:
            server_settings["role"] = options.role
        return create_async_engine(
            self._url,
            pool_size=options.pool_connections_max,
            max_overflow=0,
            # Waiting for a free connection is waiting for other calls' statements.
            pool_timeout=options.statement_timeout_s,
            # A connection broken by a server restart or failover is replaced before use, so a
            # healthy server never surfaces as StoreUnavailableError.
            pool_pre_ping=True,
            connect_args={
                "timeout": options.connect_timeout_s,
                "command_timeout": options.statement_timeout_s,
                "server_settings": server_settings,
            },
        )

    async def insert_rows(
        self, conn: AsyncConnection, table: sa.Table, rows: Sequence[Row]
    ) -> None:
        await conn.execute(_unnest_insert(table, rows))

    async def insert_events(self, conn: AsyncConnection, rows: Sequence[Row]) -> list[int]:
        await conn.execute(_AUDIT_APPEND_LOCK)
        statement = _unnest_insert(audit_events, rows).returning(audit_events.c.seq)
        seqs = sorted((await conn.execute(statement)).scalars().all())
        # The rows are selected in input order (ORDER BY ordinality), and identity values are
        # drawn as rows are inserted, so the ascending seqs belong to the rows in input order.
        if len(seqs) != len(rows):
            raise InvariantViolationError(f"inserted {len(seqs)} audit events for {len(rows)} rows")
        return [int(seq) for seq in seqs]


def _unnest_insert(table: sa.Table, rows: Sequence[Row]) -> sa.Insert:
    names = list(rows[0].keys())
    arrays: list[Any] = [
        sa.bindparam(
            f"a_{name}",
            value=[row[name] for row in rows],
            type_=postgresql.ARRAY(table.c[name].type),
        )
        for name in names
    ]
    source = (
        sa.func.unnest(*arrays).table_valued(*names, with_ordinality="ordinality").render_derived()
    )
    select = sa.select(*[source.c[name] for name in names]).order_by(source.c.ordinality)
    return sa.insert(table).from_select(names, select)
