"""Audit events name their transfer and account without foreign keys.

Every transfer writes two audit rows, ``submitted`` and then its outcome, and each row fired a
per-row referential-integrity trigger for ``transfer_id`` (and ``account_id``). Measured on
PostgreSQL with a COPY of 8189 rows into ``audit_events``: about 30 ms without the foreign keys,
70 to 120 ms with them, so checking the references cost more than inserting the rows. The write
protocol makes the check redundant: a transfer's intent is inserted with its ``submitted``
event, and every other event naming it is appended later, after that transaction has committed;
an account's events go in with the insert or update of its mapping (see `tbledger.store.tables`).

* PostgreSQL: the constraints are dropped in place (a catalogue change; no row is rewritten).
  No privilege changes: the application role never needed any for the checks.
* SQLite cannot drop a constraint, so the table is rebuilt without them (Alembic's batch mode:
  copy, drop, rename), which drops its append-only triggers with it; they are created again, and
  the AUTOINCREMENT counter is kept so that no seq is ever handed out twice.

The downgrade adds the foreign keys back. Both databases then check every existing event, so it
fails if an event names a transfer or an account the store does not hold.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

from tbledger.store.types import U64, U128, JsonDocument, UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (name, column, referenced table): as revision 0001 created them.
_FOREIGN_KEYS = (
    ("fk_audit_events_transfer_id", "transfer_id", "transfers"),
    ("fk_audit_events_account_id", "account_id", "accounts"),
)
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


def upgrade() -> None:
    with _altered(with_foreign_keys=True) as batch:
        for name, _, _ in _FOREIGN_KEYS:
            batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    with _altered(with_foreign_keys=False) as batch:
        for name, column, referred in _FOREIGN_KEYS:
            batch.create_foreign_key(name, referred, [column], ["id"])


@contextlib.contextmanager
def _altered(*, with_foreign_keys: bool) -> Iterator[BatchOperations]:
    """``op.batch_alter_table`` on audit_events, then what SQLite's rebuild of it loses."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    last_seq = _sqlite_sequence() if sqlite else None
    # PostgreSQL alters the table in place ("auto" never rebuilds there); SQLite rebuilds it from
    # `copy_from`, the table as it stands before this step, spelled out rather than reflected so
    # that its AUTOINCREMENT, CHECK constraints and indexes certainly stay.
    with op.batch_alter_table(
        "audit_events", copy_from=_audit_events(with_foreign_keys), recreate="auto"
    ) as batch:
        yield batch
    if sqlite:
        _sqlite_append_only()
        _keep_sqlite_sequence(last_seq)


def _audit_events(with_foreign_keys: bool) -> sa.Table:
    """audit_events as revisions 0001 (with the foreign keys) and 0004 (without) leave it."""
    foreign_keys = [
        sa.ForeignKeyConstraint([column], [f"{referred}.id"], name=name)
        for name, column, referred in _FOREIGN_KEYS
        if with_foreign_keys
    ]
    kinds = ", ".join(repr(kind) for kind in _KINDS)
    return sa.Table(
        "audit_events",
        sa.MetaData(),
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
        *foreign_keys,
        # The names revision 0001 gave them: the naming convention of the migration context
        # prefixed the names it was given a second time. Kept as they are in the database.
        sa.CheckConstraint(f"kind IN ({kinds})", name="ck_audit_events_ck_audit_events_kind"),
        sa.CheckConstraint(
            "transfer_id IS NOT NULL OR account_id IS NOT NULL",
            name="ck_audit_events_ck_audit_events_subject",
        ),
        sa.Index("ix_audit_events_transfer_id_seq", "transfer_id", "seq"),
        sa.Index("ix_audit_events_account_id", "account_id"),
        sqlite_autoincrement=True,
    )


def _sqlite_sequence() -> int | None:
    # The largest seq ever handed out (AUTOINCREMENT's counter), or None before the first event.
    query = sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'")
    value = op.get_bind().execute(query).scalar()
    return None if value is None else int(value)


def _keep_sqlite_sequence(last_seq: int | None) -> None:
    # The rebuilt table's counter starts from the largest seq copied into it; a seq handed out
    # above that (none should be, since events are never deleted) must still never come again.
    if last_seq is None:
        return
    current = _sqlite_sequence()
    bind = op.get_bind()
    if current is None:
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('audit_events', :seq)"),
            {"seq": last_seq},
        )
    elif current < last_seq:
        bind.execute(
            sa.text("UPDATE sqlite_sequence SET seq = :seq WHERE name = 'audit_events'"),
            {"seq": last_seq},
        )


def _sqlite_append_only() -> None:
    # As revision 0001 created them: dropping the old table dropped them.
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_events_no_{operation.lower()} BEFORE {operation} "
            f"ON audit_events BEGIN SELECT RAISE(ABORT, "
            f"'audit_events is append-only: {operation} refused'); END"
        )
