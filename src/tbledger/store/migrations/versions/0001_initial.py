"""The initial store: accounts, transfer intents, the append-only audit log, and who may write.

The tables are spelled out here rather than created from ``tbledger.store.tables`` so that this
revision keeps meaning the same schema when the tables module moves on (a test checks that the
head of the migrations and the tables module agree). Append-only is enforced by the database,
not by the application's good manners:

* PostgreSQL: the application role (created NOLOGIN if it does not exist; a deployment grants it
  to its login user) gets SELECT and INSERT on all three tables and UPDATE on ``accounts`` only,
  never UPDATE, DELETE or TRUNCATE on ``transfers`` and ``audit_events``. Statement triggers also
  refuse UPDATE, DELETE and TRUNCATE there for every role, the tables' owner included, so a
  mistaken maintenance statement fails too; removing them is a deliberate, visible migration.
* SQLite has no roles: triggers RAISE(ABORT) on any UPDATE or DELETE of those two tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from tbledger.store.postgres import check_identifier
from tbledger.store.types import U64, U128, JsonDocument, UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPEND_ONLY_TABLES = ("transfers", "audit_events")
_STATUSES = ("active", "frozen", "closed")
_KINDS = (
    "submitted",
    "pending",
    "posted",
    "voided",
    "expired",
    "failed",
    "outcome_unknown",
    "account_created",
    "account_status_changed",
)


def _in_list(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", U128(), primary_key=True, autoincrement=False),
        sa.Column("account_type", sa.String(255), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=True),
        sa.Column("ledger", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="active"),
        sa.Column("freeze_transfer_id", U128(), nullable=True),
        sa.Column("metadata", JsonDocument, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.CheckConstraint(_in_list("status", _STATUSES), name="ck_accounts_status"),
        sa.CheckConstraint(
            "(status = 'active') = (freeze_transfer_id IS NULL)",
            name="ck_accounts_freeze_transfer",
        ),
    )
    op.create_index("ix_accounts_owner_id", "accounts", ["owner_id"])
    op.create_index(
        "ux_accounts_name",
        "accounts",
        ["name"],
        unique=True,
        postgresql_where=sa.text("name IS NOT NULL"),
        sqlite_where=sa.text("name IS NOT NULL"),
    )

    op.create_table(
        "transfers",
        sa.Column("id", U128(), primary_key=True, autoincrement=False),
        sa.Column("debit_account_id", U128(), nullable=False),
        sa.Column("credit_account_id", U128(), nullable=False),
        sa.Column("amount", U128(), nullable=False),
        sa.Column("pending_id", U128(), nullable=False),
        sa.Column("user_data_128", U128(), nullable=False),
        sa.Column("user_data_64", U64(), nullable=False),
        sa.Column("user_data_32", sa.BigInteger(), nullable=False),
        sa.Column("timeout", sa.BigInteger(), nullable=False),
        sa.Column("ledger", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("timestamp", U64(), nullable=False),
        sa.Column("payment_id", sa.String(255), nullable=True),
        sa.Column("event_id", sa.String(255), nullable=True),
        sa.Column("chain_tx_hash", sa.String(255), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("metadata", JsonDocument, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_transfers"),
    )
    op.create_index("ix_transfers_event_id", "transfers", ["event_id"])
    op.create_index("ix_transfers_payment_id", "transfers", ["payment_id"])
    op.create_index(
        "ux_transfers_idempotency_key",
        "transfers",
        ["idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    )

    op.create_table(
        "audit_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=True),
            primary_key=True,
        ),
        sa.Column("transfer_id", U128(), nullable=True),
        sa.Column("account_id", U128(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(64), nullable=True),
        sa.Column("engine_timestamp", U64(), nullable=True),
        sa.Column("detail", JsonDocument, nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sa.ForeignKeyConstraint(
            ["transfer_id"], ["transfers.id"], name="fk_audit_events_transfer_id"
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_audit_events_account_id"),
        sa.CheckConstraint(_in_list("kind", _KINDS), name="ck_audit_events_kind"),
        sa.CheckConstraint(
            "transfer_id IS NOT NULL OR account_id IS NOT NULL", name="ck_audit_events_subject"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_events_transfer_id_seq", "audit_events", ["transfer_id", "seq"])
    op.create_index("ix_audit_events_account_id", "audit_events", ["account_id"])

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        _postgres_append_only()
        _postgres_app_role(check_identifier("app role", str(context.config.attributes["app_role"])))
    elif dialect == "sqlite":
        _sqlite_append_only()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    # Dropping the tables drops their triggers and grants; the role is shared by every database
    # of the cluster and stays.
    op.drop_table("audit_events")
    op.drop_table("transfers")
    op.drop_table("accounts")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS tbledger_refuse_change()")


def _postgres_append_only() -> None:
    op.execute(
        """
        CREATE FUNCTION tbledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    for table in _APPEND_ONLY_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION tbledger_refuse_change()"
        )


def _postgres_app_role(role: str) -> None:
    # The role belongs to the cluster, not this database: it may exist from another database or
    # an earlier run, and two migrations may race to create it. Only a missing role needs the
    # CREATEROLE privilege.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{role}') THEN
                BEGIN
                    CREATE ROLE "{role}" NOLOGIN;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    NULL;
                END;
            END IF;
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO "{role}"', current_schema());
        END
        $$
        """
    )
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON accounts TO "{role}"')
    op.execute(f'GRANT SELECT, INSERT ON transfers, audit_events TO "{role}"')
    # Explicit, so a default privilege of the schema cannot hand them out.
    op.execute(f'REVOKE UPDATE, DELETE, TRUNCATE ON transfers, audit_events FROM "{role}"')
    op.execute(f'REVOKE DELETE, TRUNCATE ON accounts FROM "{role}"')


def _sqlite_append_only() -> None:
    for table in _APPEND_ONLY_TABLES:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END"
            )
