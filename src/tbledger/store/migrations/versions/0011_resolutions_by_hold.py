"""Posts and voids by the hold they resolve: a partial index on ``transfers.pending_id``.

A hold with a timeout reads ``expired`` as soon as the engine's clock has passed it, without
waiting for a recovery pass (DESIGN §3). That is exact only once the engine is known to hold
none of the hold's posts or voids: one applied before the expiry instant, whose outcome is not
recorded yet (a deadline, a crash), means the hold was resolved, not expired. So the reader
lists the posts and voids ever persisted for the hold and looks them up in the engine. The index
holds only posts and voids (flags 4 and 8), so other transfers pay nothing for it, and
``transfers`` stays append-only: no row is rewritten and its guard is not touched.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    resolving = sa.text("(flags & 12) <> 0")
    op.create_index(
        "ix_transfers_resolved_pending_id",
        "transfers",
        ["pending_id"],
        postgresql_where=resolving,
        sqlite_where=resolving,
    )


def downgrade() -> None:
    op.drop_index("ix_transfers_resolved_pending_id", table_name="transfers")
