"""TigerBeetle's change-data-capture message, byte for byte: the JSON body, headers and properties.

`tigerbeetle amqp` publishes one AMQP message per change event (``src/cdc/runner.zig``,
``Message``): a minified UTF-8 JSON body whose fields appear in a fixed order, integers outside
``±2^53`` (the precise integer range of a double) written as decimal strings and the rest as
numbers; headers naming the event type, ledger and codes (so a broker can route on them); and the
properties ``content_type``, ``delivery_mode`` 2, ``app_id`` ``tigerbeetle`` and ``timestamp``
(the event's, truncated to whole seconds). The embedded twin publishes through `encode_body` and
`headers`, so a consumer cannot tell the two engines apart; the consumer reads with `decode`,
which is strict: a body that is not exactly this shape is refused with `ChangeEventError`.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from tbledger.errors import ChangeEventError
from tbledger.limits import U16_MAX, U32_MAX, U64_MAX, U128_MAX

__all__ = [
    "APP_ID",
    "CONTENT_TYPE",
    "ChangeAccount",
    "ChangeEvent",
    "ChangeEventType",
    "ChangeTransfer",
    "decode",
    "encode_body",
    "headers",
    "properties",
]

APP_ID: Final = "tigerbeetle"
CONTENT_TYPE: Final = "application/json"
# AMQP's "persistent" delivery mode: the broker writes the message to disk.
DELIVERY_MODE_PERSISTENT: Final = 2

_PORTABLE: Final = 1 << 53
_NS_PER_S: Final = 1_000_000_000


class ChangeEventType(StrEnum):
    """What happened, as TigerBeetle's ``ChangeEventType`` names it."""

    SINGLE_PHASE = "single_phase"
    TWO_PHASE_PENDING = "two_phase_pending"
    TWO_PHASE_POSTED = "two_phase_posted"
    TWO_PHASE_VOIDED = "two_phase_voided"
    TWO_PHASE_EXPIRED = "two_phase_expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeTransfer:
    """The transfer of an event (for an expiry, the pending transfer that was released).

    `amount` is what the event moved: for a post it is the amount posted, for a balancing
    transfer the amount actually moved, for an expiry the amount released."""

    id: int
    amount: int
    pending_id: int
    user_data_128: int
    user_data_64: int
    user_data_32: int
    timeout: int
    code: int
    flags: int
    timestamp: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeAccount:
    """One side's account with its balances and flags as of the event (its user data and code
    are the account's own, which never change)."""

    id: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    user_data_128: int
    user_data_64: int
    user_data_32: int
    code: int
    flags: int
    timestamp: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeEvent:
    """One change event. `timestamp` is unique per event within a cluster: it is the transfer's
    own timestamp, except for an expiry, where it is the instant the engine released the hold."""

    timestamp: int
    type: ChangeEventType
    ledger: int
    transfer: ChangeTransfer
    debit_account: ChangeAccount
    credit_account: ChangeAccount


# Field order and bounds, exactly as runner.zig's `Message` declares them.
_TRANSFER_FIELDS: Final = (
    ("id", U128_MAX),
    ("amount", U128_MAX),
    ("pending_id", U128_MAX),
    ("user_data_128", U128_MAX),
    ("user_data_64", U64_MAX),
    ("user_data_32", U32_MAX),
    ("timeout", U32_MAX),
    ("code", U16_MAX),
    ("flags", U16_MAX),
    ("timestamp", U64_MAX),
)
_ACCOUNT_FIELDS: Final = (
    ("id", U128_MAX),
    ("debits_pending", U128_MAX),
    ("debits_posted", U128_MAX),
    ("credits_pending", U128_MAX),
    ("credits_posted", U128_MAX),
    ("user_data_128", U128_MAX),
    ("user_data_64", U64_MAX),
    ("user_data_32", U32_MAX),
    ("code", U16_MAX),
    ("flags", U16_MAX),
    ("timestamp", U64_MAX),
)
_EVENT_KEYS: Final = (
    "timestamp",
    "type",
    "ledger",
    "transfer",
    "debit_account",
    "credit_account",
)


def _number(value: int) -> str:
    # Zig's std.json with `emit_nonportable_numbers_as_strings`: outside ±2^53, a string.
    return f'"{value}"' if value >= _PORTABLE else str(value)


def _object(obj: ChangeTransfer | ChangeAccount, fields: tuple[tuple[str, int], ...]) -> str:
    return "{" + ",".join(f'"{name}":{_number(getattr(obj, name))}' for name, _ in fields) + "}"


def encode_body(event: ChangeEvent) -> bytes:
    """The message body `tigerbeetle amqp` publishes for `event`, byte for byte."""
    return (
        f'{{"timestamp":{_number(event.timestamp)},"type":"{event.type.value}",'
        f'"ledger":{_number(event.ledger)},'
        f'"transfer":{_object(event.transfer, _TRANSFER_FIELDS)},'
        f'"debit_account":{_object(event.debit_account, _ACCOUNT_FIELDS)},'
        f'"credit_account":{_object(event.credit_account, _ACCOUNT_FIELDS)}}}'
    ).encode()


def headers(event: ChangeEvent) -> dict[str, str | int]:
    """The message headers (routing and filtering by type, ledger and codes)."""
    return {
        "event_type": event.type.value,
        "ledger": event.ledger,
        "transfer_code": event.transfer.code,
        "debit_account_code": event.debit_account.code,
        "credit_account_code": event.credit_account.code,
    }


def properties(event: ChangeEvent) -> dict[str, Any]:
    """The message properties besides the headers: constant content type, persistence and
    application id, and the event's timestamp in whole seconds (AMQP timestamps are seconds;
    the body carries the nanoseconds)."""
    return {
        "content_type": CONTENT_TYPE,
        "delivery_mode": DELIVERY_MODE_PERSISTENT,
        "app_id": APP_ID,
        "timestamp_s": event.timestamp // _NS_PER_S,
    }


def _int(doc: dict[str, Any], name: str, bound: int, where: str) -> int:
    value = doc.get(name)
    if type(value) is str and value.isascii() and value.isdigit():
        number = int(value)
        if number < _PORTABLE:
            raise ChangeEventError(f"{where}.{name}: {number} is written as a string")
    elif type(value) is int:
        number = value
        if number >= _PORTABLE:
            raise ChangeEventError(f"{where}.{name}: {number} is written as a number")
    else:
        raise ChangeEventError(f"{where}.{name}: expected an unsigned integer, got {value!r}")
    if not 0 <= number <= bound:
        raise ChangeEventError(f"{where}.{name}: {number} is out of range")
    return number


def _fields(doc: Any, fields: tuple[tuple[str, int], ...], where: str) -> dict[str, int]:
    if not isinstance(doc, dict):
        raise ChangeEventError(f"{where}: expected an object")
    if tuple(doc) != tuple(name for name, _ in fields):
        raise ChangeEventError(f"{where}: unexpected fields {sorted(doc)}")
    return {name: _int(doc, name, bound, where) for name, bound in fields}


def decode(body: bytes) -> ChangeEvent:
    """Parse a CDC message body; `ChangeEventError` if it is not exactly TigerBeetle's shape."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChangeEventError(f"not a JSON document: {exc}") from exc
    if not isinstance(doc, dict) or tuple(doc) != _EVENT_KEYS:
        keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise ChangeEventError(f"not a change event: {keys}")
    try:
        event_type = ChangeEventType(doc["type"])
    except ValueError as exc:
        raise ChangeEventError(f"type: unknown event type {doc['type']!r}") from exc
    return ChangeEvent(
        timestamp=_int(doc, "timestamp", U64_MAX, "event"),
        type=event_type,
        ledger=_int(doc, "ledger", U32_MAX, "event"),
        transfer=ChangeTransfer(**_fields(doc["transfer"], _TRANSFER_FIELDS, "transfer")),
        debit_account=ChangeAccount(
            **_fields(doc["debit_account"], _ACCOUNT_FIELDS, "debit_account")
        ),
        credit_account=ChangeAccount(
            **_fields(doc["credit_account"], _ACCOUNT_FIELDS, "credit_account")
        ),
    )
