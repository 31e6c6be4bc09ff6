"""tbledger's store: account mapping, transfer intents and the append-only audit log.

The store is the second database of DESIGN §3 ("write last, read first"): an intent is persisted
here before the engine sees the transfer, outcomes are appended as audit events after, and a
transfer's status is derived from its latest event. It runs on PostgreSQL (asyncpg) or SQLite
(aiosqlite, the embedded default) with one code path over SQLAlchemy Core; schema changes are
Alembic migrations shipped in the package (`upgrade`, `upgrade_sync`).

    store = await Store.connect("sqlite:///var/lib/tbledger/store.db", migrate=True)
    events = await store.insert_intents([TransferIntent(id=new_id(), ...)])
"""

# The domain's nouns belong to `tbledger.model`; they are re-exported here only so that code
# written against the store's earlier face (the command line among it) keeps importing them.
# New code imports them from `tbledger.model`.
from tbledger.model import (
    AccountRecord,
    AccountStatus,
    ApiKeyRecord,
    AuditEvent,
    EventKind,
    ExchangeQuote,
    ExchangeRate,
    MerchantFee,
    NewAuditEvent,
    TransferIntent,
    request_hash_of,
)
from tbledger.store.backend import StoreOptions
from tbledger.store.base import Store
from tbledger.store.migrate import DEFAULT_APP_ROLE, downgrade, upgrade, upgrade_sync

__all__ = [
    "DEFAULT_APP_ROLE",
    "AccountRecord",
    "AccountStatus",
    "ApiKeyRecord",
    "AuditEvent",
    "EventKind",
    "ExchangeQuote",
    "ExchangeRate",
    "MerchantFee",
    "NewAuditEvent",
    "Store",
    "StoreOptions",
    "TransferIntent",
    "downgrade",
    "request_hash_of",
    "upgrade",
    "upgrade_sync",
]
