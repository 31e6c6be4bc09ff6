"""The domain's nouns: the transfer fields are listed once, and every copy follows the list."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import tigerbeetle as tb

from tbledger.model import (
    INTENT_CONTEXT_FIELDS,
    REQUEST_HASHED_FIELDS,
    TRANSFER_FIELDS,
    TransferIntent,
)
from tbledger.store.rows import INTENT_COLUMNS, intent_columns


def _distinct_intent() -> TransferIntent:
    # Every field a different value, so a swapped pair of fields shows.
    return TransferIntent(
        id=1,
        debit_account_id=2,
        credit_account_id=3,
        amount=4,
        pending_id=5,
        user_data_128=6,
        user_data_64=7,
        user_data_32=8,
        timeout=9,
        ledger=10,
        code=11,
        flags=int(tb.TransferFlags.LINKED),
        timestamp=13,
        payment_id="p",
        event_id="e",
        chain_tx_hash="c",
        idempotency_key="k",
        metadata={"m": 1},
        control={"c": 2},
        chain_id=1,
        chain_index=0,
    )


def test_transfer_fields_are_the_engine_transfer_fields() -> None:
    assert tuple(f.name for f in dataclasses.fields(tb.Transfer)) == TRANSFER_FIELDS


def test_an_intent_holds_every_transfer_field_and_its_context() -> None:
    names = {f.name for f in dataclasses.fields(TransferIntent)}
    assert set(TRANSFER_FIELDS) | set(INTENT_CONTEXT_FIELDS) | {"created_at"} == names


def test_to_and_from_transfer_carry_every_field() -> None:
    intent = _distinct_intent()
    transfer = intent.to_transfer()
    for name in TRANSFER_FIELDS:
        assert getattr(transfer, name) == getattr(intent, name), name
    back = TransferIntent.from_transfer(transfer)
    for name in TRANSFER_FIELDS:
        assert getattr(back, name) == getattr(intent, name), name


def test_request_hash_leaves_out_only_the_id() -> None:
    assert set(TRANSFER_FIELDS) - set(REQUEST_HASHED_FIELDS) == {"id"}


def test_store_columns_follow_the_field_list() -> None:
    intent = _distinct_intent()
    columns = intent_columns([intent], datetime.now(UTC))
    assert INTENT_COLUMNS[: len(TRANSFER_FIELDS)] == TRANSFER_FIELDS
    for index, name in enumerate(TRANSFER_FIELDS):
        assert columns[index] == [getattr(intent, name)], name
