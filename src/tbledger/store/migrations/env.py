"""Alembic's migration environment for the store: runs the revisions on a given connection.

`tbledger.store.migrate` puts an open SQLAlchemy connection (from the store's own async engine,
through ``run_sync``) into ``config.attributes["connection"]`` and the PostgreSQL application
role into ``config.attributes["app_role"]``. Run from the ``alembic`` command line instead, the
database URL comes from ``-x url=...`` and the role from ``-x app_role=...``.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context

from tbledger.store.connect import open_backend
from tbledger.store.tables import metadata

# Serialises concurrent migrations of one PostgreSQL database (two processes starting at once).
_MIGRATION_LOCK_KEY = 0x7462_6C65_6467_6572  # "tbledger"


def _run_migrations(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters tables by copying them; Alembic's batch mode does that for later revisions.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        context.run_migrations()


def _run_from_command_line() -> None:
    arguments = context.get_x_argument(as_dictionary=True)
    url = arguments.get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the store URL: alembic -x url=postgresql://... upgrade head")
    context.config.attributes.setdefault("app_role", arguments.get("app_role", "tbledger_app"))

    async def run() -> None:
        engine = open_backend(url).create_engine()
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_run_migrations)
        finally:
            await engine.dispose()

    asyncio.run(run())


_connection = context.config.attributes.get("connection")
if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
if _connection is None:
    _run_from_command_line()
else:
    _run_migrations(_connection)
