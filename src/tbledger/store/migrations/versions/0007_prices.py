"""Prices come from the platform: operator exchange rates, issued quotes, merchant fee schedules.

``exchange_rates`` and ``merchant_fees`` are append-only, as the audit log is: a new row
supersedes the older one for its pair or merchant, and the history of what the platform charged
stays. The application role gets SELECT and INSERT on them, never UPDATE, DELETE or TRUNCATE, and
the statement triggers of revision 0001 (PostgreSQL: ``tbledger_refuse_change``; SQLite:
RAISE(ABORT)) refuse changes for every role. ``exchange_quotes`` is written by the service
alone: a quote is inserted when issued and updated once, when an exchange spends it, so the role
gets SELECT, INSERT and UPDATE there, never DELETE or TRUNCATE.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from tbledger.store.postgres import check_identifier
from tbledger.store.types import U128, UtcDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPEND_ONLY_TABLES = ("exchange_rates", "merchant_fees")


def _seq() -> sa.Column[int]:
    return sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.Identity(always=True),
        primary_key=True,
    )


def upgrade() -> None:
    op.create_table(
        "exchange_rates",
        _seq(),
        sa.Column("source_ledger", sa.BigInteger(), nullable=False),
        sa.Column("target_ledger", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.String(96), nullable=False),
        sa.Column("valid_from", UtcDateTime(), nullable=False),
        sa.Column("valid_until", UtcDateTime(), nullable=True),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("seq", name="pk_exchange_rates"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_exchange_rates_source_ledger_target_ledger_seq",
        "exchange_rates",
        ["source_ledger", "target_ledger", "seq"],
    )
    op.create_table(
        "merchant_fees",
        _seq(),
        sa.Column("account_id", U128(), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column("fee_fixed_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_payer", sa.String(16), nullable=False),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("seq", name="pk_merchant_fees"),
        sa.CheckConstraint("fee_bps >= 0 AND fee_bps <= 10000", name="ck_merchant_fees_fee_bps"),
        sa.CheckConstraint("fee_fixed_minor >= 0", name="ck_merchant_fees_fee_fixed_minor"),
        sa.CheckConstraint("fee_payer IN ('payer', 'merchant')", name="ck_merchant_fees_fee_payer"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_merchant_fees_account_id_seq", "merchant_fees", ["account_id", "seq"])
    op.create_table(
        "exchange_quotes",
        sa.Column("id", U128(), primary_key=True, autoincrement=False),
        sa.Column("owner_id", sa.String(255), nullable=True),
        sa.Column("key_id", sa.String(255), nullable=False),
        sa.Column("source_ledger", sa.BigInteger(), nullable=False),
        sa.Column("target_ledger", sa.BigInteger(), nullable=False),
        sa.Column("amount", U128(), nullable=False),
        sa.Column("rate", sa.String(96), nullable=False),
        sa.Column("rate_seq", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("spent_at", UtcDateTime(), nullable=True),
        sa.Column("spent_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_exchange_quotes"),
    )
    op.create_index(
        "ux_exchange_quotes_spent_by",
        "exchange_quotes",
        ["spent_by"],
        unique=True,
        postgresql_where=sa.text("spent_by IS NOT NULL"),
        sqlite_where=sa.text("spent_by IS NOT NULL"),
    )

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for table in _APPEND_ONLY_TABLES:
            # The function is revision 0001's: one rule, one message, for every append-only table.
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON "
                f"{table} FOR EACH STATEMENT EXECUTE FUNCTION tbledger_refuse_change()"
            )
        role = check_identifier("app role", str(context.config.attributes["app_role"]))
        op.execute(f'GRANT SELECT, INSERT ON exchange_rates, merchant_fees TO "{role}"')
        op.execute(
            f'REVOKE UPDATE, DELETE, TRUNCATE ON exchange_rates, merchant_fees FROM "{role}"'
        )
        op.execute(f'GRANT SELECT, INSERT, UPDATE ON exchange_quotes TO "{role}"')
        op.execute(f'REVOKE DELETE, TRUNCATE ON exchange_quotes FROM "{role}"')
    elif dialect == "sqlite":
        for table in _APPEND_ONLY_TABLES:
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused'); END"
                )


def downgrade() -> None:
    # Dropping the tables drops their triggers and grants.
    op.drop_table("exchange_quotes")
    op.drop_table("merchant_fees")
    op.drop_table("exchange_rates")
