"""The service's own facts leave the caller's metadata: ``control`` columns and ``flow_ref``.

Until now the service kept the facts it later decides on in the same ``metadata`` document as
the caller's data: which account status change a transfer makes (``purpose``, ``account_id``),
which flow and leg a transfer is (``flow``, ``leg``, ``transfer_code``, ...), a system account's
role, and a flow account's payment or contract and its parties. A caller writes ``metadata``, so
a caller could forge those facts (DESIGN §9). This revision adds a ``control`` document to
``transfers`` and ``accounts`` that only the service writes, and ``accounts.flow_ref``: the
payment or contract id a flow account serves, indexed, so payment and contract ids can be scoped
to their owner and still be found; and partial indexes on the accounts of pending transfers, so
closing an account can first find the holds still pending on it.

Existing rows are carried over, so authorizations, settlements, payments, contracts and status
changes made before the upgrade keep working:

* transfers with the control transfer code (65535, which no caller could use) get their
  ``purpose`` and ``account_id``;
* transfers labelled with a ``flow`` get their flow keys. A label a caller forged before the
  upgrade is carried over too; the flows therefore also check a transfer's shape (its code and
  the system account it credits) before they act on it;
* accounts named ``system:…``, ``refundable:…`` and ``escrow:…`` (names only the service and
  admin keys could set) get their role or parties, and the flow accounts their ``flow_ref``.

``transfers`` is append-only: its guard is lifted for the carry-over, inside this migration's
transaction, and put back.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from tbledger.store.types import JsonDocument

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CONTROL_CODE = 65535
_FLOW_KEYS = (
    "flow",
    "leg",
    "transfer_code",
    "reason",
    "released",
    "expiry_code",
    "contract_id",
    "settlement_id",
    "rate",
)
_WHERE_FLOW_REF = sa.text("flow_ref IS NOT NULL")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    empty = sa.text("'{}'")
    for table in ("transfers", "accounts"):
        op.add_column(
            table, sa.Column("control", JsonDocument, nullable=False, server_default=empty)
        )
    op.add_column("accounts", sa.Column("flow_ref", sa.String(255), nullable=True))
    op.create_index(
        "ix_accounts_flow_ref",
        "accounts",
        ["flow_ref"],
        postgresql_where=_WHERE_FLOW_REF,
        sqlite_where=_WHERE_FLOW_REF,
    )
    pending = sa.text("(flags & 2) <> 0")
    for name, column in (
        ("ix_transfers_pending_debit", "debit_account_id"),
        ("ix_transfers_pending_credit", "credit_account_id"),
    ):
        op.create_index(name, "transfers", [column], postgresql_where=pending, sqlite_where=pending)
    _carry_accounts()
    _carry_transfers(dialect)


def downgrade() -> None:
    op.drop_index("ix_transfers_pending_credit", table_name="transfers")
    op.drop_index("ix_transfers_pending_debit", table_name="transfers")
    op.drop_index("ix_accounts_flow_ref", table_name="accounts")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("flow_ref")
        batch.drop_column("control")
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("control")


def _loaded(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value) if isinstance(value, dict) else {}


def _carry_accounts() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, name, metadata FROM accounts WHERE name LIKE 'system:%' "
            "OR name LIKE 'refundable:%' OR name LIKE 'escrow:%'"
        )
    ).all()
    for account_id, name, raw in rows:
        metadata = _loaded(raw)
        flow_ref: str | None = None
        control: dict[str, Any]
        if name.startswith("system:"):
            control = {k: metadata[k] for k in ("system", "role") if k in metadata}
            control.setdefault("system", True)
        elif name.startswith("refundable:"):
            flow_ref = name.removeprefix("refundable:")
            control = {"kind": "refundable", "payment_id": flow_ref}
            control.update({k: metadata[k] for k in ("payer", "merchant") if k in metadata})
        else:
            flow_ref = name.removeprefix("escrow:")
            control = {"kind": "escrow", "contract_id": flow_ref}
            control.update({k: metadata[k] for k in ("payer",) if k in metadata})
        bind.execute(
            sa.text("UPDATE accounts SET control = :control, flow_ref = :flow_ref WHERE id = :id"),
            {"control": json.dumps(control), "flow_ref": flow_ref, "id": account_id},
        )


def _carry_transfers(dialect: str) -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, code, metadata FROM transfers WHERE metadata IS NOT NULL")
    ).all()
    changes: list[dict[str, Any]] = []
    for transfer_id, code, raw in rows:
        metadata = _loaded(raw)
        control: dict[str, Any] = {}
        if int(code) == _CONTROL_CODE:
            control.update({k: metadata[k] for k in ("purpose", "account_id") if k in metadata})
        if "flow" in metadata:
            control.update({k: metadata[k] for k in _FLOW_KEYS if k in metadata})
        if control:
            changes.append({"control": json.dumps(control), "id": transfer_id})
    if not changes:
        return
    statement = sa.text("UPDATE transfers SET control = :control WHERE id = :id")
    if dialect == "postgresql":
        op.execute("ALTER TABLE transfers DISABLE TRIGGER transfers_append_only")
        bind.execute(statement, changes)
        op.execute("ALTER TABLE transfers ENABLE TRIGGER transfers_append_only")
    else:
        op.execute("DROP TRIGGER transfers_no_update")
        bind.execute(statement, changes)
        op.execute(
            "CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers "
            "BEGIN SELECT RAISE(ABORT, 'transfers is append-only: UPDATE refused'); END"
        )
