"""The domain's nouns: transfer intents, account records, audit events, statuses, prices.

These are the values every layer speaks: the service builds `TransferIntent`s and returns them,
the store persists and reads them back, the flows and the HTTP API render them. They are plain
frozen dataclasses and enums with no database, engine or HTTP behind them, so importing them
never pulls in a persistence layer. What a store column can hold is checked by the store
(`tbledger.store.records`); what a request may ask is checked by the service.

The engine's transfer fields are listed once, in `TRANSFER_FIELDS`, in the order of
``tigerbeetle.Transfer``; the store's column order, request hashing and the conversions to and
from the engine's transfer derive from it (the conversions spell the fields out for speed, and a
unit test holds them to the list).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import tigerbeetle

from tbledger.limits import U16_MAX

__all__ = [
    "ACCOUNT_EVENT_KINDS",
    "INTENT_CONTEXT_FIELDS",
    "NO_OUTCOME_KINDS",
    "REQUEST_HASHED_FIELDS",
    "RESOLVED_KINDS",
    "TRANSFER_EVENT_KINDS",
    "TRANSFER_FIELDS",
    "AccountRecord",
    "AccountStatus",
    "ApiKeyRecord",
    "AuditEvent",
    "BalanceRecord",
    "ChangeRecord",
    "EventKind",
    "ExchangeQuote",
    "ExchangeRate",
    "MerchantFee",
    "NewAuditEvent",
    "TransferIntent",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookSubscription",
    "request_hash_of",
]

# The engine's transfer fields, in ``tigerbeetle.Transfer``'s order: the one list of them.
TRANSFER_FIELDS: Final = (
    "id",
    "debit_account_id",
    "credit_account_id",
    "amount",
    "pending_id",
    "user_data_128",
    "user_data_64",
    "user_data_32",
    "timeout",
    "ledger",
    "code",
    "flags",
    "timestamp",
)
# Checked at import, so a client upgrade that adds or reorders a field fails loudly here rather
# than writing a transfer that differs from its intent.
if tuple(f.name for f in dataclasses.fields(tigerbeetle.Transfer)) != TRANSFER_FIELDS:
    raise RuntimeError("TRANSFER_FIELDS no longer matches tigerbeetle.Transfer")

# What an intent carries besides the engine's fields, in the store's column order.
INTENT_CONTEXT_FIELDS: Final = (
    "payment_id",
    "event_id",
    "chain_tx_hash",
    "idempotency_key",
    "request_hash",
    "metadata",
    "control",
    "chain_id",
    "chain_index",
)

# The fields that define what a request asks the engine and the store to do. The id is left out
# on purpose: a retry with the same idempotency key may arrive with a freshly minted id.
REQUEST_HASHED_FIELDS: Final = (
    *TRANSFER_FIELDS[1:],
    "payment_id",
    "event_id",
    "chain_tx_hash",
)


class AccountStatus(StrEnum):
    """An account's status; the engine enforces it through a closing transfer."""

    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


class EventKind(StrEnum):
    """What an audit event records. Transfer kinds follow DESIGN §3; account kinds log changes."""

    SUBMITTED = "submitted"
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"
    FAILED = "failed"
    OUTCOME_UNKNOWN = "outcome_unknown"
    ACCOUNT_CREATED = "account_created"
    ACCOUNT_STATUS_CHANGED = "account_status_changed"
    # A transfer the engine holds that no tbledger intent asked for: written to the cluster by
    # another client, seen on TigerBeetle's change stream (`tbledger.cdc`).
    FOREIGN_TRANSFER = "foreign_transfer"


ACCOUNT_EVENT_KINDS = frozenset({EventKind.ACCOUNT_CREATED, EventKind.ACCOUNT_STATUS_CHANGED})
TRANSFER_EVENT_KINDS = frozenset(set(EventKind) - ACCOUNT_EVENT_KINDS)

# The kinds that say nothing about what the engine did: a transfer whose events are only these
# is in the recovery backlog.
NO_OUTCOME_KINDS = frozenset({EventKind.SUBMITTED, EventKind.OUTCOME_UNKNOWN})

# The kinds that resolve a hold: a pending transfer with one of these has no reservation left.
RESOLVED_KINDS = frozenset({EventKind.POSTED, EventKind.VOIDED, EventKind.EXPIRED})


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountRecord:
    """An engine account's mapping: what it is, whose it is, and whether it is frozen."""

    id: int
    account_type: str
    ledger: int
    code: int
    owner_id: str | None = None
    name: str | None = None
    status: AccountStatus = AccountStatus.ACTIVE
    freeze_transfer_id: int | None = None
    # The caller's own data: stored and returned, never read to decide anything (DESIGN §9).
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # The service's own facts about the account (a system account's role, the payment or
    # contract a flow account serves and its parties): written only by the service and the
    # flows, never from a caller's input, and what decisions read.
    control: Mapping[str, Any] = field(default_factory=dict)
    # The payment or contract id a flow account serves (indexed: refunds and escrow find their
    # account by it); None for every other account.
    flow_ref: str | None = None
    # Set by the store; ignored on input.
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferIntent:
    """A transfer as it will be (or was) submitted to the engine, with the caller's context."""

    id: int
    debit_account_id: int
    credit_account_id: int
    amount: int
    ledger: int
    code: int
    pending_id: int = 0
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    timeout: int = 0
    flags: int = 0
    timestamp: int = 0
    payment_id: str | None = None
    event_id: str | None = None
    chain_tx_hash: str | None = None
    idempotency_key: str | None = None
    # Computed by the store from the request fields when an idempotency key is given and no
    # hash is (a service may hash its own wire request instead).
    request_hash: str | None = None
    # The caller's own data: stored and returned, never read to decide anything (DESIGN §9).
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # The service's own facts about the transfer: which flow and leg it is, or which account
    # status change it makes. Written only by the service and the flows, never from a caller's
    # input; this, not `metadata`, is what later decisions read.
    control: Mapping[str, Any] = field(default_factory=dict)
    # The linked chain (atomic batch) this transfer belongs to: its first transfer's id, and the
    # position in it. None outside a chain.
    chain_id: int | None = None
    chain_index: int | None = None
    # Set by the store; ignored on input.
    created_at: datetime | None = None

    @classmethod
    def from_transfer(
        cls,
        transfer: tigerbeetle.Transfer,
        *,
        payment_id: str | None = None,
        event_id: str | None = None,
        chain_tx_hash: str | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        control: Mapping[str, Any] | None = None,
    ) -> TransferIntent:
        """The intent for an engine transfer, with the caller's context attached."""
        return cls(
            id=transfer.id,
            debit_account_id=transfer.debit_account_id,
            credit_account_id=transfer.credit_account_id,
            amount=transfer.amount,
            pending_id=transfer.pending_id,
            user_data_128=transfer.user_data_128,
            user_data_64=transfer.user_data_64,
            user_data_32=transfer.user_data_32,
            timeout=transfer.timeout,
            ledger=transfer.ledger,
            code=transfer.code,
            flags=int(transfer.flags),
            timestamp=transfer.timestamp,
            payment_id=payment_id,
            event_id=event_id,
            chain_tx_hash=chain_tx_hash,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            metadata=dict(metadata or {}),
            control=dict(control or {}),
        )

    def to_transfer(self) -> tigerbeetle.Transfer:
        """The exact engine transfer to (re)submit: same id, same fields."""
        return tigerbeetle.Transfer(
            id=self.id,
            debit_account_id=self.debit_account_id,
            credit_account_id=self.credit_account_id,
            amount=self.amount,
            pending_id=self.pending_id,
            user_data_128=self.user_data_128,
            user_data_64=self.user_data_64,
            user_data_32=self.user_data_32,
            timeout=self.timeout,
            ledger=self.ledger,
            code=self.code,
            flags=_transfer_flags(self.flags),
            timestamp=self.timestamp,
        )


# Calling an IntFlag class costs microseconds; a batch converts thousands of flags, nearly all
# alike. At most 2^16 entries, and flag members are immutable.
_TRANSFER_FLAGS: dict[int, tigerbeetle.TransferFlags] = {}


def _transfer_flags(value: int) -> tigerbeetle.TransferFlags:
    flags = _TRANSFER_FLAGS.get(value)
    if flags is None:
        flags = tigerbeetle.TransferFlags(value)
        if 0 <= value <= U16_MAX:
            _TRANSFER_FLAGS[value] = flags
    return flags


@dataclass(frozen=True, slots=True, kw_only=True)
class NewAuditEvent:
    """An event to append. Transfer kinds name a `transfer_id`, account kinds an `account_id`."""

    kind: EventKind
    transfer_id: int | None = None
    account_id: int | None = None
    # The engine's status name for a failure (e.g. "exceeds_credits"); the new account status.
    status: str | None = None
    engine_timestamp: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """An appended event: `seq` orders the whole log and is the durable tail's cursor."""

    seq: int
    kind: EventKind
    transfer_id: int | None
    account_id: int | None
    status: str | None
    engine_timestamp: int | None
    detail: Mapping[str, Any]
    recorded_at: datetime


def request_hash_of(intent: TransferIntent) -> str:
    """sha256 (hex) of an intent's request fields, metadata and control facts, stable across
    processes."""
    document = {name: getattr(intent, name) for name in REQUEST_HASHED_FIELDS}
    document["metadata"] = dict(intent.metadata)
    if intent.control:
        # Only when present, so the hashes of plain transfers stored before the column existed
        # still match.
        document["control"] = dict(intent.control)
    # Sorted keys and fixed separators make the text canonical; Python writes ints of any size
    # exactly, so u128 fields hash without rounding.
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyRecord:
    """An HTTP API key as stored: its public id, the hash of its secret, what it may do."""

    id: str
    secret_hash: str
    name: str
    scopes: tuple[str, ...]
    owner_id: str | None = None
    rate_per_s: int
    burst: int
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeRate:
    """An operator's exchange rate for a pair of ledgers, as set (and never changed after).

    `rate` is exact decimal text: units of the target per unit of the source, in major units.
    """

    source_ledger: int
    target_ledger: int
    rate: str
    valid_from: datetime
    valid_until: datetime | None = None
    source: str
    set_by: str
    # Set by the store; ignored on input.
    seq: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeQuote:
    """A rate the platform fixed for one owner, pair and amount (minor units of the source)."""

    id: int
    owner_id: str | None
    key_id: str
    source_ledger: int
    target_ledger: int
    amount: int
    rate: str
    rate_seq: int
    issued_at: datetime
    expires_at: datetime
    spent_at: datetime | None = None
    spent_by: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MerchantFee:
    """A merchant account's fee schedule: `fee_bps` of the amount plus `fee_fixed_minor`."""

    account_id: int
    fee_bps: int
    fee_fixed_minor: int
    fee_payer: str
    set_by: str
    # Set by the store; ignored on input.
    seq: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSubscription:
    """Which audit events an endpoint receives; an empty tuple means every value."""

    kinds: tuple[EventKind, ...] = ()
    ledgers: tuple[int, ...] = ()
    owners: tuple[str, ...] = ()
    codes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEndpoint:
    """Where events are POSTed, signed with `secret` (and `previous_secret` while rotating).

    `owner_id` None: an admin's endpoint, which may see every event; otherwise it sees only events
    touching that owner's accounts. `cursor` is the last audit seq the endpoint is done with.
    """

    id: str
    url: str
    description: str = ""
    owner_id: str | None = None
    subscription: WebhookSubscription = WebhookSubscription()
    secret: str
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    failure_count: int = 0
    cursor: int = 0
    generation: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookDelivery:
    """One attempt to deliver one event: `status_code` None when no answer came (`error` says)."""

    endpoint_id: str
    event_seq: int
    attempt: int
    status_code: int | None
    latency_ms: int
    error: str | None
    attempted_at: datetime
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class BalanceRecord:
    """An account's balances and flags right after one change event (its history point)."""

    account_id: int
    timestamp: int
    type: str
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    flags: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeRecord:
    """One event of TigerBeetle's change stream as the store keeps it: the transfer's engine
    fields as the event reports them (for an expiry, the hold's, and `amount` what it released),
    both accounts' balances right after it, and, for a transfer no tbledger intent asked for
    (`foreign`), the audit event that records it."""

    timestamp: int
    type: str
    ledger: int
    transfer_id: int
    pending_id: int
    amount: int
    debit_account_id: int
    credit_account_id: int
    code: int
    flags: int
    transfer_timestamp: int
    foreign: bool
    balances: tuple[BalanceRecord, BalanceRecord]
    audit: NewAuditEvent | None = None
