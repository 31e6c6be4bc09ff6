"""A batch of store records as columns: validated a column at a time, ready to write.

Every transfer's write path runs through here (DESIGN §6: batches of 8189), so a batch is not
checked with a Python call per field per record. It is taken apart into columns (one list
comprehension per column), and each column is checked with builtins that loop in C: the set of
types in it, its min and max (or, for a column of one value, that value alone), its strings
joined into one to be measured and scanned. Only when a column fails that check are the records
looked at one by one, by the same `validate_*` functions that define what is valid, so the error
a caller gets names the first bad record and field exactly as a record-by-record check would;
values only that slower check accepts (an ``IntFlag`` for flags, a mapping that is not a dict)
are then normalised to plain ``int``, ``str`` and JSON text.

A batch is a list of columns, in the order of the table's column list below, each a sequence of
what the column holds, in Python: an exact ``int`` for every integer column, u128 and u64
included (never a float), ``str`` or None, an aware UTC datetime, and a JSON document already
encoded as text (validation encodes it anyway to measure it). Columns, not rows, because that is
how both the checks and PostgreSQL's COPY encoder work fastest; SQLite's driver takes rows and
gets them with one ``zip``. Nothing here touches a database.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final, TypeVar

from tbledger.errors import ValidationError
from tbledger.limits import STORE_TEXT_CHARS_MAX, U16_MAX, U32_MAX, U64_MAX, U128_MAX
from tbledger.model import (
    ACCOUNT_EVENT_KINDS,
    INTENT_CONTEXT_FIELDS,
    TRANSFER_EVENT_KINDS,
    TRANSFER_FIELDS,
    AccountRecord,
    AccountStatus,
    EventKind,
    NewAuditEvent,
    TransferIntent,
    request_hash_of,
)
from tbledger.store.records import (
    I32_MAX,
    encode_document,
    is_unicode_text,
    validate_account,
    validate_event,
    validate_intent,
)

__all__ = [
    "ACCOUNT_COLUMNS",
    "EVENT_COLUMNS",
    "INTENT_COLUMNS",
    "Columns",
    "account_columns",
    "event_columns",
    "intent_columns",
    "submitted_columns",
]

# A batch to insert: one sequence of values per column, all of the same length, in the order of
# the table's column list below.
Columns = list[Sequence[Any]]

_R = TypeVar("_R")
_NONE = type(None)
_INT: Final = frozenset({int})
_INT_OR_NONE: Final = frozenset({int, _NONE})
_STR: Final = frozenset({str})
_STR_OR_NONE: Final = frozenset({str, _NONE})
_NONE_ONLY: Final = frozenset({_NONE})
_DICT: Final = frozenset({dict})
# The JSON text of an empty document (most metadata and details).
_EMPTY_DOCUMENT: Final = "{}"

# The transfers columns an intent fills, in row order; created_at (the batch's time) comes last.
_INTENT_FIELDS: Final = (*TRANSFER_FIELDS, *INTENT_CONTEXT_FIELDS)
INTENT_COLUMNS: Final = (*_INTENT_FIELDS, "created_at")

# The audit_events columns an event fills (seq is the database's), recorded_at last.
_EVENT_FIELDS: Final = ("transfer_id", "account_id", "kind", "status", "engine_timestamp", "detail")
EVENT_COLUMNS: Final = (*_EVENT_FIELDS, "recorded_at")

ACCOUNT_COLUMNS: Final = (
    "id",
    "account_type",
    "owner_id",
    "ledger",
    "code",
    "name",
    "status",
    "freeze_transfer_id",
    "metadata",
    "control",
    "flow_ref",
    "created_at",
    "updated_at",
)

# Column checks: True when every value is certainly valid. False sends the batch to the
# record-by-record validator, which raises the precise error (or accepts, and the column is
# normalised).


def _uints(maximum: int, *, nullable: bool = False) -> Callable[[Sequence[Any]], bool]:
    def check(values: Sequence[Any]) -> bool:
        types = set(map(type, values))
        if types != _INT:
            # bool, float and int subclasses fail here: exact ints only.
            if not nullable or not types <= _INT_OR_NONE:
                return False
            if int not in types:
                # Only None (or no value at all).
                return True
            values = [value for value in values if value is not None]
        first = values[0]
        if first == values[-1] and values.count(first) == len(values):
            # One value throughout (zeros, the ledger of a batch): bound it once. The types are
            # exact ints, so equal means the same number.
            return bool(0 <= first <= maximum)
        return bool(min(values) >= 0 and max(values) <= maximum)

    return check


def _strings(values: Sequence[Any]) -> Sequence[str] | None:
    # The column's strings, None values left out; None when it holds anything else (a str
    # subclass included: the slow path normalises those).
    types = set(map(type, values))
    if types == _STR:
        return values
    if types == _NONE_ONLY:
        return ()
    if not types <= _STR_OR_NONE:
        return None
    return [value for value in values if value is not None]


def _texts(values: Sequence[Any]) -> bool:
    given = _strings(values)
    if given is None:
        return False
    text = "".join(given)
    # No value is longer than all of them together: only a long column needs each measured.
    if len(text) > STORE_TEXT_CHARS_MAX and max(map(len, given)) > STORE_TEXT_CHARS_MAX:
        return False
    return text.isascii() or is_unicode_text(text)


def _hashes(values: Sequence[Any]) -> bool:
    given = _strings(values)
    if given is None:
        return False
    if not given:
        return True
    # 64 characters each, every one a lowercase hex digit: a2b_hex refuses anything but hex
    # digits (non-ASCII text included), and none of the six upper-case ones may appear.
    if set(map(len, given)) != {64}:
        return False
    text = "".join(given)
    try:
        binascii.a2b_hex(text)
    except (binascii.Error, ValueError):
        return False
    return not any(digit in text for digit in "ABCDEF")


def _ints(values: Sequence[Any]) -> list[Any]:
    # int.__int__ and str.__str__ take the value a subclass holds, whatever it overrides.
    return [None if value is None else int.__int__(value) for value in values]


def _strs(values: Sequence[Any]) -> list[Any]:
    return [None if value is None else str.__str__(value) for value in values]


_Check = tuple[int, Callable[[Sequence[Any]], bool], Callable[[Sequence[Any]], list[Any]]]


def _column_checks(fields: Sequence[str], checks: dict[str, tuple[Any, Any]]) -> list[_Check]:
    return [(fields.index(name), check, normalize) for name, (check, normalize) in checks.items()]


_U128 = _uints(U128_MAX)
_U128_OR_NONE = _uints(U128_MAX, nullable=True)
_U64 = _uints(U64_MAX)
_U64_OR_NONE = _uints(U64_MAX, nullable=True)
_U32 = _uints(U32_MAX)
_U16 = _uints(U16_MAX)

_INTENT_CHECKS: Final = _column_checks(
    _INTENT_FIELDS,
    {
        "id": (_U128, _ints),
        "debit_account_id": (_U128, _ints),
        "credit_account_id": (_U128, _ints),
        "amount": (_U128, _ints),
        "pending_id": (_U128, _ints),
        "user_data_128": (_U128, _ints),
        "user_data_64": (_U64, _ints),
        "user_data_32": (_U32, _ints),
        "timeout": (_U32, _ints),
        "ledger": (_U32, _ints),
        "code": (_U16, _ints),
        "flags": (_U16, _ints),
        "timestamp": (_U64, _ints),
        "payment_id": (_texts, _strs),
        "event_id": (_texts, _strs),
        "chain_tx_hash": (_texts, _strs),
        "idempotency_key": (_texts, _strs),
        "request_hash": (_hashes, _strs),
        "chain_id": (_U128_OR_NONE, _ints),
        "chain_index": (_uints(I32_MAX, nullable=True), _ints),
    },
)
_INTENT_KEY = _INTENT_FIELDS.index("idempotency_key")
_INTENT_HASH = _INTENT_FIELDS.index("request_hash")
_INTENT_METADATA = _INTENT_FIELDS.index("metadata")
_INTENT_CONTROL = _INTENT_FIELDS.index("control")

_EVENT_CHECKS: Final = _column_checks(
    _EVENT_FIELDS,
    {
        "transfer_id": (_U128_OR_NONE, _ints),
        "account_id": (_U128_OR_NONE, _ints),
        "status": (_texts, _strs),
        "engine_timestamp": (_U64_OR_NONE, _ints),
    },
)
_EVENT_TRANSFER = _EVENT_FIELDS.index("transfer_id")
_EVENT_ACCOUNT = _EVENT_FIELDS.index("account_id")
_EVENT_KIND = _EVENT_FIELDS.index("kind")
_EVENT_DETAIL = _EVENT_FIELDS.index("detail")


def intent_columns(intents: Sequence[TransferIntent], now: datetime) -> Columns:
    """Validated `transfers` columns (`INTENT_COLUMNS`) of a non-empty batch, created at `now`.

    An intent with an idempotency key and no request hash gets `request_hash_of` it.
    """
    columns = _intent_values(intents)
    _check_columns(columns, _INTENT_CHECKS, intents, validate_intent)
    columns[_INTENT_METADATA] = _documents(
        "metadata", columns[_INTENT_METADATA], intents, validate_intent
    )
    columns[_INTENT_CONTROL] = _documents(
        "control", columns[_INTENT_CONTROL], intents, validate_intent
    )
    keys = columns[_INTENT_KEY]
    hashes = columns[_INTENT_HASH]
    if not _all_none(keys) and None in hashes:
        columns[_INTENT_HASH] = [
            request_hash_of(intent) if key is not None and given is None else given
            for intent, key, given in zip(intents, keys, hashes, strict=True)
        ]
    columns.append([now] * len(intents))
    return columns


def submitted_columns(transfer_ids: Sequence[int], now: datetime) -> Columns:
    """`audit_events` columns (`EVENT_COLUMNS`) of ``submitted`` events for validated ids."""
    count = len(transfer_ids)
    nothing = [None] * count
    return [
        transfer_ids,
        nothing,
        [EventKind.SUBMITTED.value] * count,
        nothing,
        nothing,
        [_EMPTY_DOCUMENT] * count,
        [now] * count,
    ]


def event_columns(events: Sequence[NewAuditEvent], now: datetime) -> Columns:
    """Validated `audit_events` columns (`EVENT_COLUMNS`) of a non-empty batch at `now`."""
    columns = _event_values(events)
    kinds = columns[_EVENT_KIND]
    names = _kind_names(kinds)
    if names is None or not (
        (set(names.values()) <= TRANSFER_EVENT_KINDS and None not in columns[_EVENT_TRANSFER])
        or (set(names.values()) <= ACCOUNT_EVENT_KINDS and None not in columns[_EVENT_ACCOUNT])
    ):
        # An unknown kind, a missing subject, or a batch mixing transfer and account kinds.
        _validate_each(events, validate_event)
        names = {kind: EventKind(kind).value for kind in set(kinds)}
    _check_columns(columns, _EVENT_CHECKS, events, validate_event)
    if len(names) == 1:
        columns[_EVENT_KIND] = [*names.values()] * len(events)
    else:
        columns[_EVENT_KIND] = list(map(names.__getitem__, kinds))
    columns[_EVENT_DETAIL] = _documents("detail", columns[_EVENT_DETAIL], events, validate_event)
    columns.append([now] * len(events))
    return columns


def _intent_values(intents: Sequence[TransferIntent]) -> Columns:
    # _INTENT_FIELDS (the model's field lists), spelled out; tests/unit/test_model.py holds the
    # two to the same order, a column at a time: an attribute read compiled into a list
    # comprehension is the cheapest way to a slotted dataclass's field (operator.attrgetter
    # costs twice as much, a tuple per record and a zip a quarter more).
    return [
        [i.id for i in intents],
        [i.debit_account_id for i in intents],
        [i.credit_account_id for i in intents],
        [i.amount for i in intents],
        [i.pending_id for i in intents],
        [i.user_data_128 for i in intents],
        [i.user_data_64 for i in intents],
        [i.user_data_32 for i in intents],
        [i.timeout for i in intents],
        [i.ledger for i in intents],
        [i.code for i in intents],
        [i.flags for i in intents],
        [i.timestamp for i in intents],
        [i.payment_id for i in intents],
        [i.event_id for i in intents],
        [i.chain_tx_hash for i in intents],
        [i.idempotency_key for i in intents],
        [i.request_hash for i in intents],
        [i.metadata for i in intents],
        [i.control for i in intents],
        [i.chain_id for i in intents],
        [i.chain_index for i in intents],
    ]


def _event_values(events: Sequence[NewAuditEvent]) -> Columns:
    # _EVENT_FIELDS, spelled out.
    return [
        [e.transfer_id for e in events],
        [e.account_id for e in events],
        [e.kind for e in events],
        [e.status for e in events],
        [e.engine_timestamp for e in events],
        [e.detail for e in events],
    ]


def _all_none(values: Sequence[Any]) -> bool:
    # count() tries identity first, so a column of None is counted without a comparison.
    return not values or (values[0] is None and values.count(None) == len(values))


def _kind_names(kinds: Sequence[Any]) -> dict[Any, str] | None:
    # Each distinct kind once: a batch has a handful of kinds and thousands of events.
    try:
        return {kind: EventKind(kind).value for kind in set(kinds)}
    except (TypeError, ValueError):
        return None


def account_columns(records: Sequence[AccountRecord], now: datetime) -> Columns:
    """Validated `accounts` columns (`ACCOUNT_COLUMNS`), created and updated at `now`."""
    for record in records:
        validate_account(record)
    rows = [
        (
            int.__int__(record.id),
            str.__str__(record.account_type),
            _str_or_none(record.owner_id),
            int.__int__(record.ledger),
            int.__int__(record.code),
            _str_or_none(record.name),
            AccountStatus(record.status).value,
            None if record.freeze_transfer_id is None else int.__int__(record.freeze_transfer_id),
            encode_document("metadata", record.metadata),
            encode_document("control", record.control),
            _str_or_none(record.flow_ref),
            now,
            now,
        )
        for record in records
    ]
    return [list(column) for column in zip(*rows, strict=True)]


def _str_or_none(value: str | None) -> str | None:
    return None if value is None else str.__str__(value)


def _check_columns(
    columns: Columns,
    checks: Sequence[_Check],
    records: Sequence[_R],
    validate: Callable[[_R], None],
) -> None:
    failed = [(index, normalize) for index, check, normalize in checks if not check(columns[index])]
    if not failed:
        return
    _validate_each(records, validate)
    # Every record is valid: the columns that failed the fast check hold int or str subclasses
    # (or ints beside None); make them plain.
    for index, normalize in failed:
        columns[index] = normalize(columns[index])


def _documents(
    name: str, values: Sequence[Any], records: Sequence[_R], validate: Callable[[_R], None]
) -> Sequence[str]:
    try:
        if set(map(type, values)) == _DICT:
            if not any(values):
                return [_EMPTY_DOCUMENT] * len(values)
            # Plain dicts: an empty one is "{}" without a call.
            return [encode_document(name, value) if value else _EMPTY_DOCUMENT for value in values]
        return [encode_document(name, value) for value in values]
    except ValidationError:
        # Raise what the first invalid record is refused for, as the record-by-record check does.
        _validate_each(records, validate)
        raise


def _validate_each(records: Sequence[_R], validate: Callable[[_R], None]) -> None:
    for record in records:
        validate(record)
