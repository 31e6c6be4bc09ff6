"""u128 and u64 columns round-trip exactly and order numerically on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tbledger.errors import ValidationError
from tbledger.ids import format_id
from tbledger.store import AccountRecord, EventKind, NewAuditEvent, TransferIntent
from tbledger.store.types import U64, U128, UtcDateTime
from tests.store.conftest import StoreCase

U128_EDGES = [0, 1, (1 << 64) - 1, 1 << 64, (1 << 127), (1 << 128) - 2, (1 << 128) - 1]
# Dialects without connections, to call the column types' conversions directly.
POSTGRESQL = sa.create_mock_engine("postgresql+asyncpg://", lambda *_a, **_k: None).dialect
SQLITE = sa.create_mock_engine("sqlite+aiosqlite://", lambda *_a, **_k: None).dialect
U64_EDGES = [0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]


async def test_u128_ids_and_amounts_round_trip_exactly(store_case: StoreCase) -> None:
    store = store_case.store
    await store.create_accounts(
        AccountRecord(id=value, account_type="t", ledger=1, code=1, owner_id="edges")
        for value in U128_EDGES
    )
    for value in U128_EDGES:
        got = await store.get_account(value)
        assert got is not None and got.id == value and type(got.id) is int
    intents = [
        TransferIntent(
            id=value,
            debit_account_id=value,
            credit_account_id=value,
            amount=value,
            pending_id=value,
            user_data_128=value,
            ledger=1,
            code=1,
        )
        for value in U128_EDGES
    ]
    await store.insert_intents(intents)
    for expected in intents:
        got_intent = await store.get_intent(expected.id)
        assert got_intent is not None
        assert got_intent.to_transfer() == expected.to_transfer()


async def test_u128_order_is_numeric_order(store_case: StoreCase) -> None:
    # In SQLite this orders text; fixed-width hex makes it the numeric order.
    store = store_case.store
    await store.create_accounts(
        AccountRecord(id=value, account_type="t", ledger=1, code=1, owner_id="order")
        for value in reversed(U128_EDGES)
    )
    ordered = [a.id for a in await store.get_accounts_by_owner("order")]
    assert ordered == U128_EDGES
    intents = [
        TransferIntent(id=v, debit_account_id=1, credit_account_id=2, amount=1, ledger=1, code=1)
        for v in U128_EDGES[1:]
    ]
    await store.insert_intents(intents)
    after = await store.intents_without_outcome(100, after_id=1 << 64)
    assert [t.id for t in after] == [v for v in U128_EDGES if v > 1 << 64]


async def test_u64_round_trips_exactly(store_case: StoreCase) -> None:
    store = store_case.store
    transfers = [
        TransferIntent(
            id=index + 1,
            debit_account_id=1,
            credit_account_id=2,
            amount=1,
            user_data_64=value,
            timestamp=value,
            ledger=1,
            code=1,
        )
        for index, value in enumerate(U64_EDGES)
    ]
    await store.insert_intents(transfers)
    await store.append_events(
        NewAuditEvent(kind=EventKind.POSTED, transfer_id=t.id, engine_timestamp=t.user_data_64)
        for t in transfers
    )
    for transfer in transfers:
        got = await store.get_intent(transfer.id)
        assert got is not None
        assert (got.user_data_64, got.timestamp) == (transfer.user_data_64, transfer.timestamp)
        [_, posted] = await store.transfer_audit(transfer.id)
        assert posted.engine_timestamp == transfer.user_data_64


async def test_storage_form_is_exact_in_each_database(store_case: StoreCase) -> None:
    value = (1 << 128) - 1
    await store_case.store.create_accounts(
        [AccountRecord(id=value, account_type="t", ledger=1, code=1)]
    )
    async with store_case.admin.connect() as conn:
        if store_case.kind == "postgresql":
            raw = await conn.execute(sa.text("SELECT id::text, pg_typeof(id)::text FROM accounts"))
            assert tuple(raw.one()) == (str(value), "numeric")
        else:
            raw = await conn.execute(sa.text("SELECT id, typeof(id) FROM accounts"))
            assert tuple(raw.one()) == (format_id(value), "text")


@pytest.mark.parametrize("column_type", [U128(), U64()])
@pytest.mark.parametrize("bad", [-1, 1 << 128, True, 1.0, "1"])
def test_u_types_refuse_what_they_cannot_hold(
    column_type: sa.types.TypeDecorator[int], bad: object
) -> None:
    for dialect in (POSTGRESQL, SQLITE):
        with pytest.raises(ValidationError):
            column_type.process_bind_param(bad, dialect)  # type: ignore[arg-type]


def test_u_types_refuse_non_canonical_stored_text() -> None:
    for stored in ["0x1", "0X" + "0" * 32, "0x" + "G" * 32, "0x" + "A" * 32]:
        with pytest.raises(ValidationError):
            U128().process_result_value(stored, SQLITE)


def test_utc_datetime_refuses_naive_and_normalises_to_utc() -> None:
    column = UtcDateTime()
    with pytest.raises(ValidationError):
        column.process_bind_param(datetime(2026, 1, 1), POSTGRESQL)
    plus_two = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    stored = column.process_bind_param(plus_two, SQLITE)
    assert stored == datetime(2026, 1, 1, 10)
    back = column.process_result_value(stored, SQLITE)
    assert back == plus_two and back is not None and back.tzinfo is UTC
