"""Run the store's Alembic migrations from code: ``await upgrade(url)`` or ``upgrade_sync(url)``.

The migration scripts ship inside the package (``tbledger.store:migrations``), so no
``alembic.ini`` is needed: the Alembic configuration is built here and the connection is handed
to the migration environment, which runs on the same async engine the store uses (asyncpg or
aiosqlite) through ``run_sync``. In PostgreSQL the initial migration also creates the
application role (`DEFAULT_APP_ROLE` unless told otherwise) and grants it exactly what the store
needs; migrations themselves run as the connecting user, who owns the tables.
"""

from __future__ import annotations

import asyncio
import threading

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tbledger.errors import StoreError
from tbledger.store.backend import StoreOptions, translate_error
from tbledger.store.connect import open_backend
from tbledger.store.postgres import check_identifier

__all__ = [
    "DEFAULT_APP_ROLE",
    "alembic_config",
    "check_at_head",
    "downgrade",
    "upgrade",
    "upgrade_engine",
    "upgrade_sync",
]

# The PostgreSQL role the application acts as: SELECT/INSERT everywhere, UPDATE on accounts only.
DEFAULT_APP_ROLE = "tbledger_app"

_MIGRATING = threading.Lock()
_MIGRATION_POLL_S = 0.01


def alembic_config(*, app_role: str | None = None) -> Config:
    """The Alembic configuration for the packaged migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", "tbledger.store:migrations")
    role = DEFAULT_APP_ROLE if app_role is None else app_role
    config.attributes["app_role"] = check_identifier("app role", role)
    return config


async def upgrade(
    url: str,
    *,
    revision: str = "head",
    schema: str | None = None,
    app_role: str | None = None,
) -> None:
    """Upgrade the store at `url` to `revision`; in PostgreSQL, inside `schema` if given.

    A missing schema is created. Safe to run concurrently: PostgreSQL migrations take an
    advisory lock, SQLite ones the database's write lock.
    """
    backend = open_backend(url, StoreOptions(schema=schema))
    engine = backend.create_engine()
    try:
        if schema is not None:
            await _create_schema(engine, schema)
        await upgrade_engine(engine, revision=revision, app_role=app_role)
    finally:
        await engine.dispose()


async def downgrade(
    url: str,
    revision: str = "base",
    *,
    schema: str | None = None,
    app_role: str | None = None,
) -> None:
    """Downgrade the store at `url` to `revision` (``"base"``: no tables). Data is lost."""
    engine = open_backend(url, StoreOptions(schema=schema)).create_engine()
    try:
        await _run(engine, "downgrade", revision, app_role)
    finally:
        await engine.dispose()


def upgrade_sync(
    url: str,
    *,
    revision: str = "head",
    schema: str | None = None,
    app_role: str | None = None,
) -> None:
    """`upgrade` for code without an event loop (a CLI, a deploy script)."""
    asyncio.run(upgrade(url, revision=revision, schema=schema, app_role=app_role))


async def upgrade_engine(
    engine: AsyncEngine, *, revision: str = "head", app_role: str | None = None
) -> None:
    """Upgrade the database behind an existing engine (the in-memory SQLite store's own)."""
    await _run(engine, "upgrade", revision, app_role)


async def check_at_head(engine: AsyncEngine) -> None:
    """Raise `StoreError` unless the database behind `engine` is at the latest migration.

    For code that must not migrate (it runs as the application role, which may not change the
    schema): a schema that is behind, missing or unreadable fails here, with what to do, rather
    than later on a missing table or column. Reads ``alembic_version`` only.
    """
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())

    def current(connection: Connection) -> set[str]:
        return set(MigrationContext.configure(connection).get_current_heads())

    upgrade_hint = "run `tbledger db upgrade` as the user that owns the tables"
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(current)
    except Exception as exc:
        translated = translate_error(exc)
        if translated is None:
            raise
        raise StoreError(
            f"cannot read the store's schema version ({translated}); {upgrade_hint}"
        ) from exc
    if found != heads:
        shown = ", ".join(sorted(found)) or "none (never migrated)"
        raise StoreError(
            f"the store's schema is at revision {shown}, not at the latest "
            f"({', '.join(sorted(heads))}); {upgrade_hint}"
        )


async def _run(engine: AsyncEngine, direction: str, revision: str, app_role: str | None) -> None:
    config = alembic_config(app_role=app_role)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        if direction == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)

    # Alembic keeps the running migration in a process-wide global (alembic.context), so two
    # migrations in one process must not interleave, even on different databases or event loops.
    # Poll rather than block: blocking would stop this event loop, which the running migration
    # needs to make progress.
    while not _MIGRATING.acquire(blocking=False):
        await asyncio.sleep(_MIGRATION_POLL_S)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run)
    except Exception as exc:
        translated = translate_error(exc)
        if translated is None:
            raise
        raise translated from exc
    finally:
        _MIGRATING.release()


async def _create_schema(engine: AsyncEngine, schema: str) -> None:
    check_identifier("schema", schema)
    try:
        async with engine.begin() as conn:
            # The identifier was checked above; it cannot be a bind parameter in DDL.
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    except Exception as exc:
        translated = translate_error(exc)
        if translated is None:
            raise
        raise translated from exc
