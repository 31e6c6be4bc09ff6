"""Indexes for discovery: accounts by type and ledger, transfers by the caller's metadata.

Accounts are listed by type, ledger, status and owner, a page at a time in id order; the
platform's own accounts (treasury, fee pool, liquidity) are a handful among millions of customer
accounts, so a listing by type reads ``ix_accounts_account_type_ledger_id`` rather than every
account (both databases).

Transfers are found by key/value pairs of their metadata. ``transfers.metadata`` has been JSONB
on PostgreSQL since revision 0001 (JSON text on SQLite), so no column changes type and no row is
rewritten: ``transfers`` stays append-only and its guard (``transfers_append_only``, a statement
trigger refusing UPDATE, DELETE and TRUNCATE) is not touched, unlike revision 0006, which had to
lift it to carry facts out of rows. What is added is a GIN index of the documents with the
``jsonb_path_ops`` operator class, which serves ``metadata @> '{"key": "value"}'``. SQLite has no
GIN index; its lookups read each candidate's document (``json_each``), which suits the embedded
store's sizes.

Building the GIN index takes a lock that holds back writes to ``transfers`` while it runs. On a
large table, build it beforehand without that lock (``CREATE INDEX CONCURRENTLY
ix_transfers_metadata ON transfers USING gin (metadata jsonb_path_ops)``); this revision keeps an
index of that name that is already there. The application role needs no new grant: it reads the
same tables.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_accounts_account_type_ledger_id", "accounts", ["account_type", "ledger", "id"]
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_transfers_metadata ON transfers "
            "USING gin (metadata jsonb_path_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_transfers_metadata")
    op.drop_index("ix_accounts_account_type_ledger_id", table_name="accounts")
