"""The values the store takes and returns: accounts, transfer intents and audit events.

Plain frozen dataclasses, one per table, with no database behind them: a write validates its
records (`validate_*`) before anything is sent, so a malformed id, an out-of-range field or an
oversized key fails with a `ValidationError` naming the field, never as a driver error. Rows read
back are trusted and not validated again. A `TransferIntent` holds every field of the engine's
``tigerbeetle.Transfer`` so recovery can rebuild the exact transfer (`to_transfer`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import tigerbeetle

from tbledger.errors import InvalidIdError, LimitExceededError, ValidationError
from tbledger.ids import parse_id
from tbledger.limits import (
    STORE_METADATA_BYTES_MAX,
    STORE_TEXT_CHARS_MAX,
    U16_MAX,
    U32_MAX,
    U64_MAX,
    U128_MAX,
)
from tbledger.store.tables import (
    ACCOUNT_EVENT_KINDS,
    TRANSFER_EVENT_KINDS,
    AccountStatus,
    EventKind,
)

__all__ = [
    "I32_MAX",
    "AccountRecord",
    "ApiKeyRecord",
    "AuditEvent",
    "ExchangeQuote",
    "ExchangeRate",
    "MerchantFee",
    "NewAuditEvent",
    "TransferIntent",
    "encode_document",
    "is_unicode_text",
    "request_hash_of",
    "validate_account",
    "validate_event",
    "validate_intent",
    "validate_status_change",
]

# chain_index is an INTEGER column: a position in a chain, so never negative.
I32_MAX = (1 << 31) - 1


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


# The fields that define what a request asks the engine and the store to do. The id is left out
# on purpose: a retry with the same idempotency key may arrive with a freshly minted id.
_HASHED_FIELDS = (
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
    "payment_id",
    "event_id",
    "chain_tx_hash",
)


def request_hash_of(intent: TransferIntent) -> str:
    """sha256 (hex) of an intent's request fields, metadata and control facts, stable across
    processes."""
    document = {name: getattr(intent, name) for name in _HASHED_FIELDS}
    document["metadata"] = dict(intent.metadata)
    if intent.control:
        # Only when present, so the hashes of plain transfers stored before the column existed
        # still match.
        document["control"] = dict(intent.control)
    # Sorted keys and fixed separators make the text canonical; Python writes ints of any size
    # exactly, so u128 fields hash without rounding.
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_account(record: AccountRecord) -> None:
    """Refuse an account whose fields the engine or the store could not hold."""
    _u128("id", record.id)
    _text("account_type", record.account_type, required=True)
    _text("owner_id", record.owner_id)
    _text("name", record.name)
    _uint("ledger", record.ledger, U32_MAX)
    _uint("code", record.code, U16_MAX)
    _status(record.status, record.freeze_transfer_id)
    _metadata("metadata", record.metadata)
    _metadata("control", record.control)
    _text("flow_ref", record.flow_ref)


def validate_status_change(status: AccountStatus, freeze_transfer_id: int | None) -> None:
    """Refuse a status that does not match its closing transfer (DESIGN §4)."""
    _status(status, freeze_transfer_id)


def validate_intent(intent: TransferIntent) -> None:
    """Refuse an intent whose fields do not fit the engine's Transfer or the store's columns."""
    for name in ("id", "debit_account_id", "credit_account_id", "amount"):
        _u128(name, getattr(intent, name))
    _u128("pending_id", intent.pending_id)
    _u128("user_data_128", intent.user_data_128)
    _uint("user_data_64", intent.user_data_64, U64_MAX)
    _uint("user_data_32", intent.user_data_32, U32_MAX)
    _uint("timeout", intent.timeout, U32_MAX)
    _uint("ledger", intent.ledger, U32_MAX)
    _uint("code", intent.code, U16_MAX)
    _uint("flags", intent.flags, U16_MAX)
    _uint("timestamp", intent.timestamp, U64_MAX)
    for name in ("payment_id", "event_id", "chain_tx_hash", "idempotency_key"):
        _text(name, getattr(intent, name))
    if intent.request_hash is not None and (
        len(intent.request_hash) != 64 or not _is_lower_hex(intent.request_hash)
    ):
        raise ValidationError("request_hash must be 64 lowercase hex digits (a sha256)")
    _metadata("metadata", intent.metadata)
    _metadata("control", intent.control)
    if intent.chain_id is not None:
        _u128("chain_id", intent.chain_id)
    if intent.chain_index is not None:
        _uint("chain_index", intent.chain_index, I32_MAX)


def validate_event(event: NewAuditEvent) -> None:
    """Refuse an event without the subject its kind needs, or with out-of-range fields."""
    try:
        kind = EventKind(event.kind)
    except ValueError as exc:
        raise ValidationError(f"unknown audit event kind {event.kind!r}") from exc
    if kind in TRANSFER_EVENT_KINDS and event.transfer_id is None:
        raise ValidationError(f"a {kind.value!r} event needs a transfer_id")
    if kind in ACCOUNT_EVENT_KINDS and event.account_id is None:
        raise ValidationError(f"a {kind.value!r} event needs an account_id")
    if event.transfer_id is not None:
        _u128("transfer_id", event.transfer_id)
    if event.account_id is not None:
        _u128("account_id", event.account_id)
    _text("status", event.status)
    if event.engine_timestamp is not None:
        _uint("engine_timestamp", event.engine_timestamp, U64_MAX)
    _metadata("detail", event.detail)


def _u128(name: str, value: object) -> None:
    # Fast path first: a batch validates tens of thousands of ids.
    if type(value) is int and 0 <= value <= U128_MAX:
        return
    if isinstance(value, str):
        # Callers parse ids at the edge (tbledger.ids.parse_id); the store takes ints only, so a
        # string here is a missed conversion, not an id.
        raise InvalidIdError(f"{name} must be an int (parse it with tbledger.ids.parse_id)")
    try:
        parse_id(value)
    except InvalidIdError as exc:
        raise InvalidIdError(f"{name}: {exc}") from None


def _uint(name: str, value: object, maximum: int) -> None:
    if type(value) is int and 0 <= value <= maximum:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValidationError(f"{name} must be in [0, {maximum}], got {value}")


def _text(name: str, value: object, *, required: bool = False) -> None:
    if value is None:
        if required:
            raise ValidationError(f"{name} is required")
        return
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, not {type(value).__name__}")
    if required and not value:
        raise ValidationError(f"{name} must not be empty")
    if len(value) > STORE_TEXT_CHARS_MAX:
        raise LimitExceededError(
            f"{name} has {len(value)} characters; STORE_TEXT_CHARS_MAX is {STORE_TEXT_CHARS_MAX}"
        )
    if not value.isascii() and not is_unicode_text(value):
        raise ValidationError(f"{name} is not valid Unicode text (it holds a lone surrogate)")


def is_unicode_text(text: str) -> bool:
    """False when `text` holds a lone surrogate (Python allows one; no database encoding does)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _status(status: object, freeze_transfer_id: int | None) -> None:
    try:
        parsed = AccountStatus(status if isinstance(status, str) else "")
    except ValueError as exc:
        raise ValidationError(f"unknown account status {status!r}") from exc
    if parsed is AccountStatus.ACTIVE and freeze_transfer_id is not None:
        raise ValidationError("an active account has no freeze_transfer_id")
    if parsed is not AccountStatus.ACTIVE:
        if freeze_transfer_id is None:
            raise ValidationError(
                f"a {parsed.value} account needs the closing transfer that holds it "
                "(freeze_transfer_id)"
            )
        _u128("freeze_transfer_id", freeze_transfer_id)


def _metadata(name: str, value: object) -> None:
    if type(value) is dict and not value:
        return
    encode_document(name, value)


def encode_document(name: str, value: object) -> str:
    """`value` (metadata, detail) as compact JSON text; refuse a non-mapping or an oversized one.

    This is the text the store writes, so validating a document and encoding it are one step.
    """
    if type(value) is dict and not value:
        return "{}"
    if not isinstance(value, Mapping):
        raise ValidationError(f"{name} must be a mapping, not {type(value).__name__}")
    try:
        text = json.dumps(dict(value), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name} is not a JSON document: {exc}") from exc
    # ensure_ascii (the default) makes the text ASCII: its length is its size in bytes.
    if len(text) > STORE_METADATA_BYTES_MAX:
        raise LimitExceededError(
            f"{name} is {len(text)} bytes as JSON; "
            f"STORE_METADATA_BYTES_MAX is {STORE_METADATA_BYTES_MAX}"
        )
    return text


def _is_lower_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


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
