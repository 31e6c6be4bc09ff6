"""API keys for the HTTP API: hashed secrets, scopes, an owner binding and a rate limit.

Keys are revoked, never deleted, so the application role may INSERT and UPDATE (to set
``revoked_at``) but not DELETE or TRUNCATE them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from tbledger.store.postgres import check_identifier
from tbledger.store.types import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("scopes", sa.String(255), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=True),
        sa.Column("rate_per_s", sa.Integer(), nullable=False),
        sa.Column("burst", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
    )
    if op.get_bind().dialect.name == "postgresql":
        role = check_identifier("app role", str(context.config.attributes["app_role"]))
        op.execute(f'GRANT SELECT, INSERT, UPDATE ON api_keys TO "{role}"')
        op.execute(f'REVOKE DELETE, TRUNCATE ON api_keys FROM "{role}"')


def downgrade() -> None:
    op.drop_table("api_keys")
