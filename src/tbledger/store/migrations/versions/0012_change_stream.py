"""The change stream: TigerBeetle's CDC events, balances after each, and foreign transfers.

``tbledger cdc`` consumes the events `tigerbeetle amqp` publishes (DESIGN §10). Each is recorded
once in ``change_events``, keyed by the event's timestamp and type (unique within a cluster), so
a message the broker delivers twice, or a replay of the stream from its start, records nothing
new; both accounts' balances right after the event go to ``account_balances``, the history of
every account, with or without the engine's ``history`` flag. Both tables are append-only as the
audit log is: the statement triggers of revision 0001 (PostgreSQL: ``tbledger_refuse_change``;
SQLite: RAISE(ABORT)) refuse changes for every role, and the application role may only SELECT
and INSERT.

A transfer the engine holds that no tbledger intent asked for (another client wrote it to the
cluster) is recorded in the audit log as a ``foreign_transfer`` event, a new kind: the audit log's
check of its kinds gains it. PostgreSQL replaces the constraint in place (a catalogue change; it
checks the existing rows, which all pass, and rewrites none). SQLite cannot alter a constraint;
its documented way of relaxing one is to edit the table's definition in the schema table
(https://www.sqlite.org/lang_altertable.html, "making other kinds of table schema changes"):
every existing row satisfies the wider check, so no row is touched and the append-only triggers
stay. The downgrade narrows the check again, and so fails while a foreign transfer is recorded.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from tbledger.store.postgres import check_identifier
from tbledger.store.types import U64, U128, UtcDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KIND_CHECK = "ck_audit_events_ck_audit_events_kind"
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
_WIDER = (*_KINDS, "foreign_transfer")
_TABLES = ("change_events", "account_balances")


def _kinds(kinds: tuple[str, ...]) -> str:
    return f"kind IN ({', '.join(repr(kind) for kind in kinds)})"


def upgrade() -> None:
    op.create_table(
        "change_events",
        sa.Column("timestamp", U64(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("ledger", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", U128(), nullable=False),
        sa.Column("pending_id", U128(), nullable=False),
        sa.Column("amount", U128(), nullable=False),
        sa.Column("debit_account_id", U128(), nullable=False),
        sa.Column("credit_account_id", U128(), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("transfer_timestamp", U64(), nullable=False),
        sa.Column("is_foreign", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("timestamp", "type", name="pk_change_events"),
    )
    op.create_index("ix_change_events_transfer_id", "change_events", ["transfer_id"])
    op.create_table(
        "account_balances",
        sa.Column("account_id", U128(), nullable=False),
        sa.Column("timestamp", U64(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("debits_pending", U128(), nullable=False),
        sa.Column("debits_posted", U128(), nullable=False),
        sa.Column("credits_pending", U128(), nullable=False),
        sa.Column("credits_posted", U128(), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "timestamp", name="pk_account_balances"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        role = check_identifier("app role", str(context.config.attributes["app_role"]))
        for table in _TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION tbledger_refuse_change()"
            )
            op.execute(f'GRANT SELECT, INSERT ON {table} TO "{role}"')
            op.execute(f'REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM "{role}"')
    elif dialect == "sqlite":
        for table in _TABLES:
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} "
                    f"ON {table} BEGIN SELECT RAISE(ABORT, "
                    f"'{table} is append-only: {operation} refused'); END"
                )
    _replace_kind_check(_KINDS, _WIDER)


def downgrade() -> None:
    _replace_kind_check(_WIDER, _KINDS)
    # Dropping the tables drops their triggers and grants.
    op.drop_table("account_balances")
    op.drop_table("change_events")


def _replace_kind_check(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE audit_events DROP CONSTRAINT {_KIND_CHECK}")
        op.execute(f"ALTER TABLE audit_events ADD CONSTRAINT {_KIND_CHECK} CHECK ({_kinds(new)})")
        return
    if bind.dialect.name != "sqlite":
        return
    if len(new) < len(old):
        # Narrowing: SQLite would not check the rows already there, so this does.
        narrowed = ", ".join(repr(kind) for kind in new)
        count = bind.execute(
            sa.text(f"SELECT count(*) FROM audit_events WHERE kind NOT IN ({narrowed})")
        ).scalar_one()
        if count:
            raise RuntimeError(
                f"{count} audit events are of a kind revision 0011 does not know; "
                "the downgrade would break the check of kinds"
            )
    sql = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'")
    ).scalar_one()
    before = f"CHECK ({_kinds(old)})"
    if before not in sql:
        raise RuntimeError("audit_events' check of kinds is not the one this revision expects")
    version = int(bind.execute(sa.text("PRAGMA schema_version")).scalar_one())
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.execute(
            sa.text(
                "UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'audit_events'"
            ),
            {"sql": sql.replace(before, f"CHECK ({_kinds(new)})")},
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
