"""The audit trail is append-only in the database itself, not only in the application.

PostgreSQL: the application role may SELECT and INSERT everywhere and UPDATE accounts, but UPDATE,
DELETE and TRUNCATE on ``transfers`` and ``audit_events`` are "permission denied"; triggers refuse
them even for the tables' owner. SQLite: triggers abort any UPDATE or DELETE of those tables.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from tbledger.ids import new_id
from tbledger.model import BalanceRecord, ChangeRecord
from tbledger.store import DEFAULT_APP_ROLE, EventKind, NewAuditEvent, TransferIntent
from tests.store.conftest import StoreCase

APPEND_ONLY = ["transfers", "audit_events", "change_events", "account_balances"]
REFUSED = ["UPDATE {table} SET {column} = {column}", "DELETE FROM {table}"]
# A column each table has, to write an UPDATE that would change nothing if it were allowed.
COLUMN = {
    "transfers": "code",
    "audit_events": "kind",
    "accounts": "code",
    "change_events": "code",
    "account_balances": "flags",
}


async def seed(case: StoreCase) -> int:
    """One intent with an event, and one change event with its balances; returns the transfer
    id."""
    transfer_id = new_id()
    await case.store.insert_intents(
        [
            TransferIntent(
                id=transfer_id, debit_account_id=1, credit_account_id=2, amount=1, ledger=1, code=1
            )
        ]
    )
    await case.store.append_events([NewAuditEvent(kind=EventKind.POSTED, transfer_id=transfer_id)])
    balances = tuple(BalanceRecord(a, 7, "single_phase", 0, 1, 0, 0, 0) for a in (1, 2))
    await case.store.record_changes(
        [
            ChangeRecord(
                timestamp=7,
                type="single_phase",
                ledger=1,
                transfer_id=transfer_id,
                pending_id=0,
                amount=1,
                debit_account_id=1,
                credit_account_id=2,
                code=1,
                flags=0,
                transfer_timestamp=7,
                foreign=False,
                balances=(balances[0], balances[1]),
            )
        ]
    )
    return transfer_id


async def count(conn: AsyncConnection, table: str) -> int:
    return int((await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one())


@pytest.fixture
async def as_app_role(postgres_case: StoreCase) -> AsyncIterator[AsyncConnection]:
    """A PostgreSQL connection of the tables' owner that has done SET ROLE to the app role."""
    async with postgres_case.admin.connect() as conn:
        await conn.execute(sa.text(f"SET ROLE {DEFAULT_APP_ROLE}"))
        yield conn


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize("statement", REFUSED)
async def test_app_role_may_not_update_or_delete(
    postgres_case: StoreCase, as_app_role: AsyncConnection, table: str, statement: str
) -> None:
    await seed(postgres_case)
    current_user = await as_app_role.execute(sa.text("SELECT current_user"))
    assert current_user.scalar_one() == DEFAULT_APP_ROLE
    sql = statement.format(table=table, column=COLUMN[table])
    with pytest.raises(sa_exc.DBAPIError, match=f"permission denied for table {table}"):
        await as_app_role.execute(sa.text(sql))


@pytest.mark.parametrize("table", APPEND_ONLY)
async def test_app_role_may_not_truncate(
    postgres_case: StoreCase, as_app_role: AsyncConnection, table: str
) -> None:
    with pytest.raises(sa_exc.DBAPIError, match=f"permission denied for table {table}"):
        await as_app_role.execute(sa.text(f"TRUNCATE {table}"))


async def test_app_role_may_select_and_insert_and_update_accounts_only(
    postgres_case: StoreCase, as_app_role: AsyncConnection
) -> None:
    transfer_id = await seed(postgres_case)
    assert await count(as_app_role, "transfers") == 1
    assert await count(as_app_role, "audit_events") == 2
    await as_app_role.execute(
        sa.text("INSERT INTO audit_events (transfer_id, kind, detail) VALUES (:t, 'voided', '{}')"),
        {"t": transfer_id},
    )
    assert await count(as_app_role, "audit_events") == 3
    await as_app_role.execute(
        sa.text(
            "INSERT INTO accounts (id, account_type, ledger, code, metadata) "
            "VALUES (7, 'user', 1, 1, '{}')"
        )
    )
    await as_app_role.execute(sa.text("UPDATE accounts SET code = 2 WHERE id = 7"))
    with pytest.raises(sa_exc.DBAPIError, match="permission denied for table accounts"):
        await as_app_role.execute(sa.text("DELETE FROM accounts"))


async def test_app_role_may_not_touch_the_migration_table(
    postgres_case: StoreCase, as_app_role: AsyncConnection
) -> None:
    with pytest.raises(sa_exc.DBAPIError, match="permission denied"):
        await as_app_role.execute(sa.text("DELETE FROM alembic_version"))


@pytest.mark.parametrize("table", APPEND_ONLY)
@pytest.mark.parametrize("statement", REFUSED)
async def test_even_the_owner_cannot_update_or_delete(
    store_case: StoreCase, table: str, statement: str
) -> None:
    # PostgreSQL: the owner has every privilege, and the statement trigger still refuses.
    # SQLite: there are no privileges at all; the triggers are the rule.
    await seed(store_case)
    sql = statement.format(table=table, column=COLUMN[table])
    async with store_case.admin.connect() as conn:
        with pytest.raises(sa_exc.DBAPIError, match=f"{table} is append-only"):
            await conn.execute(sa.text(sql))
        await conn.rollback()
        assert await count(conn, table) >= 1


async def test_owner_cannot_truncate_in_postgres(postgres_case: StoreCase) -> None:
    # SQLite has no TRUNCATE; its DELETE without WHERE is refused above.
    async with postgres_case.admin.connect() as conn:
        for table in APPEND_ONLY:
            with pytest.raises(sa_exc.DBAPIError, match="append-only"):
                await conn.execute(sa.text(f"TRUNCATE {table} CASCADE"))
            await conn.rollback()


async def test_accounts_stay_updatable_for_status_changes(store_case: StoreCase) -> None:
    async with store_case.admin.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO accounts (id, account_type, ledger, code, metadata) "
                "VALUES (:id, 'user', 1, 1, '{}')"
            ),
            {"id": 7 if store_case.kind == "postgresql" else f"0x{7:032x}"},
        )
        result = await conn.execute(sa.text("UPDATE accounts SET code = 3"))
        assert result.rowcount == 1
