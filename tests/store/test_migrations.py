"""The packaged Alembic migrations: they apply cleanly, match the tables, and set up the guards."""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from tbledger.errors import ConfigurationError, StoreError, StoreUnavailableError
from tbledger.store import DEFAULT_APP_ROLE, StoreOptions, downgrade, upgrade, upgrade_sync
from tbledger.store.connect import open_backend
from tbledger.store.migrate import alembic_config
from tbledger.store.tables import accounts, audit_events, metadata, transfers
from tbledger.store.types import U64, U128, JsonDocument
from tests.store.conftest import BACKENDS, sqlite_url
from tests.support.database import SessionDatabase

TABLES = {
    "accounts",
    "change_events",
    "account_balances",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_leases",
    "transfers",
    "audit_events",
    "api_keys",
    "exchange_rates",
    "merchant_fees",
    "exchange_quotes",
}
AUDIT_FOREIGN_KEYS = ["fk_audit_events_account_id", "fk_audit_events_transfer_id"]
TRANSFER_ROW: dict[str, Any] = {
    "id": 1,
    "debit_account_id": 2,
    "credit_account_id": 3,
    "amount": 10,
    "pending_id": 0,
    "user_data_128": 0,
    "user_data_64": 0,
    "user_data_32": 0,
    "timeout": 0,
    "ledger": 1,
    "code": 1,
    "flags": 0,
    "timestamp": 0,
    "metadata": {},
}
ACCOUNT_ROW: dict[str, Any] = {
    "id": 2,
    "account_type": "user",
    "ledger": 1,
    "code": 1,
    "metadata": {},
}


@dataclass
class Target:
    """An empty database (SQLite file, or a PostgreSQL schema not yet created)."""

    kind: str
    url: str
    schema: str | None
    engine: AsyncEngine

    async def upgrade(self, **kwargs: Any) -> None:
        await upgrade(self.url, schema=self.schema, **kwargs)

    async def tables(self) -> set[str]:
        async with self.engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))

    async def revision(self) -> str | None:
        async with self.engine.connect() as conn:
            return await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )


@pytest.fixture(params=BACKENDS)
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "sqlite":
        url, schema = sqlite_url(tmp_path / "migrate.db"), None
    else:
        database: SessionDatabase = request.getfixturevalue("postgres_database")
        url, schema = database.url, database.new_schema()
    engine = open_backend(url, StoreOptions(schema=schema)).create_engine()
    try:
        yield Target(kind=request.param, url=url, schema=schema, engine=engine)
    finally:
        await engine.dispose()


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


async def test_upgrade_creates_the_tables_at_head(target: Target) -> None:
    await target.upgrade()
    assert await target.tables() == TABLES | {"alembic_version"}
    assert await target.revision() == head()


# SQLite cannot reflect expression indexes, and the GIN index of transfers' metadata is one (it
# is PostgreSQL's alone, and absent there); alembic says so on every comparison.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
async def test_migrated_schema_matches_the_tables_module(target: Target) -> None:
    await target.upgrade()

    def diff(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with target.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_upgrade_twice_is_a_no_op(target: Target) -> None:
    await target.upgrade()
    await target.upgrade()
    assert await target.revision() == head()


async def test_downgrade_to_base_and_up_again(target: Target) -> None:
    await target.upgrade()
    await downgrade(target.url, schema=target.schema)
    assert await target.tables() == {"alembic_version"}
    assert await target.revision() is None
    await target.upgrade()
    assert await target.tables() == TABLES | {"alembic_version"}


async def foreign_keys(target: Target) -> list[str]:
    async with target.engine.connect() as conn:
        found = await conn.run_sync(lambda c: sa.inspect(c).get_foreign_keys("audit_events"))
    return sorted(str(fk["name"]) for fk in found)


async def insert_event(target: Target, **values: Any) -> int:
    async with target.engine.begin() as conn:
        statement = audit_events.insert().values(detail={}, **values).returning(audit_events.c.seq)
        return int((await conn.execute(statement)).scalar_one())


async def test_0004_drops_the_audit_foreign_keys_and_its_downgrade_restores_them(
    target: Target,
) -> None:
    await target.upgrade(revision="0003")
    assert await foreign_keys(target) == AUDIT_FOREIGN_KEYS
    async with target.engine.begin() as conn:
        await conn.execute(transfers.insert().values(TRANSFER_ROW))
        await conn.execute(accounts.insert().values(ACCOUNT_ROW))
    first = await insert_event(target, transfer_id=1, kind="submitted")
    await insert_event(target, account_id=2, kind="account_created")
    if target.kind == "sqlite":
        # A seq handed out above the last row (never, since events are not deleted, but the
        # counter is what AUTOINCREMENT promises) must survive the table's rebuild.
        async with target.engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE sqlite_sequence SET seq = 1000 WHERE name = 'audit_events'")
            )

    await target.upgrade()
    assert await foreign_keys(target) == []
    orphan = await insert_event(target, transfer_id=99, kind="posted")
    assert orphan == (1001 if target.kind == "sqlite" else first + 2)
    async with target.engine.connect() as conn:
        seqs = (await conn.execute(sa.select(audit_events.c.seq))).scalars().all()
    assert sorted(seqs) == [first, first + 1, orphan]
    # SQLite rebuilt the table: its CHECK constraints and append-only triggers are still there.
    with pytest.raises(sa.exc.IntegrityError):
        await insert_event(target, transfer_id=1, kind="bogus")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with target.engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM audit_events"))

    # Back with the foreign keys: every existing event is checked, so the orphan refuses it.
    with pytest.raises(StoreError):
        await downgrade(target.url, "0003", schema=target.schema)
    assert await target.revision() == head()
    assert await foreign_keys(target) == []
    async with target.engine.begin() as conn:
        await conn.execute(transfers.insert().values({**TRANSFER_ROW, "id": 99}))
    await downgrade(target.url, "0003", schema=target.schema)
    assert await target.revision() == "0003"
    assert await foreign_keys(target) == AUDIT_FOREIGN_KEYS
    with pytest.raises(sa.exc.IntegrityError):
        await insert_event(target, transfer_id=100, kind="posted")


PARTIAL_INDEXES = {
    "ix_audit_events_account_id": ("audit_events", "account_id"),
    "ix_transfers_chain_id": ("transfers", "chain_id"),
    "ix_transfers_event_id": ("transfers", "event_id"),
    "ix_transfers_payment_id": ("transfers", "payment_id"),
}


async def index_definitions(target: Target) -> dict[str, str]:
    """Each index of PARTIAL_INDEXES with its SQL definition, as the database reports it."""
    names = list(PARTIAL_INDEXES)
    async with target.engine.connect() as conn:
        if target.kind == "sqlite":
            query = sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
            rows = (await conn.execute(query)).all()
        else:
            query = sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :schema")
            rows = (await conn.execute(query, {"schema": target.schema})).all()
    return {str(name): str(sql) for name, sql in rows if name in names}


async def test_0005_makes_the_optional_column_indexes_partial(target: Target) -> None:
    await target.upgrade(revision="0004")
    before = await index_definitions(target)
    assert sorted(before) == sorted(PARTIAL_INDEXES)
    assert not any("WHERE" in sql.upper() for sql in before.values())
    await target.upgrade()
    after = await index_definitions(target)
    assert sorted(after) == sorted(PARTIAL_INDEXES)
    for name, (_, column) in PARTIAL_INDEXES.items():
        assert "WHERE" in after[name].upper() and "NOT NULL" in after[name].upper(), after[name]
        assert column in after[name]
    await downgrade(target.url, "0004", schema=target.schema)
    assert not any("WHERE" in sql.upper() for sql in (await index_definitions(target)).values())


async def test_sqlite_has_the_append_only_triggers(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "t.db")
    await upgrade(url)
    engine = open_backend(url).create_engine()
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
            )
            assert [r[0] for r in rows] == [
                "account_balances_no_delete",
                "account_balances_no_update",
                "audit_events_no_delete",
                "audit_events_no_update",
                "change_events_no_delete",
                "change_events_no_update",
                "exchange_rates_no_delete",
                "exchange_rates_no_update",
                "merchant_fees_no_delete",
                "merchant_fees_no_update",
                "transfers_no_delete",
                "transfers_no_update",
                "webhook_deliveries_no_delete",
                "webhook_deliveries_no_update",
            ]
    finally:
        await engine.dispose()


def test_upgrade_sync_works_without_an_event_loop(tmp_path: Path) -> None:
    upgrade_sync(sqlite_url(tmp_path / "sync.db"))
    assert (tmp_path / "sync.db").stat().st_size > 0


async def test_upgrade_of_an_unreachable_database_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError):
        await upgrade(sqlite_url(tmp_path / "missing-folder" / "x.db"))


@pytest.mark.parametrize("role", ["x'); DROP TABLE accounts;--", "UPPER", "", "1st", "a" * 64])
def test_app_role_must_be_a_plain_identifier(role: str) -> None:
    with pytest.raises(ConfigurationError):
        alembic_config(app_role=role)


# PostgreSQL: the application role and its grants.

PRIVILEGES = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"]
EXPECTED_GRANTS = {
    "accounts": {"SELECT", "INSERT", "UPDATE"},
    "transfers": {"SELECT", "INSERT"},
    "audit_events": {"SELECT", "INSERT"},
    "exchange_rates": {"SELECT", "INSERT"},
    "merchant_fees": {"SELECT", "INSERT"},
    "exchange_quotes": {"SELECT", "INSERT", "UPDATE"},
    # Keys are revoked (UPDATE of revoked_at alone, a column grant), never rewritten or deleted.
    "api_keys": {"SELECT", "INSERT"},
    # Endpoints are managed and leases taken and given up; the delivery log is append-only.
    "webhook_endpoints": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    "webhook_leases": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    "webhook_deliveries": {"SELECT", "INSERT"},
    # The change stream's events and balances are append-only.
    "change_events": {"SELECT", "INSERT"},
    "account_balances": {"SELECT", "INSERT"},
    # Read by commands that do not migrate, to tell a schema behind the migrations.
    "alembic_version": {"SELECT"},
}


async def grants(engine: AsyncEngine, role: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    async with engine.connect() as conn:
        for table in EXPECTED_GRANTS:
            found[table] = {
                privilege
                for privilege in PRIVILEGES
                if (
                    await conn.execute(
                        sa.text("SELECT has_table_privilege(:role, :table, :privilege)"),
                        {"role": role, "table": table, "privilege": privilege},
                    )
                ).scalar_one()
            }
    return found


@pytest.fixture
async def pg_target(postgres_database: SessionDatabase) -> AsyncIterator[Target]:
    schema = postgres_database.new_schema()
    engine = open_backend(postgres_database.url, StoreOptions(schema=schema)).create_engine()
    try:
        yield Target(kind="postgresql", url=postgres_database.url, schema=schema, engine=engine)
    finally:
        await engine.dispose()


async def test_app_role_is_nologin_with_exactly_the_store_grants(pg_target: Target) -> None:
    await pg_target.upgrade()
    async with pg_target.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = :r"),
                {"r": DEFAULT_APP_ROLE},
            )
        ).one()
        assert tuple(row) == (False, False)
        usage = await conn.execute(
            sa.text("SELECT has_schema_privilege(:r, current_schema(), 'USAGE')"),
            {"r": DEFAULT_APP_ROLE},
        )
        assert usage.scalar_one() is True
        updatable = await conn.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_keys' "
                "AND table_schema = current_schema() "
                "AND has_column_privilege(:r, 'api_keys', column_name, 'UPDATE')"
            ),
            {"r": DEFAULT_APP_ROLE},
        )
        assert updatable.scalars().all() == ["revoked_at"]
    assert await grants(pg_target.engine, DEFAULT_APP_ROLE) == EXPECTED_GRANTS


async def test_a_custom_role_is_created_once_and_granted_in_each_schema(
    postgres_database: SessionDatabase,
) -> None:
    role = f"tbledger_test_role_{secrets.token_hex(4)}"
    schemas = [postgres_database.new_schema() for _ in range(3)]
    admin = open_backend(postgres_database.url).create_engine()
    try:
        await asyncio.gather(
            *(upgrade(postgres_database.url, schema=s, app_role=role) for s in schemas)
        )
        for schema in schemas:
            options = StoreOptions(schema=schema)
            engine = open_backend(postgres_database.url, options).create_engine()
            try:
                assert await grants(engine, role) == EXPECTED_GRANTS
            finally:
                await engine.dispose()
    finally:
        async with admin.begin() as conn:
            for schema in schemas:
                await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            await conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        await admin.dispose()


async def test_processes_upgrading_one_schema_at_once_take_turns(pg_target: Target) -> None:
    # Two service processes starting together: the advisory lock in the migration environment
    # makes the second wait and then find the schema at head.
    async with pg_target.engine.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{pg_target.schema}"'))
    script = (
        "import sys; from tbledger.store import upgrade_sync; "
        "upgrade_sync(sys.argv[1], schema=sys.argv[2])"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            pg_target.url,
            str(pg_target.schema),
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for process in processes:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode == 0, stderr.decode()
    assert await pg_target.revision() == head()
    async with pg_target.engine.connect() as conn:
        versions = await conn.execute(sa.text("SELECT count(*) FROM alembic_version"))
        assert versions.scalar_one() == 1


async def test_migrations_in_one_process_take_turns(tmp_path: Path) -> None:
    urls = [sqlite_url(tmp_path / f"{n}.db") for n in range(4)]
    await asyncio.gather(*(upgrade(url) for url in urls))
    for url in urls:
        engine = open_backend(url).create_engine()
        try:
            async with engine.connect() as conn:
                names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
            assert names == TABLES | {"alembic_version"}
        finally:
            await engine.dispose()


async def test_0006_carries_the_services_facts_out_of_metadata(target: Target) -> None:
    """Facts only the service could have written move to `control`; a caller's look-alike does
    not, except for flow labels, which the flows also check against the transfer's shape."""
    await target.upgrade(revision="0005")
    old_transfers = sa.table(
        "transfers",
        *(sa.column(name, U128()) for name in ("id", "debit_account_id", "credit_account_id")),
        *(sa.column(name, U128()) for name in ("amount", "pending_id", "user_data_128")),
        *(sa.column(name, U64()) for name in ("user_data_64", "timestamp")),
        *(sa.column(name) for name in ("user_data_32", "timeout", "ledger", "code", "flags")),
        sa.column("metadata", JsonDocument),
    )
    old_accounts = sa.table(
        "accounts",
        sa.column("id", U128()),
        *(sa.column(name) for name in ("account_type", "ledger", "code", "name")),
        sa.column("metadata", JsonDocument),
    )
    freeze = {"purpose": "freeze", "account_id": "0x02"}
    label = {"flow": "settlement", "leg": "settlement", "memo": "m"}
    base = {k: v for k, v in TRANSFER_ROW.items() if k not in ("metadata", "id", "code")}
    payment = {"payment_id": "p-1", "payer": "0x02", "merchant": "0x03"}
    async with target.engine.begin() as conn:
        await conn.execute(
            sa.insert(old_transfers),
            [
                {**base, "id": 1, "code": 65535, "metadata": freeze},
                {**base, "id": 2, "code": 3, "metadata": freeze},  # a caller's look-alike
                {**base, "id": 3, "code": 30, "metadata": label},
            ],
        )
        await conn.execute(
            sa.insert(old_accounts),
            [
                {**ACCOUNT_ROW, "id": 10, "name": "refundable:p-1", "metadata": payment},
                {**ACCOUNT_ROW, "id": 11, "name": "system:treasury:1", "metadata": {"role": "t"}},
                {**ACCOUNT_ROW, "id": 12, "name": None, "metadata": {"role": "treasury"}},
            ],
        )
    await target.upgrade()
    async with target.engine.connect() as conn:
        moved = {
            r.id: (r.control, r.metadata)
            for r in await conn.execute(
                sa.select(transfers.c.id, transfers.c.control, transfers.c.metadata)
            )
        }
        found = {
            r.id: (r.control, r.flow_ref)
            for r in await conn.execute(
                sa.select(accounts.c.id, accounts.c.control, accounts.c.flow_ref)
            )
        }
    assert moved == {
        1: (freeze, freeze),
        2: ({}, freeze),
        3: (
            {"flow": "settlement", "leg": "settlement"},
            label,
        ),
    }
    assert found[10] == (
        {"kind": "refundable", "payment_id": "p-1", "payer": "0x02", "merchant": "0x03"},
        "p-1",
    )
    assert found[11] == ({"system": True, "role": "t"}, None)
    assert found[12] == ({}, None)
    # The carry-over lifted the transfers' append-only guard for itself only.
    with pytest.raises(sa.exc.DBAPIError):
        async with target.engine.begin() as conn:
            await conn.execute(sa.update(transfers).values(amount=11))


async def _index_names(target: Target) -> set[str]:
    async with target.engine.connect() as conn:
        if target.kind == "sqlite":
            query = sa.text("SELECT name FROM sqlite_master WHERE type = 'index'")
            return {str(r[0]) for r in await conn.execute(query)}
        query = sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = :schema")
        return {str(r[0]) for r in await conn.execute(query, {"schema": target.schema})}


async def test_0009_indexes_discovery_and_leaves_transfers_append_only(target: Target) -> None:
    """The listing indexes arrive without touching a row: transfers' metadata was JSONB already
    (so no column changes type and the append-only guard stays in place throughout)."""
    await target.upgrade(revision="0008")
    async with target.engine.begin() as conn:
        await conn.execute(
            transfers.insert().values({**TRANSFER_ROW, "metadata": {"order": "A-17"}})
        )
    assert not {"ix_accounts_account_type_ledger_id", "ix_transfers_metadata"} & (
        await _index_names(target)
    )
    await target.upgrade()
    added = {"ix_accounts_account_type_ledger_id"}
    if target.kind == "postgresql":
        added.add("ix_transfers_metadata")
        async with target.engine.connect() as conn:
            column_type = (
                await conn.execute(
                    sa.text(
                        "SELECT data_type FROM information_schema.columns WHERE table_schema = "
                        ":schema AND table_name = 'transfers' AND column_name = 'metadata'"
                    ),
                    {"schema": target.schema},
                )
            ).scalar_one()
        assert column_type == "jsonb"
    indexes = await _index_names(target)
    assert added <= indexes
    if target.kind == "sqlite":
        assert "ix_transfers_metadata" not in indexes  # SQLite reads the documents instead
    async with target.engine.connect() as conn:
        stored = (await conn.execute(sa.select(transfers.c.metadata))).scalars().all()
    assert stored == [{"order": "A-17"}]
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with target.engine.begin() as conn:
            await conn.execute(sa.update(transfers).values(amount=11))
    await downgrade(target.url, "0008", schema=target.schema)
    assert not added & await _index_names(target)
    await target.upgrade()
    assert added <= await _index_names(target)
