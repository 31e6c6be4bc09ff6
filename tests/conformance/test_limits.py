"""Client-side limits and result timestamps, as the official 0.17.9 client and cluster behave.

A call carries at most 8189 events (a production cluster's 1 MiB message); one more raises
`TooMuchDataError` before anything is sent, as does a query `limit` above 8189. Empty batches are
legal and return `[]`. A field that is negative or too wide for its integer type raises
`IntegerOverflowError` while the request is built, so nothing of the batch is applied; `flags`
are not range-checked but truncated to their width. A closed client raises `ClientClosedError`.
Finally the result timestamps: the events of one call occupy consecutive nanosecond slots, a
created object's result timestamp is its stored timestamp and `exists` returns the original one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
import tigerbeetle as tb
from tigerbeetle import (
    Account,
    AccountFilter,
    AccountFilterFlags,
    AccountFlags,
    CreateAccountStatus,
    CreateTransferStatus,
    IntegerOverflowError,
    QueryFilter,
    TooMuchDataError,
    Transfer,
)

from tbledger.embedded import ClientSync as TwinClient
from tests.support import filters

A = CreateAccountStatus
S = CreateTransferStatus
BATCH_MAX = 8189
LIMIT_MAX = 8189


def account_filter(account_id: int, limit: int = 10, **fields) -> AccountFilter:
    both = AccountFilterFlags.DEBITS | AccountFilterFlags.CREDITS
    return filters.account_filter(
        **({"account_id": account_id, "limit": limit, "flags": both} | fields)
    )


def query_filter(ledger: int, limit: int = 10, **fields) -> QueryFilter:
    return filters.query_filter(**({"ledger": ledger, "limit": limit} | fields))


def open_accounts(engine, n: int) -> tuple[int, list[int]]:
    ledger = engine.ledger()
    ids = engine.ids(n)
    results = engine.client.create_accounts([Account(id=i, ledger=ledger, code=1) for i in ids])
    assert [r.status for r in results] == [A.CREATED] * n
    return ledger, ids


# -- batch size ------------------------------------------------------------------------------


def test_full_batch_of_accounts_is_accepted(engine) -> None:
    ledger = engine.ledger()
    ids = engine.ids(BATCH_MAX)
    results = engine.client.create_accounts([Account(id=i, ledger=ledger, code=1) for i in ids])
    assert len(results) == BATCH_MAX
    assert {r.status for r in results} == {A.CREATED}
    assert len(engine.client.lookup_accounts(ids)) == BATCH_MAX


def test_full_batch_of_transfers_is_accepted(engine) -> None:
    ledger, (a, b) = open_accounts(engine, 2)
    batch = [
        Transfer(id=i, debit_account_id=a, credit_account_id=b, amount=1, ledger=ledger, code=1)
        for i in engine.ids(BATCH_MAX)
    ]
    results = engine.client.create_transfers(batch)
    assert {r.status for r in results} == {S.CREATED}
    assert engine.client.lookup_accounts([a])[0].debits_posted == BATCH_MAX


@pytest.mark.parametrize("operation", ["create_accounts", "create_transfers"])
def test_one_event_too_many_raises_and_sends_nothing(engine, operation) -> None:
    ledger, (a, b) = open_accounts(engine, 2)
    ids = engine.ids(BATCH_MAX + 1)
    if operation == "create_accounts":
        batch = [Account(id=i, ledger=ledger, code=1) for i in ids]
        lookup = engine.client.lookup_accounts
    else:
        batch = [
            Transfer(id=i, debit_account_id=a, credit_account_id=b, amount=1, ledger=ledger, code=1)
            for i in ids
        ]
        lookup = engine.client.lookup_transfers
    with pytest.raises(TooMuchDataError):
        getattr(engine.client, operation)(batch)
    assert lookup(ids[:10]) == []


@pytest.mark.parametrize("operation", ["lookup_accounts", "lookup_transfers"])
def test_lookup_batch_limit(engine, operation) -> None:
    lookup = getattr(engine.client, operation)
    assert lookup(engine.ids(BATCH_MAX)) == []
    with pytest.raises(TooMuchDataError):
        lookup(engine.ids(BATCH_MAX + 1))


@pytest.mark.parametrize(
    "operation", ["create_accounts", "create_transfers", "lookup_accounts", "lookup_transfers"]
)
def test_empty_batch_returns_empty_list(engine, operation) -> None:
    assert getattr(engine.client, operation)([]) == []


@pytest.mark.parametrize(
    ("operation", "make_filter"),
    [
        ("get_account_transfers", lambda e, limit: account_filter(e.ids(1)[0], limit)),
        ("get_account_balances", lambda e, limit: account_filter(e.ids(1)[0], limit)),
        ("query_accounts", lambda e, limit: query_filter(e.ledger(), limit)),
        ("query_transfers", lambda e, limit: query_filter(e.ledger(), limit)),
    ],
)
def test_query_limit_above_reply_capacity_raises(engine, operation, make_filter) -> None:
    query = getattr(engine.client, operation)
    assert query(make_filter(engine, LIMIT_MAX)) == []
    with pytest.raises(TooMuchDataError):
        query(make_filter(engine, LIMIT_MAX + 1))


# -- integer ranges --------------------------------------------------------------------------


ACCOUNT_FIELD_BITS = {
    "id": 128,
    "debits_pending": 128,
    "credits_posted": 128,
    "user_data_128": 128,
    "user_data_64": 64,
    "user_data_32": 32,
    "ledger": 32,
    "code": 16,
    "timestamp": 64,
}
TRANSFER_FIELD_BITS = {
    "id": 128,
    "debit_account_id": 128,
    "credit_account_id": 128,
    "amount": 128,
    "pending_id": 128,
    "user_data_128": 128,
    "user_data_64": 64,
    "user_data_32": 32,
    "timeout": 32,
    "ledger": 32,
    "code": 16,
    "timestamp": 64,
}


def _out_of_range(fields: dict[str, int]) -> list:
    return [
        pytest.param(name, value, id=f"{name}={label}")
        for name, bits in fields.items()
        for value, label in ((-1, "-1"), (1 << bits, f"2^{bits}"))
    ]


@pytest.mark.parametrize(("field", "value"), _out_of_range(ACCOUNT_FIELD_BITS))
def test_account_field_out_of_range_raises_before_anything_is_applied(engine, field, value) -> None:
    ledger = engine.ledger()
    valid_id, other_id = engine.ids(2)
    valid = Account(id=valid_id, ledger=ledger, code=1)
    invalid = replace(Account(id=other_id, ledger=ledger, code=1), **{field: value})
    with pytest.raises(IntegerOverflowError):
        engine.client.create_accounts([valid, invalid])
    assert engine.client.lookup_accounts([valid_id]) == []


@pytest.mark.parametrize(("field", "value"), _out_of_range(TRANSFER_FIELD_BITS))
def test_transfer_field_out_of_range_raises_before_anything_is_applied(
    engine, field, value
) -> None:
    ledger, (a, b) = open_accounts(engine, 2)
    valid_id, other_id = engine.ids(2)

    def transfer(transfer_id: int) -> Transfer:
        return Transfer(
            id=transfer_id, debit_account_id=a, credit_account_id=b, amount=1, ledger=ledger, code=1
        )

    with pytest.raises(IntegerOverflowError):
        engine.client.create_transfers(
            [transfer(valid_id), replace(transfer(other_id), **{field: value})]
        )
    assert engine.client.lookup_transfers([valid_id]) == []
    assert engine.client.lookup_accounts([a])[0].debits_posted == 0


def test_integer_overflow_error_is_a_value_error() -> None:
    assert issubclass(IntegerOverflowError, ValueError)


def test_lookup_ids_are_truncated_to_128_bits_not_range_checked(engine) -> None:
    # Unlike event fields, the official client converts lookup ids without a range check: the
    # value is cut to 128 bits (-1 becomes 2^128-1, which never exists; 2^128 + x becomes x).
    _, (a, _) = open_accounts(engine, 2)
    found = engine.client.lookup_accounts([a + (1 << 128), -1, 1 << 128])
    assert [x.id for x in found] == [a]
    assert engine.client.lookup_transfers([-1, 1 << 128]) == []


FILTER_CASES = [
    ("get_account_transfers", "account_id", -1),
    ("get_account_transfers", "limit", 1 << 32),
    ("get_account_balances", "timestamp_min", 1 << 64),
    ("get_account_balances", "code", 1 << 16),
    ("query_accounts", "ledger", 1 << 32),
    ("query_accounts", "user_data_64", -1),
    ("query_transfers", "timestamp_max", 1 << 64),
    ("query_transfers", "user_data_32", 1 << 32),
]


@pytest.mark.parametrize(("operation", "field", "value"), FILTER_CASES)
def test_filter_field_out_of_range_raises(engine, operation, field, value) -> None:
    if operation.startswith("get_"):
        f = replace(account_filter(engine.ids(1)[0]), **{field: value})
    else:
        f = replace(query_filter(engine.ledger()), **{field: value})
    with pytest.raises(IntegerOverflowError):
        getattr(engine.client, operation)(f)


def test_flags_are_truncated_not_range_checked(engine) -> None:
    # Bit 16 falls outside the u16 flags field: it is dropped, not rejected.
    ledger = engine.ledger()
    (account_id,) = engine.ids(1)
    account = Account(id=account_id, ledger=ledger, code=1, flags=(1 << 16) | AccountFlags.HISTORY)
    (result,) = engine.client.create_accounts([account])
    assert result.status == A.CREATED
    assert engine.client.lookup_accounts([account_id])[0].flags == AccountFlags.HISTORY


def test_negative_flags_wrap_to_all_bits_set(engine) -> None:
    # -1 truncated to u16 is 0xFFFF, which includes `linked`: as the lone (so last) event of
    # its batch it reports an open chain rather than an error about the value.
    (account_id,) = engine.ids(1)
    account = Account(id=account_id, ledger=engine.ledger(), code=1, flags=-1)
    assert engine.client.create_accounts([account])[0].status == A.LINKED_EVENT_CHAIN_OPEN


# -- closed client ---------------------------------------------------------------------------


@pytest.fixture
def closed_client(engine, request):
    """A closed client of the engine's kind (closing the engine's own would break other tests)."""
    if engine.real:
        server = request.getfixturevalue("tb_real_server")
        client = tb.ClientSync(cluster_id=server.cluster_id, replica_addresses=server.addresses)
    else:
        client = TwinClient(cluster_id=0)
    client.close()
    return client


CALLS: dict[str, Callable] = {
    "create_accounts": lambda c: c.create_accounts([Account(id=1, ledger=1, code=1)]),
    "create_transfers": lambda c: c.create_transfers([Transfer(id=1)]),
    "lookup_accounts": lambda c: c.lookup_accounts([1]),
    "lookup_transfers": lambda c: c.lookup_transfers([1]),
    "get_account_transfers": lambda c: c.get_account_transfers(account_filter(1)),
    "get_account_balances": lambda c: c.get_account_balances(account_filter(1)),
    "query_accounts": lambda c: c.query_accounts(query_filter(1)),
    "query_transfers": lambda c: c.query_transfers(query_filter(1)),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_closed_client_raises(closed_client, call) -> None:
    with pytest.raises(tb.ClientClosedError):
        call(closed_client)


OVERSIZED_CALLS: dict[str, Callable] = {
    "create_accounts": lambda c: c.create_accounts(
        [Account(id=i, ledger=1, code=1) for i in range(1, BATCH_MAX + 2)]
    ),
    "lookup_transfers": lambda c: c.lookup_transfers(list(range(1, BATCH_MAX + 2))),
    "query_accounts": lambda c: c.query_accounts(query_filter(1, LIMIT_MAX + 1)),
    "get_account_balances": lambda c: c.get_account_balances(account_filter(1, LIMIT_MAX + 1)),
}


@pytest.mark.parametrize("call", OVERSIZED_CALLS.values(), ids=OVERSIZED_CALLS.keys())
def test_closed_client_is_reported_before_size_limits(closed_client, call) -> None:
    # The official client's submit refuses a closed client before any size check runs.
    with pytest.raises(tb.ClientClosedError):
        call(closed_client)


def test_integer_ranges_are_checked_before_the_closed_client(closed_client) -> None:
    # Range checks run while the request is built, before it is submitted.
    with pytest.raises(IntegerOverflowError):
        closed_client.create_transfers([Transfer(id=-1)])


# -- result timestamps -----------------------------------------------------------------------


def test_created_events_of_one_call_have_consecutive_timestamps(engine) -> None:
    ledger = engine.ledger()
    ids = engine.ids(5)
    results = engine.client.create_accounts([Account(id=i, ledger=ledger, code=1) for i in ids])
    first = results[0].timestamp
    assert [r.timestamp for r in results] == [first + i for i in range(5)]
    assert [a.timestamp for a in engine.client.lookup_accounts(ids)] == [
        r.timestamp for r in results
    ]


def test_failed_events_take_their_slot_timestamp(engine) -> None:
    ledger, (a, b) = open_accounts(engine, 2)
    ids = engine.ids(4)
    batch = [
        Transfer(
            id=ids[0], debit_account_id=a, credit_account_id=b, amount=1, ledger=ledger, code=1
        ),
        Transfer(
            id=ids[1], debit_account_id=a, credit_account_id=a, amount=1, ledger=ledger, code=1
        ),
        Transfer(id=ids[2], debit_account_id=a, credit_account_id=b, amount=1, ledger=0, code=1),
        Transfer(
            id=ids[3], debit_account_id=a, credit_account_id=b, amount=1, ledger=ledger, code=1
        ),
    ]
    results = engine.client.create_transfers(batch)
    assert [r.status for r in results] == [
        S.CREATED,
        S.ACCOUNTS_MUST_BE_DIFFERENT,
        S.LEDGER_MUST_NOT_BE_ZERO,
        S.CREATED,
    ]
    first = results[0].timestamp
    assert [r.timestamp for r in results] == [first, first + 1, first + 2, first + 3]


def test_exists_returns_the_original_timestamp(engine) -> None:
    ledger, (a, b) = open_accounts(engine, 2)
    transfer = Transfer(
        id=engine.ids(1)[0], debit_account_id=a, credit_account_id=b, amount=1, ledger=ledger,
        code=1,
    )  # fmt: skip
    (created,) = engine.client.create_transfers([transfer])
    fresh = replace(transfer, id=engine.ids(1)[0])
    results = engine.client.create_transfers([fresh, transfer])
    assert [r.status for r in results] == [S.CREATED, S.EXISTS]
    assert results[1].timestamp == created.timestamp
    assert results[0].timestamp > created.timestamp


def test_exists_with_different_fields_takes_its_slot_timestamp(engine) -> None:
    # Only `created` and `exists` report an object's timestamp; a mismatching retry is a failure
    # like any other and reports the slot it was validated at.
    ledger, (a, b) = open_accounts(engine, 2)
    transfer = Transfer(
        id=engine.ids(1)[0], debit_account_id=a, credit_account_id=b, amount=1, ledger=ledger,
        code=1,
    )  # fmt: skip
    (created,) = engine.client.create_transfers([transfer])
    assert created.status == S.CREATED
    fresh = replace(transfer, id=engine.ids(1)[0])
    results = engine.client.create_transfers([fresh, replace(transfer, amount=2)])
    assert [r.status for r in results] == [S.CREATED, S.EXISTS_WITH_DIFFERENT_AMOUNT]
    assert results[1].timestamp == results[0].timestamp + 1
    account = Account(id=a, ledger=ledger, code=2)
    (account_result,) = engine.client.create_accounts([account])
    assert account_result.status == A.EXISTS_WITH_DIFFERENT_CODE
    assert account_result.timestamp > results[1].timestamp


def test_timestamps_increase_across_calls(engine) -> None:
    ledger = engine.ledger()
    stamps = []
    for account_id in engine.ids(3):
        (result,) = engine.client.create_accounts([Account(id=account_id, ledger=ledger, code=1)])
        stamps.append(result.timestamp)
    assert stamps == sorted(set(stamps))
