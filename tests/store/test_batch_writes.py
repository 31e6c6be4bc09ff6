"""The batch write path: COPY (PostgreSQL) / executemany (SQLite), ``returning=False``, and the
column-wise validation in front of it.

Batches go to the driver below SQLAlchemy, so these check what that must not lose: exact u128 and
u64 values at their limits, strings that would break a COPY text row if they were not escaped,
duplicate keys reported with the same constraint names, one transaction per call (a failure after
the transfers went out leaves nothing), and input refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import fields, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest
import sqlalchemy as sa
import tigerbeetle
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from tbledger.errors import (
    DuplicateRecordError,
    InvalidIdError,
    StoreUnavailableError,
    ValidationError,
)
from tbledger.ids import new_id
from tbledger.limits import (
    STORE_BATCH_ROWS_MAX,
    STORE_DIRECT_ROWS_MAX,
    U16_MAX,
    U32_MAX,
    U64_MAX,
    U128_MAX,
)
from tbledger.model import request_hash_of
from tbledger.store import (
    DEFAULT_APP_ROLE,
    AccountRecord,
    EventKind,
    NewAuditEvent,
    Store,
    TransferIntent,
    postgres,
    rows,
)
from tbledger.store.backend import Backend
from tbledger.store.connect import open_backend
from tbledger.store.records import I32_MAX, encode_document
from tbledger.store.tables import audit_events, transfers
from tests.store.conftest import StoreCase, case_options, open_store
from tests.support.records import intent

# Values that end a field or a row, or mean NULL or end-of-data, in COPY's text format, and
# characters outside ASCII.
AWKWARD = ["a\tb", "line\nbreak", "cr\rlf\r\n", "back\\slash", "\\N", "\\.", "", "é€😀", "\\\\t"]


def extremes(**values: Any) -> TransferIntent:
    """An intent with every numeric field at its largest value."""
    fields_: dict[str, Any] = {
        "id": U128_MAX - new_id() % 1000,
        "debit_account_id": U128_MAX,
        "credit_account_id": U128_MAX - 1,
        "amount": U128_MAX,
        "pending_id": U128_MAX,
        "user_data_128": U128_MAX,
        "user_data_64": U64_MAX,
        "user_data_32": U32_MAX,
        "timeout": U32_MAX,
        "ledger": U32_MAX,
        "code": U16_MAX,
        "flags": U16_MAX,
        "timestamp": U64_MAX,
        "chain_id": U128_MAX,
        "chain_index": I32_MAX,
    }
    fields_.update(values)
    return TransferIntent(**fields_)


def without_created_at(record: TransferIntent | None) -> TransferIntent | None:
    return None if record is None else replace(record, created_at=None)


# returning=False: written all the same, nothing read back.


@pytest.mark.parametrize("returning", [True, False])
async def test_insert_intents_writes_the_same_either_way(store: Store, returning: bool) -> None:
    batch = [intent(event_id=f"e-{i}") for i in range(300)]
    result = await store.insert_intents(batch, returning=returning)
    tail = await store.events_since(0, 1000)
    if returning:
        assert result == tail
    else:
        assert result is None
    # Seq order is input order: the submitted events come back in the batch's order.
    assert [e.transfer_id for e in tail] == [i.id for i in batch]
    assert {e.kind for e in tail} == {EventKind.SUBMITTED}
    assert all(e.detail == {} and e.status is None for e in tail)
    for item in batch[::50]:
        assert without_created_at(await store.get_intent(item.id)) == item


@pytest.mark.parametrize("returning", [True, False])
async def test_append_events_writes_the_same_either_way(store: Store, returning: bool) -> None:
    batch = [intent() for _ in range(200)]
    await store.insert_intents(batch, returning=False)
    events = [
        NewAuditEvent(
            kind=EventKind.POSTED if n % 2 else EventKind.FAILED,
            transfer_id=i.id,
            status=None if n % 2 else "exceeds_credits",
            engine_timestamp=U64_MAX - n,
            detail={} if n % 3 else {"n": n, "by": "0x01"},
        )
        for n, i in enumerate(batch)
    ]
    result = await store.append_events(events, returning=returning)
    tail = (await store.events_since(0, 1000))[len(batch) :]
    if returning:
        assert result == tail
    else:
        assert result is None
    assert [
        (e.kind, e.transfer_id, e.status, e.engine_timestamp, dict(e.detail)) for e in tail
    ] == [(e.kind, e.transfer_id, e.status, e.engine_timestamp, dict(e.detail)) for e in events]
    seqs = [e.seq for e in tail]
    assert seqs == sorted(seqs)


async def test_empty_batches_without_returning_are_no_ops(store: Store) -> None:
    assert await store.insert_intents([], returning=False) is None
    assert await store.append_events([], returning=False) is None
    assert await store.events_since(0, 10) == []


async def test_a_full_batch_goes_in_one_call(store: Store) -> None:
    batch = [intent() for _ in range(STORE_BATCH_ROWS_MAX)]
    await store.insert_intents(batch, returning=False)
    await store.append_events(
        [NewAuditEvent(kind=EventKind.POSTED, transfer_id=i.id) for i in batch], returning=False
    )
    tail = await store.events_since(0, STORE_BATCH_ROWS_MAX)
    assert [e.transfer_id for e in tail] == [i.id for i in batch]
    last = await store.events_since(tail[-1].seq, STORE_BATCH_ROWS_MAX)
    assert [e.transfer_id for e in last] == [i.id for i in batch]
    assert {e.kind for e in last} == {EventKind.POSTED}


# Exact values at the limits.


@pytest.mark.parametrize("returning", [True, False])
async def test_every_field_at_its_limit_round_trips(store: Store, returning: bool) -> None:
    edge = extremes(metadata={"big": U128_MAX, "neg": -1}, request_hash="f" * 64)
    zero = intent(chain_id=0, chain_index=0, amount=0, debit_account_id=0, credit_account_id=0)
    await store.insert_intents([edge, zero], returning=returning)
    got = await store.get_intent(edge.id)
    assert without_created_at(got) == edge
    assert got is not None and type(got.amount) is int and got.metadata["big"] == U128_MAX
    assert without_created_at(await store.get_intent(zero.id)) == zero
    appended = await store.append_events(
        [
            NewAuditEvent(
                kind=EventKind.PENDING, transfer_id=edge.id, engine_timestamp=U64_MAX, status="x"
            )
        ],
        returning=returning,
    )
    [latest] = (await store.current_status([edge.id])).values()
    assert latest.engine_timestamp == U64_MAX and latest.transfer_id == edge.id
    if returning:
        assert appended == [latest]


async def test_recovery_rebuilds_the_exact_engine_transfer(store: Store) -> None:
    transfer = tigerbeetle.Transfer(
        id=new_id(),
        debit_account_id=U128_MAX,
        credit_account_id=U128_MAX - 1,
        amount=U128_MAX,
        user_data_64=U64_MAX,
        user_data_32=U32_MAX,
        ledger=U32_MAX,
        code=U16_MAX,
        flags=tigerbeetle.TransferFlags.LINKED | tigerbeetle.TransferFlags.PENDING,
        timeout=U32_MAX,
    )
    await store.insert_intents([TransferIntent.from_transfer(transfer)], returning=False)
    got = await store.get_intent(transfer.id)
    assert got is not None and got.to_transfer() == transfer


# Strings that COPY's text format would misread if they were not escaped.


@pytest.mark.parametrize("returning", [True, False])
async def test_awkward_strings_round_trip_and_add_no_rows(store: Store, returning: bool) -> None:
    batch = [
        intent(
            payment_id=text,
            event_id=f"evt{text}",
            chain_tx_hash=f"{text}end",
            idempotency_key=f"key-{n}-{text}",
            metadata={"memo": text, text: [text, {"nested": text}], "n": n},
        )
        for n, text in enumerate(AWKWARD)
    ]
    await store.insert_intents(batch, returning=returning)
    for item in batch:
        got = await store.get_intent(item.id)
        assert got is not None
        assert without_created_at(replace(got, request_hash=None)) == item
        assert got.metadata == item.metadata
    events = [
        NewAuditEvent(
            kind=EventKind.FAILED, transfer_id=item.id, status=text, detail={"why": text, text: 1}
        )
        for item, text in zip(batch, AWKWARD, strict=True)
    ]
    await store.append_events(events, returning=returning)
    tail = await store.events_since(0, 100)
    # Exactly one submitted and one failed event per intent: no value split a row in two.
    assert len(tail) == 2 * len(batch)
    assert [(e.status, dict(e.detail)) for e in tail[len(batch) :]] == [
        (e.status, dict(e.detail)) for e in events
    ]
    assert (await store.transfers_by_event_id("evt\\N"))[0].id == batch[AWKWARD.index("\\N")].id


async def test_text_with_a_lone_surrogate_is_refused_before_any_write(store: Store) -> None:
    good = intent()
    with pytest.raises(ValidationError, match="surrogate"):
        await store.insert_intents([good, intent(event_id="bad\ud800")], returning=False)
    with pytest.raises(ValidationError, match="surrogate"):
        await store.append_events(
            [NewAuditEvent(kind=EventKind.POSTED, transfer_id=good.id, status="\udfff")]
        )
    assert await store.get_intent(good.id) is None


# Duplicates through the driver: the same errors and constraint names as before.


@pytest.mark.parametrize("returning", [True, False])
async def test_duplicate_id_in_a_batch_write_names_the_primary_key(
    store: Store, returning: bool
) -> None:
    first = extremes()
    await store.insert_intents([first], returning=returning)
    fresh = intent()
    with pytest.raises(DuplicateRecordError) as raised:
        await store.insert_intents([fresh, replace(first, amount=1)], returning=returning)
    assert raised.value.constraint == "pk_transfers"
    assert raised.value.__cause__ is not None
    assert await store.get_intent(fresh.id) is None
    assert await store.transfer_audit(fresh.id) == []
    # The store is still usable afterwards (the failed transaction was rolled back).
    await store.insert_intents([fresh], returning=returning)
    assert await store.get_intent(fresh.id) is not None


async def test_duplicate_id_within_one_batch_is_refused(store: Store) -> None:
    twin = intent()
    with pytest.raises(DuplicateRecordError) as raised:
        await store.insert_intents([twin, intent(), twin], returning=False)
    assert raised.value.constraint == "pk_transfers"
    assert await store.events_since(0, 10) == []


async def test_duplicate_idempotency_key_without_returning(store: Store) -> None:
    await store.insert_intents([intent(idempotency_key="order-1")], returning=False)
    retry = intent(idempotency_key="order-1")
    with pytest.raises(DuplicateRecordError) as raised:
        await store.insert_intents([retry], returning=False)
    assert raised.value.constraint == "ux_transfers_idempotency_key"
    assert await store.get_intent(retry.id) is None


async def test_duplicate_account_ids_name_the_primary_key(store: Store) -> None:
    record = AccountRecord(id=U128_MAX, account_type="user", ledger=1, code=1)
    await store.create_accounts([record])
    with pytest.raises(DuplicateRecordError) as raised:
        await store.create_accounts([replace(record, owner_id="other")])
    assert raised.value.constraint == "pk_accounts"


@pytest.mark.parametrize("returning", [True, False])
async def test_an_event_names_its_transfer_without_a_foreign_key(
    store: Store, returning: bool
) -> None:
    # The write protocol inserts an intent before any other event names it, so the database no
    # longer checks the reference (tables.py: the per-row check cost more than the insert). An
    # event for a transfer the store does not hold is appended like any other.
    known = intent()
    await store.insert_intents([known], returning=False)
    unknown = new_id()
    await store.append_events(
        [
            NewAuditEvent(kind=EventKind.POSTED, transfer_id=known.id),
            NewAuditEvent(kind=EventKind.POSTED, transfer_id=unknown),
        ],
        returning=returning,
    )
    assert [e.kind for e in await store.transfer_audit(known.id)] == [
        EventKind.SUBMITTED,
        EventKind.POSTED,
    ]
    assert [e.kind for e in await store.transfer_audit(unknown)] == [EventKind.POSTED]
    assert await store.get_intent(unknown) is None


# One transaction per call.


class EventsFail:
    """A backend whose events insert fails while `armed`, after the transfers went out."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.single_connection = backend.single_connection
        self.direct_rows_max = backend.direct_rows_max
        self.armed = True
        self.sent: list[bool] = []

    def create_engine(self) -> AsyncEngine:
        return self.backend.create_engine()

    async def insert_rows(self, *args: Any) -> None:
        await self.backend.insert_rows(*args)

    async def insert_events(self, *args: Any, returning: bool) -> list[int]:
        if self.armed:
            self.sent.append(True)
            raise RuntimeError("the events insert failed")
        return await self.backend.insert_events(*args, returning=returning)

    async def insert_direct(self, *args: Any) -> None:
        await self.backend.insert_direct(*args)

    async def lock_audit(self, *args: Any) -> None:
        await self.backend.lock_audit(*args)


async def test_a_failure_after_the_transfers_were_sent_leaves_nothing(
    store_case: StoreCase,
) -> None:
    backend = EventsFail(open_backend(store_case.url, case_options(store_case)))
    async with open_store(backend) as store:
        # Past the direct statement's size, or with the events read back where a direct insert
        # serves every size (SQLite): the transfers and their events are two statements.
        every_size = backend.direct_rows_max >= STORE_BATCH_ROWS_MAX
        batch = [intent() for _ in range(2 if every_size else backend.direct_rows_max + 1)]
        with pytest.raises(RuntimeError):
            await store.insert_intents(batch, returning=every_size)
        assert backend.sent
        backend.armed = False
        # The transfers went out first; they were rolled back with the transaction.
        for item in batch:
            assert await store.get_intent(item.id) is None
        await store.insert_intents(batch, returning=False)
        assert await store.get_intent(batch[0].id) is not None


async def test_batch_writes_run_as_the_application_role(postgres_case: StoreCase) -> None:
    store = postgres_case.store
    async with store.engine.connect() as conn:
        role = (await conn.execute(sa.text("SELECT current_user"))).scalar_one()
    assert role == DEFAULT_APP_ROLE
    batch = [extremes(), intent()]
    await store.insert_intents(batch, returning=False)
    await store.append_events(
        [NewAuditEvent(kind=EventKind.POSTED, transfer_id=i.id) for i in batch], returning=False
    )
    await store.create_accounts([AccountRecord(id=new_id(), account_type="u", ledger=1, code=1)])
    async with postgres_case.admin.connect() as conn:
        count = await conn.execute(sa.text("SELECT count(*) FROM audit_events"))
        assert count.scalar_one() == 5


# Validation before anything is sent, and normalisation of what only the slow check accepts.


class Color(enum.IntEnum):
    RED = 7


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"chain_id": -1}, InvalidIdError),
        ({"chain_id": U128_MAX + 1}, InvalidIdError),
        ({"chain_index": -1}, ValidationError),
        ({"chain_index": I32_MAX + 1}, ValidationError),
        ({"chain_index": "1"}, ValidationError),
        ({"amount": 1.0}, InvalidIdError),
        ({"amount": True}, InvalidIdError),
        ({"ledger": True}, ValidationError),
        ({"code": 2.0}, ValidationError),
        ({"request_hash": "A" * 64}, ValidationError),
        ({"metadata": {"x": float("nan")}}, ValidationError),
        ({"metadata": {"x": "y" * 5000}}, ValidationError),
    ],
)
@pytest.mark.parametrize("returning", [True, False])
async def test_bad_fields_are_refused_before_any_write(
    store: Store, values: dict[str, Any], error: type[Exception], returning: bool
) -> None:
    good = intent()
    with pytest.raises(error):
        await store.insert_intents([good, intent(**values)], returning=returning)
    assert await store.get_intent(good.id) is None
    assert await store.events_since(0, 10) == []


async def test_the_first_bad_record_is_the_one_reported(store: Store) -> None:
    # Record order first, then field order, as a record-by-record check reports it.
    with pytest.raises(ValidationError, match="metadata"):
        await store.insert_intents([intent(metadata={"x": {1, 2}}), intent(user_data_32=-1)])
    with pytest.raises(ValidationError, match="user_data_32"):
        await store.insert_intents([intent(user_data_32=-1), intent(metadata={"x": {1, 2}})])


async def test_int_and_mapping_subclasses_are_stored_as_plain_values(store: Store) -> None:
    item = intent(
        flags=tigerbeetle.TransferFlags.LINKED,
        code=Color.RED,
        metadata=MappingProxyType({"a": 1}),
        chain_id=Color.RED,
        chain_index=Color.RED,
    )
    [submitted] = await store.insert_intents([item])
    assert type(submitted.transfer_id) is int
    got = await store.get_intent(item.id)
    assert got is not None
    assert (got.flags, got.code, got.chain_id, got.chain_index) == (1, 7, 7, 7)
    assert got.metadata == {"a": 1}
    [appended] = await store.append_events(
        [NewAuditEvent(kind=EventKind.POSTED, transfer_id=item.id, engine_timestamp=Color.RED)]
    )
    assert type(appended.engine_timestamp) is int


async def test_a_batch_may_mix_transfer_and_account_events(store: Store) -> None:
    account = AccountRecord(id=new_id(), account_type="u", ledger=1, code=1)
    await store.create_accounts([account])
    item = intent()
    await store.insert_intents([item], returning=False)
    appended = await store.append_events(
        [
            NewAuditEvent(kind=EventKind.POSTED, transfer_id=item.id),
            NewAuditEvent(
                kind=EventKind.ACCOUNT_STATUS_CHANGED, account_id=account.id, status="frozen"
            ),
        ]
    )
    assert [(e.kind, e.transfer_id, e.account_id) for e in appended] == [
        (EventKind.POSTED, item.id, None),
        (EventKind.ACCOUNT_STATUS_CHANGED, None, account.id),
    ]
    with pytest.raises(ValidationError, match="needs an account_id"):
        await store.append_events(
            [
                NewAuditEvent(kind=EventKind.POSTED, transfer_id=item.id),
                NewAuditEvent(kind=EventKind.ACCOUNT_CREATED, transfer_id=item.id),
            ]
        )


# The column layout itself (no database).


def test_the_columns_follow_the_column_lists() -> None:
    # Validation writes documents as JSON text, fills in a keyed intent's request hash, spells an
    # event's kind as its value and stamps the batch's time; every other value is the record's.
    now = datetime.now(UTC)
    item = extremes(payment_id="p", event_id="e", chain_tx_hash="c", idempotency_key="k")
    other = intent(metadata={"n": 1})
    columns = rows.intent_columns([item, other], now)
    assert len(columns) == len(rows.INTENT_COLUMNS)
    for record, k in ((item, 0), (other, 1)):
        values = dict(zip(rows.INTENT_COLUMNS, [column[k] for column in columns], strict=True))
        expected = {name: getattr(record, name) for name in rows.INTENT_COLUMNS[:-1]}
        expected["metadata"] = encode_document("metadata", record.metadata)
        expected["control"] = encode_document("control", record.control)
        expected["request_hash"] = request_hash_of(record) if record.idempotency_key else None
        assert values == {**expected, "created_at": now}
    assert rows.INTENT_COLUMNS[-1] == "created_at"
    assert set(rows.INTENT_COLUMNS) == {f.name for f in fields(TransferIntent)}
    event = NewAuditEvent(
        kind=EventKind.PENDING,
        transfer_id=1,
        account_id=2,
        status="s",
        engine_timestamp=3,
        detail={"d": 4},
    )
    columns = rows.event_columns([event], now)
    assert len(columns) == len(rows.EVENT_COLUMNS)
    values = dict(zip(rows.EVENT_COLUMNS, [column[0] for column in columns], strict=True))
    expected = {name: getattr(event, name) for name in rows.EVENT_COLUMNS[:-1]}
    expected["kind"] = event.kind.value
    expected["detail"] = encode_document("detail", event.detail)
    assert values == {**expected, rows.EVENT_COLUMNS[-1]: now}


def test_columns_hold_plain_values_and_json_text() -> None:
    now = datetime.now(UTC)
    batch = [intent(metadata={"k": "v"}), intent(idempotency_key="key")]
    columns = dict(zip(rows.INTENT_COLUMNS, rows.intent_columns(batch, now), strict=True))
    assert list(columns["metadata"]) == ['{"k":"v"}', "{}"]
    assert columns["request_hash"][0] is None and len(columns["request_hash"][1]) == 64
    assert list(columns["created_at"]) == [now, now]
    events = rows.submitted_columns([1, 2], now)
    assert [list(c) for c in events] == [
        [1, 2],
        [None, None],
        ["submitted", "submitted"],
        [None, None],
        [None, None],
        ["{}", "{}"],
        [now, now],
    ]


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"user_data_32": U32_MAX + 1}, ValidationError),
        ({"timeout": -1}, ValidationError),
        ({"ledger": True}, ValidationError),
        ({"amount": U128_MAX + 1}, InvalidIdError),
        ({"chain_index": I32_MAX + 1}, ValidationError),
        ({"event_id": "x" * 256}, ValidationError),
        ({"payment_id": "bad\ud800"}, ValidationError),
        ({"request_hash": "A" * 64}, ValidationError),
    ],
)
def test_a_column_of_one_bad_value_throughout_is_refused(
    values: dict[str, Any], error: type[Exception]
) -> None:
    # A column holding one value in every row is checked through that value alone.
    with pytest.raises(error):
        rows.intent_columns([intent(**values) for _ in range(3)], datetime.now(UTC))


GOOD_HASH = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "bad",
    ["A" * 64, "g" * 64, "a" * 63, "a" * 65, "a" * 63 + "\n", " " + "a" * 63, "é" * 64, ""],
)
def test_a_bad_request_hash_among_good_ones_is_refused(bad: str) -> None:
    batch = [intent(request_hash=GOOD_HASH), intent(request_hash=bad), intent(request_hash=None)]
    with pytest.raises(ValidationError, match="request_hash"):
        rows.intent_columns(batch, datetime.now(UTC))
    columns = rows.intent_columns([batch[0], batch[2]], datetime.now(UTC))
    assert list(columns[rows.INTENT_COLUMNS.index("request_hash")]) == [GOOD_HASH, None]


def reference_copy_text(columns: rows.Columns) -> bytes:
    """COPY text the obvious way: every value of every row spelled on its own."""

    def spell(value: Any) -> str:
        if value is None:
            return "\\N"
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, int):
            return str(value)
        text = str(value)
        for special, escape in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
            text = text.replace(special, escape)
        return text

    lines = ["\t".join(map(spell, row)) + "\n" for row in zip(*columns, strict=True)]
    return "".join(lines).encode()


def event_batch(count: int, **columns: Any) -> rows.Columns:
    # EVENT_COLUMNS, each a list of `count` values: one value repeated unless given per row.
    first = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    repeated: dict[str, Any] = {
        "transfer_id": 7,
        "account_id": None,
        "kind": "posted",
        "status": None,
        "engine_timestamp": None,
        "detail": "{}",
        "recorded_at": first,
    }
    return [
        list(columns[name]) if name in columns else [repeated[name]] * count
        for name in rows.EVENT_COLUMNS
    ]


SECOND = datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    "columns",
    [
        event_batch(3),
        event_batch(1),
        event_batch(3, transfer_id=[1, U128_MAX, 3]),
        event_batch(3, status=AWKWARD[:3]),
        event_batch(3, status=["a\tb"] * 3),
        event_batch(3, status=["\\N", None, "é€😀"]),
        event_batch(3, recorded_at=[SECOND, SECOND, SECOND.replace(second=7)]),
        event_batch(4, transfer_id=[1, None, 1, 2], account_id=[None, 5, None, None]),
        event_batch(
            4,
            transfer_id=[U128_MAX] * 4,
            engine_timestamp=[U64_MAX, 0, None, 0],
            detail=['{"a":"x\\ny"}', "{}", "{}", '{"b":1}'],
            kind=["posted", "failed", "posted", "posted"],
        ),
        event_batch(
            9,
            transfer_id=range(9),
            status=AWKWARD,
            engine_timestamp=[0] * 8 + [1],
            recorded_at=[SECOND] * 9,
        ),
    ],
)
def test_copy_text_matches_spelling_every_value(columns: rows.Columns) -> None:
    expected = reference_copy_text(columns)
    assert postgres.copy_text(audit_events, rows.EVENT_COLUMNS, columns) == expected


def test_copy_text_of_transfers_matches_spelling_every_value() -> None:
    now = datetime.now(UTC)
    batch = [
        intent(idempotency_key=f"k{n}", event_id=AWKWARD[n % len(AWKWARD)], ledger=n % 2 + 1)
        for n in range(20)
    ]
    batch += [extremes(metadata={"x": "\t"}), intent(chain_id=5, chain_index=0)]
    for columns in (rows.intent_columns(batch, now), rows.intent_columns(batch[:1], now)):
        expected = reference_copy_text(columns)
        assert postgres.copy_text(transfers, rows.INTENT_COLUMNS, columns) == expected


def test_copy_text_refuses_a_lone_surrogate_in_a_shared_value() -> None:
    columns = event_batch(2, status=["\udfff", "\udfff"])
    with pytest.raises(ValidationError, match="surrogate"):
        postgres.copy_text(audit_events, rows.EVENT_COLUMNS, columns)


def postgres_backend(case: StoreCase, calls: postgres.DriverCalls) -> postgres.PostgresBackend:
    """A backend like `case.store`'s whose calls straight to the driver go through `calls`."""
    return postgres.PostgresBackend(make_url(case.url), case_options(case), calls=calls)


async def test_returned_seqs_leave_out_rows_another_writer_commits_meanwhile(
    postgres_case: StoreCase,
) -> None:
    # COPY has no RETURNING; the seqs are read back afterwards. A writer that does not take the
    # store's lock (a person with psql, another tool) may commit a row in between, above ours.
    item = intent()
    await postgres_case.store.insert_intents([item], returning=False)

    class Interleaved(postgres.DriverCalls):
        async def copy(self, *args: Any) -> None:
            await super().copy(*args)
            async with postgres_case.admin.begin() as conn:
                await conn.execute(
                    sa.text(
                        "INSERT INTO audit_events (transfer_id, kind, detail) "
                        "VALUES (:t, 'voided', '{}')"
                    ),
                    {"t": item.id},
                )

    async with open_store(postgres_backend(postgres_case, Interleaved())) as store:
        appended = await store.append_events(
            [NewAuditEvent(kind=EventKind.POSTED, transfer_id=item.id) for _ in range(3)]
        )
    audit = await postgres_case.store.transfer_audit(item.id)
    kinds = [EventKind.SUBMITTED, *[EventKind.POSTED] * 3, EventKind.VOIDED]
    assert [e.kind for e in audit] == kinds
    assert appended == audit[1:4]


@pytest.mark.parametrize("size", [1, STORE_DIRECT_ROWS_MAX, STORE_DIRECT_ROWS_MAX + 1])
async def test_appends_wait_for_the_audit_lock_so_seq_order_is_commit_order(
    postgres_case: StoreCase, size: int
) -> None:
    # The direct statement (small batches) takes the same lock as the COPY path, before any seq
    # is drawn, and holds it to its commit.
    store = postgres_case.store
    batch = [intent() for _ in range(size)]
    async with postgres_case.admin.begin() as conn:
        await conn.execute(
            sa.text(
                "SELECT pg_advisory_xact_lock("
                "CAST(CAST(CAST('audit_events' AS regclass) AS oid) AS bigint))"
            )
        )
        writes = asyncio.ensure_future(
            asyncio.gather(
                store.insert_intents(batch, returning=False),
                store.append_events(
                    [NewAuditEvent(kind=EventKind.POSTED, transfer_id=batch[0].id)],
                    returning=False,
                ),
            )
        )
        await asyncio.sleep(0.3)
        assert not writes.done()
        async with postgres_case.admin.connect() as other:
            waiting = await other.execute(
                sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            )
            assert waiting.scalar_one() == 2
    await writes
    assert len(await store.events_since(0, 2 * size)) == size + 1


@pytest.mark.parametrize("path", ["direct", "copy"])
async def test_a_connection_lost_during_a_batch_is_unavailable_and_replaced(
    postgres_case: StoreCase, path: str
) -> None:
    # A small batch is one direct statement; a larger one COPYs in a transaction.

    class SentOnADeadConnection(postgres.DriverCalls):
        armed = True

        async def die(self, driver: Any) -> None:
            async with postgres_case.admin.connect() as conn:
                await conn.execute(
                    sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": driver.get_server_pid()}
                )

        async def execute(self, driver: Any, *args: Any) -> None:
            if self.armed and path == "direct":
                await self.die(driver)
            await super().execute(driver, *args)

        async def copy(self, driver: Any, *args: Any) -> None:
            if self.armed and path == "copy":
                await self.die(driver)
            await super().copy(driver, *args)

    calls = SentOnADeadConnection()
    async with open_store(postgres_backend(postgres_case, calls)) as store:
        size = 10 if path == "direct" else STORE_DIRECT_ROWS_MAX + 1
        batch = [intent() for _ in range(size)]
        with pytest.raises(StoreUnavailableError):
            await store.insert_intents(batch, returning=False)
        calls.armed = False
        await store.insert_intents(batch, returning=False)
        assert await store.get_intent(batch[0].id) is not None


@pytest.mark.parametrize("delay_s", [0.0, 0.005, 0.02, 0.05])
async def test_a_cancelled_batch_is_all_or_nothing_and_the_store_goes_on(
    store: Store, delay_s: float
) -> None:
    # Cancelled wherever it happens to be (validation, COPY, commit): either every intent of the
    # batch and its submitted event are stored, or none; the next call works.
    batch = [intent() for _ in range(STORE_BATCH_ROWS_MAX)]
    task = asyncio.create_task(store.insert_intents(batch, returning=False))
    await asyncio.sleep(delay_s)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    stored = [await store.get_intent(i.id) is not None for i in (batch[0], batch[-1])]
    submitted = await store.events_since(0, STORE_BATCH_ROWS_MAX)
    assert stored in ([True, True], [False, False])
    assert len(submitted) == (len(batch) if stored[0] else 0)
    after = [intent() for _ in range(100)]
    await store.insert_intents(after, returning=False)
    await store.append_events(
        [NewAuditEvent(kind=EventKind.POSTED, transfer_id=i.id) for i in after], returning=False
    )
    assert len(await store.transfer_audit(after[-1].id)) == 2


@pytest.mark.parametrize("which", [1, 2])
@pytest.mark.parametrize("returning", [True, False])
async def test_a_batch_cancelled_mid_copy_leaves_nothing_and_the_store_goes_on(
    postgres_case: StoreCase, which: int, returning: bool
) -> None:
    # The caller's deadline cancels the call while the driver is sending a COPY (the transfers,
    # or the submitted events): the connection is in the middle of the COPY protocol.

    class CancelledMidCopy(postgres.DriverCalls):
        armed = True
        copies = 0

        async def copy(self, *args: Any) -> None:
            if self.armed:
                self.copies += 1
                if self.copies == which:
                    task = asyncio.current_task()
                    assert task is not None
                    asyncio.get_running_loop().call_later(0.001, task.cancel)
            await super().copy(*args)

    calls = CancelledMidCopy()
    async with open_store(postgres_backend(postgres_case, calls)) as store:
        batch = [intent() for _ in range(STORE_BATCH_ROWS_MAX)]
        with pytest.raises(asyncio.CancelledError):
            await store.insert_intents(batch, returning=returning)
        calls.armed = False
        assert calls.copies == which
        assert await store.get_intent(batch[0].id) is None
        assert await store.events_since(0, 10) == []
        await store.insert_intents(batch[:10], returning=returning)
        assert len(await store.events_since(0, 100)) == 10
