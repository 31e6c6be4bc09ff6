"""What the store can hold: the checks a write runs on the domain's records before sending them.

The records themselves are the domain's nouns (`tbledger.model`); this module knows the store's
columns. A write validates its records (`validate_*`) before anything is sent, so a malformed id,
an out-of-range field or an oversized key fails with a `ValidationError` naming the field, never
as a driver error. Rows read back are trusted and not validated again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

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
from tbledger.model import (
    ACCOUNT_EVENT_KINDS,
    TRANSFER_EVENT_KINDS,
    AccountRecord,
    AccountStatus,
    EventKind,
    NewAuditEvent,
    TransferIntent,
)

__all__ = [
    "I32_MAX",
    "encode_document",
    "is_unicode_text",
    "validate_account",
    "validate_event",
    "validate_intent",
    "validate_status_change",
]

# chain_index is an INTEGER column: a position in a chain, so never negative.
I32_MAX = (1 << 31) - 1


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
