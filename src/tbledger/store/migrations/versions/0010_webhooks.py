"""Webhooks: endpoints with their cursors, an append-only delivery log, and deliverer leases.

Events leave the service from the append-only audit log, at least once (DESIGN §10). Each
endpoint keeps its own cursor, the last audit ``seq`` it is done with, advanced only after the
endpoint answered a 2xx. Every attempt is logged in ``webhook_deliveries``, which is append-only as
the audit log is: the statement triggers of revision 0001 (PostgreSQL: ``tbledger_refuse_change``;
SQLite: RAISE(ABORT)) refuse changes for every role. ``webhook_leases`` names the one process
delivering to an endpoint, so two servers never deliver one endpoint's events out of order.

The application role manages endpoints (SELECT, INSERT, UPDATE, DELETE: an endpoint is removed
when its owner deletes it; its delivery log stays), appends to the delivery log (SELECT, INSERT)
and takes, renews and gives up leases (SELECT, INSERT, UPDATE, DELETE). TRUNCATE is never granted.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from tbledger.store.postgres import check_identifier
from tbledger.store.types import JsonDocument, UtcDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=True),
        sa.Column("subscription", JsonDocument, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128), nullable=True),
        sa.Column("previous_secret_until", UtcDateTime(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(255), nullable=True),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_endpoints"),
    )
    op.create_index("ix_webhook_endpoints_owner_id", "webhook_endpoints", ["owner_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=True),
            primary_key=True,
        ),
        sa.Column("endpoint_id", sa.String(32), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(255), nullable=True),
        sa.Column("attempted_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_webhook_deliveries"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_id_seq", "webhook_deliveries", ["endpoint_id", "seq"]
    )
    op.create_table(
        "webhook_leases",
        sa.Column("endpoint_id", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("endpoint_id", name="pk_webhook_leases"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # The function is revision 0001's: one rule, one message, for every append-only table.
        op.execute(
            "CREATE TRIGGER webhook_deliveries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON webhook_deliveries FOR EACH STATEMENT EXECUTE FUNCTION tbledger_refuse_change()"
        )
        role = check_identifier("app role", str(context.config.attributes["app_role"]))
        op.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_endpoints, webhook_leases TO "{role}"'
        )
        op.execute(f'REVOKE TRUNCATE ON webhook_endpoints, webhook_leases FROM "{role}"')
        op.execute(f'GRANT SELECT, INSERT ON webhook_deliveries TO "{role}"')
        op.execute(f'REVOKE UPDATE, DELETE, TRUNCATE ON webhook_deliveries FROM "{role}"')
    elif dialect == "sqlite":
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER webhook_deliveries_no_{operation.lower()} BEFORE {operation} "
                f"ON webhook_deliveries BEGIN SELECT RAISE(ABORT, "
                f"'webhook_deliveries is append-only: {operation} refused'); END"
            )


def downgrade() -> None:
    # Dropping the tables drops their triggers and grants.
    op.drop_table("webhook_leases")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
