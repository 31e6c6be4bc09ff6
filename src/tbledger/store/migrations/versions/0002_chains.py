"""Transfer intents remember the atomic batch (linked chain) they belong to.

A linked chain must be resubmitted whole and in order: resubmitting only some members, or the
last member alone, would apply part of what the caller asked to be all-or-nothing. Recovery finds
a chain's members by ``chain_id`` (the id of the chain's first transfer) in ``chain_index`` order.
Both are NULL for a transfer outside any chain. Adding nullable columns is allowed by the
append-only triggers (they refuse UPDATE and DELETE of rows, not schema changes).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tbledger.store.types import U128

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transfers") as batch:
        batch.add_column(sa.Column("chain_id", U128(), nullable=True))
        batch.add_column(sa.Column("chain_index", sa.Integer(), nullable=True))
    op.create_index("ix_transfers_chain_id", "transfers", ["chain_id"])


def downgrade() -> None:
    op.drop_index("ix_transfers_chain_id", table_name="transfers")
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("chain_index")
        batch.drop_column("chain_id")
