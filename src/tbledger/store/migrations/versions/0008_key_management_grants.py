"""The application role manages API keys with no more than that needs, and reads the version.

Key management as the service's own database user (create, list, revoke: ``tbledger keys``)
needs SELECT and INSERT on ``api_keys`` and UPDATE of ``revoked_at`` alone; 0003 granted UPDATE
on every column, so a leaked service password could rewrite a key's secret hash, scopes or owner.
It is narrowed to the one column. The role may also read ``alembic_version``, so a command that
does not migrate can tell that the schema is not at head and say to run ``tbledger db upgrade``
as the tables' owner, rather than fail on a missing column.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import context, op

from tbledger.store.postgres import check_identifier

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    role = _role()
    op.execute(f'REVOKE UPDATE ON api_keys FROM "{role}"')
    op.execute(f'GRANT UPDATE (revoked_at) ON api_keys TO "{role}"')
    op.execute(f'GRANT SELECT ON alembic_version TO "{role}"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    role = _role()
    op.execute(f'REVOKE SELECT ON alembic_version FROM "{role}"')
    op.execute(f'REVOKE UPDATE (revoked_at) ON api_keys FROM "{role}"')
    op.execute(f'GRANT UPDATE ON api_keys TO "{role}"')


def _role() -> str:
    return check_identifier("app role", str(context.config.attributes["app_role"]))
