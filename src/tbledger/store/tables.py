"""The store's schema as SQLAlchemy Core tables: account mapping, transfer intents, audit log.

Three tables, one per kind of fact, and ``api_keys`` for the HTTP API's callers. ``accounts``
maps a TigerBeetle account id to what the engine does not hold (type, owner, a unique name for
system accounts, a freeze status and the closing transfer that enforces it); with ``api_keys``
(revoked, never deleted) it is the only table rows are updated in. ``transfers`` holds one row per
transfer intent, written before the engine sees the transfer, with every engine field so that
recovery can resubmit it byte for byte, plus the caller's metadata; it is insert-only.
``audit_events`` is the append-only log: a transfer's current status is its latest event, and
``seq`` is the cursor of the durable tail. There are no foreign keys from transfers to accounts:
the engine, not the store, decides whether an account exists, and an intent that the engine will
refuse (``debit_account_not_found``) must still be recorded with its failure.

Nor are there foreign keys from ``audit_events`` to ``transfers`` or ``accounts`` (revision 0004
dropped them). The write protocol makes them redundant: a transfer's intent is inserted with its
``submitted`` event, and every other event naming it is appended later, in another transaction,
after that one has committed; an account's events are appended in the transaction that inserts
or updates its mapping. Nothing else checks the reference (`Store.append_events` trusts its
caller). They were also the most expensive part of the write path: every transfer appends two
events (``submitted``, then its outcome), and the per-row trigger that checked each reference
cost more than the insert itself. A COPY of 8189 rows into ``audit_events`` on PostgreSQL
measured about 30 ms without the foreign keys and 70 to 120 ms with them.

Indexes on optional columns (event id, payment id, chain id, an event's account) are partial:
most rows have no value there, and every lookup is by value (revision 0005); so are those of
holds by account and of posts and voids by the hold they resolve (revisions 0006 and 0010).
Accounts are listed by type and ledger, and transfers found by their metadata through a GIN
index on PostgreSQL (revision 0009).

Prices (revision 0007, DESIGN §9: prices come from the platform, never from a request):
``exchange_rates`` holds the operator's rates and ``merchant_fees`` the per-merchant fee
schedule, both append-only like the audit log (a new row supersedes the older one for its pair
or merchant; history stays). ``exchange_quotes`` holds the quotes the platform issued; a quote's
row is updated once, when an exchange spends it.

Webhooks (revision 0010, DESIGN §10: events leave from the append-only log, at least once):
``webhook_endpoints`` holds each endpoint, its signing secrets and its cursor (the last audit
``seq`` it has answered with a 2xx, or skipped as outside its subscription); ``webhook_deliveries``
logs every attempt and is append-only; ``webhook_leases`` names the one deliverer per endpoint.

The change stream (revision 0012, DESIGN §10: history is the engine's): ``change_events`` holds
one row per event TigerBeetle's CDC reported (a transfer, a hold posted, voided or expired),
keyed by the event's timestamp and type, so a message delivered twice is recorded once; and
``account_balances`` both accounts' balances and flags right after each event, the history of
every account whether or not it carries the ``history`` flag. Both are append-only.

The Alembic migrations in ``tbledger.store.migrations`` create exactly this schema (a test
compares them); the names of constraints and indexes are fixed here so errors can be mapped.
"""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa

from tbledger.model import AccountStatus, EventKind
from tbledger.store.types import U64, U128, JsonDocument, UtcDateTime

__all__ = [
    "account_balances",
    "accounts",
    "api_keys",
    "audit_events",
    "change_events",
    "exchange_quotes",
    "exchange_rates",
    "merchant_fees",
    "metadata",
    "transfers",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_leases",
]


def _in_list(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", U128(), primary_key=True, autoincrement=False),
    sa.Column("account_type", sa.String(255), nullable=False),
    sa.Column("owner_id", sa.String(255), nullable=True),
    sa.Column("ledger", sa.BigInteger(), nullable=False),
    sa.Column("code", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default=AccountStatus.ACTIVE.value),
    sa.Column("freeze_transfer_id", U128(), nullable=True),
    # The caller's metadata, never read to decide anything; `control` holds the service's own
    # facts (a system account's role, a flow account's payment or contract and its parties) and
    # `flow_ref` the payment or contract id a flow account serves (DESIGN §9, revision 0006).
    sa.Column("metadata", JsonDocument, nullable=False),
    sa.Column("control", JsonDocument, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("flow_ref", sa.String(255), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(_in_list("status", AccountStatus), name="status"),
    # A frozen or closed account is held by its closing pending transfer (DESIGN §4).
    sa.CheckConstraint(
        "(status = 'active') = (freeze_transfer_id IS NULL)", name="freeze_transfer"
    ),
    sa.Index("ix_accounts_owner_id", "owner_id"),
    # System accounts are found again by name; user accounts have none. Partial, so NULLs are
    # plainly outside the index on both databases.
    sa.Index(
        "ux_accounts_name",
        "name",
        unique=True,
        postgresql_where=sa.text("name IS NOT NULL"),
        sqlite_where=sa.text("name IS NOT NULL"),
    ),
    sa.Index(
        "ix_accounts_flow_ref",
        "flow_ref",
        postgresql_where=sa.text("flow_ref IS NOT NULL"),
        sqlite_where=sa.text("flow_ref IS NOT NULL"),
    ),
    # Listings by type (and ledger), in id order: the platform's own accounts (treasury, fee
    # pool, liquidity) are a handful among millions of customers' (revision 0009).
    sa.Index("ix_accounts_account_type_ledger_id", "account_type", "ledger", "id"),
)

transfers = sa.Table(
    "transfers",
    metadata,
    # The engine's fields, exactly as submitted: recovery rebuilds the tigerbeetle.Transfer from
    # them and resubmits it with the same id ("exists" then means it already happened).
    sa.Column("id", U128(), primary_key=True, autoincrement=False),
    sa.Column("debit_account_id", U128(), nullable=False),
    sa.Column("credit_account_id", U128(), nullable=False),
    sa.Column("amount", U128(), nullable=False),
    sa.Column("pending_id", U128(), nullable=False),
    sa.Column("user_data_128", U128(), nullable=False),
    sa.Column("user_data_64", U64(), nullable=False),
    sa.Column("user_data_32", sa.BigInteger(), nullable=False),
    sa.Column("timeout", sa.BigInteger(), nullable=False),
    sa.Column("ledger", sa.BigInteger(), nullable=False),
    sa.Column("code", sa.Integer(), nullable=False),
    sa.Column("flags", sa.Integer(), nullable=False),
    # Zero unless the transfer is imported, in which case the caller chose it.
    sa.Column("timestamp", U64(), nullable=False),
    # The caller's context, which the engine does not hold.
    sa.Column("payment_id", sa.String(255), nullable=True),
    sa.Column("event_id", sa.String(255), nullable=True),
    sa.Column("chain_tx_hash", sa.String(255), nullable=True),
    sa.Column("idempotency_key", sa.String(255), nullable=True),
    # sha256 of the request fields: the same key with different fields is a caller error.
    sa.Column("request_hash", sa.String(64), nullable=True),
    sa.Column("metadata", JsonDocument, nullable=False),
    # The service's own facts (flow and leg, or the account status change it makes): written
    # only by the service, and what later decisions read; never the caller's metadata.
    sa.Column("control", JsonDocument, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
    # The atomic batch (linked chain) the transfer belongs to: the id of the chain's first
    # transfer and the position in it. Recovery resubmits a chain whole, in order.
    sa.Column("chain_id", U128(), nullable=True),
    sa.Column("chain_index", sa.Integer(), nullable=True),
    sa.Index(
        "ix_transfers_event_id",
        "event_id",
        postgresql_where=sa.text("event_id IS NOT NULL"),
        sqlite_where=sa.text("event_id IS NOT NULL"),
    ),
    sa.Index(
        "ix_transfers_chain_id",
        "chain_id",
        postgresql_where=sa.text("chain_id IS NOT NULL"),
        sqlite_where=sa.text("chain_id IS NOT NULL"),
    ),
    sa.Index(
        "ix_transfers_payment_id",
        "payment_id",
        postgresql_where=sa.text("payment_id IS NOT NULL"),
        sqlite_where=sa.text("payment_id IS NOT NULL"),
    ),
    # Holds by account: closing an account first looks for pending holds on it. Partial (only
    # pending transfers), so plain transfers pay nothing for it (revision 0006).
    sa.Index(
        "ix_transfers_pending_debit",
        "debit_account_id",
        postgresql_where=sa.text("(flags & 2) <> 0"),
        sqlite_where=sa.text("(flags & 2) <> 0"),
    ),
    sa.Index(
        "ix_transfers_pending_credit",
        "credit_account_id",
        postgresql_where=sa.text("(flags & 2) <> 0"),
        sqlite_where=sa.text("(flags & 2) <> 0"),
    ),
    # The posts and voids of a hold: a hold past its timeout reads expired only once the engine
    # holds none of them. Partial (only posts and voids), so other transfers pay nothing for it
    # (revision 0010).
    sa.Index(
        "ix_transfers_resolved_pending_id",
        "pending_id",
        postgresql_where=sa.text("(flags & 12) <> 0"),
        sqlite_where=sa.text("(flags & 12) <> 0"),
    ),
    sa.Index(
        "ux_transfers_idempotency_key",
        "idempotency_key",
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
    ),
    # Transfers by the caller's metadata (``metadata @> '{"order": "A-17"}'``): a GIN index of
    # the JSONB documents, PostgreSQL only (revision 0009). ``jsonb_path_ops`` indexes key/value
    # paths only, which is all a containment test needs, and is a fraction of the default's size.
    # SQLite has no such index (its lookups read the documents). The column is spelled as an
    # expression so that a schema comparison on SQLite, which cannot see expression indexes,
    # does not look for it there.
    sa.Index(
        "ix_transfers_metadata",
        sa.literal_column("metadata"),
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    ).ddl_if(dialect="postgresql"),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    # The durable tail's cursor. ALWAYS: nobody chooses a seq, so it only grows. SQLite needs
    # INTEGER (not BIGINT) for a rowid alias, and AUTOINCREMENT so a seq is never reused.
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.Identity(always=True),
        primary_key=True,
    ),
    # The transfer or account the event is about; no foreign keys (see the module docstring).
    sa.Column("transfer_id", U128(), nullable=True),
    sa.Column("account_id", U128(), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    # The engine's status name for failures (e.g. "exceeds_credits"), or the account's new status.
    sa.Column("status", sa.String(64), nullable=True),
    sa.Column("engine_timestamp", U64(), nullable=True),
    sa.Column("detail", JsonDocument, nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(_in_list("kind", EventKind), name="kind"),
    sa.CheckConstraint("transfer_id IS NOT NULL OR account_id IS NOT NULL", name="subject"),
    # (transfer_id, seq): a transfer's history in order, and its latest event, from the index.
    sa.Index("ix_audit_events_transfer_id_seq", "transfer_id", "seq"),
    sa.Index(
        "ix_audit_events_account_id",
        "account_id",
        postgresql_where=sa.text("account_id IS NOT NULL"),
        sqlite_where=sa.text("account_id IS NOT NULL"),
    ),
    sqlite_autoincrement=True,
)

# The HTTP API's keys. Only a hash of the secret is kept: a leaked table does not let anyone call
# the API. A key is never deleted, so the audit of who could do what stays; revoking sets
# ``revoked_at``.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    # Space-separated scopes ("admin", "owner"); an owner key is bound to `owner_id`.
    sa.Column("scopes", sa.String(255), nullable=False),
    sa.Column("owner_id", sa.String(255), nullable=True),
    sa.Column("rate_per_s", sa.Integer(), nullable=False),
    sa.Column("burst", sa.Integer(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
)

# The operator's exchange rates, append-only. The current rate of a pair at a time is the newest
# row (highest seq) whose validity has started; a row whose `valid_until` has passed leaves the
# pair without a rate (an operator sets an end to stop trading at a stale price). `rate` is the
# exact decimal text (never a float): units of the target per unit of the source, major units.
exchange_rates = sa.Table(
    "exchange_rates",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.Identity(always=True),
        primary_key=True,
    ),
    sa.Column("source_ledger", sa.BigInteger(), nullable=False),
    sa.Column("target_ledger", sa.BigInteger(), nullable=False),
    sa.Column("rate", sa.String(96), nullable=False),
    sa.Column("valid_from", UtcDateTime(), nullable=False),
    sa.Column("valid_until", UtcDateTime(), nullable=True),
    # Where the rate came from ("ECB 2026-12-07", "manual") and who set it (an admin key's id).
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("set_by", sa.String(255), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Index(
        "ix_exchange_rates_source_ledger_target_ledger_seq", "source_ledger", "target_ledger", "seq"
    ),
    sqlite_autoincrement=True,
)

# Per-merchant fee schedule overrides, append-only: the newest row of a merchant account is its
# schedule; merchants without one pay the platform default (`Settings.fee_bps`, `fee_payer`).
merchant_fees = sa.Table(
    "merchant_fees",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.Identity(always=True),
        primary_key=True,
    ),
    sa.Column("account_id", U128(), nullable=False),
    sa.Column("fee_bps", sa.Integer(), nullable=False),
    sa.Column("fee_fixed_minor", sa.BigInteger(), nullable=False),
    sa.Column("fee_payer", sa.String(16), nullable=False),
    sa.Column("set_by", sa.String(255), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("fee_bps >= 0 AND fee_bps <= 10000", name="fee_bps"),
    sa.CheckConstraint("fee_fixed_minor >= 0", name="fee_fixed_minor"),
    sa.CheckConstraint("fee_payer IN ('payer', 'merchant')", name="fee_payer"),
    sa.Index("ix_merchant_fees_account_id_seq", "account_id", "seq"),
    sqlite_autoincrement=True,
)

# Quotes the platform issued: a rate fixed for one pair and amount, for one owner (None: issued
# to an admin key, usable by admin keys only), until `expires_at`. Spending it sets `spent_at`
# and `spent_by` (the exchange's idempotency key, so a retry of that exchange replays at the same
# rate); a second exchange cannot spend it again. An exchange priced at the operator's rate with
# an idempotency key is recorded here too, as a quote issued and spent at once, so a retry after
# the rate moved replays the first exchange instead of conflicting with it.
exchange_quotes = sa.Table(
    "exchange_quotes",
    metadata,
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
    sa.Index(
        "ux_exchange_quotes_spent_by",
        "spent_by",
        unique=True,
        postgresql_where=sa.text("spent_by IS NOT NULL"),
        sqlite_where=sa.text("spent_by IS NOT NULL"),
    ),
)

# Webhook endpoints. `owner_id` None: an admin-wide endpoint, else it sees only that owner's events.
# `subscription` is {"kinds": [...], "ledgers": [...], "owners": [...], "codes": [...]}, an empty
# list meaning all. The secrets sign deliveries, so they are kept whole (a hash cannot sign);
# `previous_secret` also signs while a rotation is under way. `cursor` is the last audit seq the
# endpoint is done with; `generation` grows on every replay, so an attempt started before a
# replay cannot move the cursor back past the replayed events.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
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
    sa.Index("ix_webhook_endpoints_owner_id", "owner_id"),
)

# Every delivery attempt, append-only: which event, which attempt, and what came back.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
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
    sa.Index("ix_webhook_deliveries_endpoint_id_seq", "endpoint_id", "seq"),
    sqlite_autoincrement=True,
)

# One deliverer per endpoint across processes: the holder renews before `expires_at`; another may
# take the lease once it has expired (the holder crashed or stalled).
webhook_leases = sa.Table(
    "webhook_leases",
    metadata,
    sa.Column("endpoint_id", sa.String(32), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
)


# One row per change event of TigerBeetle's CDC (`tbledger.cdc`): the transfer's engine fields as
# the event reports them (for an expiry, the hold's, and `amount` what the expiry released), and
# whether a tbledger intent asked for it (`foreign` false) or another client wrote it.
change_events = sa.Table(
    "change_events",
    metadata,
    sa.Column("timestamp", U64(), primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(32), primary_key=True),
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
    sa.Index("ix_change_events_transfer_id", "transfer_id"),
)

# An account's balances and flags right after each change event that touched it: its history,
# read by `LedgerService.balance_history` for accounts without the engine's `history` flag.
account_balances = sa.Table(
    "account_balances",
    metadata,
    sa.Column("account_id", U128(), primary_key=True, autoincrement=False),
    sa.Column("timestamp", U64(), primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("debits_pending", U128(), nullable=False),
    sa.Column("debits_posted", U128(), nullable=False),
    sa.Column("credits_pending", U128(), nullable=False),
    sa.Column("credits_posted", U128(), nullable=False),
    sa.Column("flags", sa.Integer(), nullable=False),
)
