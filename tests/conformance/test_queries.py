"""The four query operations, as TigerBeetle 0.17.9 specifies them (reference §9).

`get_account_transfers` returns the transfers where the account is debited and/or credited,
narrowed by every non-zero filter field, within inclusive timestamp bounds, oldest first (or newest
first with `REVERSED`), truncated to `limit`. `get_account_balances` returns, for an account with
the `history` flag, its balances right after each of those transfers (expiries make no entry).
`query_accounts`/`query_transfers` filter on the conjunction of the non-zero fields. An invalid
filter is never an error: it returns an empty list. Every query here is scoped by a fresh ledger
or a fresh user_data_128 so that it sees only this test's objects on a shared server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from tigerbeetle import (
    AMOUNT_MAX,
    Account,
    AccountBalance,
    AccountFilter,
    AccountFilterFlags,
    AccountFlags,
    CreateAccountStatus,
    CreateTransferStatus,
    QueryFilter,
    QueryFilterFlags,
    Transfer,
    TransferFlags,
)

from tests.support import filters

S = CreateTransferStatus
F = TransferFlags
AF = AccountFlags
DEBITS = AccountFilterFlags.DEBITS
CREDITS = AccountFilterFlags.CREDITS
BOTH = DEBITS | CREDITS
REVERSED = AccountFilterFlags.REVERSED
U128_MAX = 2**128 - 1
TIMESTAMP_MAX = 2**63 - 1


def account_filter(account_id: int, **fields) -> AccountFilter:
    """An AccountFilter with every field defaulted: both directions, limit 100, no bounds."""
    return filters.account_filter(
        **({"account_id": account_id, "limit": 100, "flags": BOTH} | fields)
    )


def query_filter(**fields) -> QueryFilter:
    return filters.query_filter(**({"limit": 100} | fields))


def ids(objects) -> list[int]:
    return [o.id for o in objects]


@dataclass
class Scenario:
    """Accounts a (with history), b, c and transfers on a fresh ledger, oldest first:

    t1 a->b 5 (ud 1/10/100, code 1)   t2 b->a 3 (code 2)   t3 a->c 4 (ud128 2, code 1)
    t4 c->b 1 (a not involved)       t5 pending a->b 6 (ud 7/70/700, code 3)   t6 post of t5
    """

    ledger: int
    a: int
    b: int
    c: int
    t: dict[int, Transfer]  # by number, as stored (with timestamps)


@pytest.fixture
def scenario(engine) -> Scenario:
    client = engine.client
    ledger = engine.ledger()
    a, b, c = engine.ids(3)
    flags = {a: AF.HISTORY, b: AF.NONE, c: AF.NONE}
    results = client.create_accounts(
        [Account(id=i, ledger=ledger, code=1, flags=flags[i]) for i in (a, b, c)]
    )
    assert all(r.status == CreateAccountStatus.CREATED for r in results)
    t_ids = engine.ids(6)

    def t(n: int, dr: int, cr: int, amount: int, **fields) -> Transfer:
        base = {"ledger": ledger, "code": 1}
        base.update(fields)
        return Transfer(
            id=t_ids[n - 1], debit_account_id=dr, credit_account_id=cr, amount=amount, **base
        )

    batch = [
        t(1, a, b, 5, user_data_128=1, user_data_64=10, user_data_32=100),
        t(2, b, a, 3, code=2),
        t(3, a, c, 4, user_data_128=2),
        t(4, c, b, 1),
        t(5, a, b, 6, user_data_128=7, user_data_64=70, user_data_32=700, code=3, flags=F.PENDING),
    ]
    # Separate calls so that every transfer has its own request (timestamps far apart on a real
    # cluster), plus the post, which inherits t5's ledger, code and user data.
    for transfer in batch:
        assert client.create_transfers([transfer])[0].status == S.CREATED
    post = Transfer(
        id=t_ids[5], pending_id=t_ids[4], amount=AMOUNT_MAX, flags=F.POST_PENDING_TRANSFER
    )
    assert client.create_transfers([post])[0].status == S.CREATED
    stored = client.lookup_transfers(t_ids)
    return Scenario(ledger, a, b, c, {n: stored[n - 1] for n in range(1, 7)})


def numbers(s: Scenario, transfers: list[Transfer]) -> list[int]:
    by_id = {t.id: n for n, t in s.t.items()}
    return [by_id[t.id] for t in transfers]


# -- get_account_transfers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"flags": DEBITS}, [1, 3, 5, 6]),
        ({"flags": CREDITS}, [2]),
        ({"flags": BOTH}, [1, 2, 3, 5, 6]),
        ({"flags": BOTH | REVERSED}, [6, 5, 3, 2, 1]),
        ({"user_data_128": 1}, [1]),
        ({"user_data_64": 70}, [5, 6]),  # the post inherited t5's user data
        ({"user_data_32": 100}, [1]),
        ({"code": 1}, [1, 3]),
        ({"code": 3}, [5, 6]),  # and its code
        ({"code": 1, "user_data_128": 2}, [3]),  # non-zero fields combine
        ({"code": 2, "flags": DEBITS}, []),
        ({"limit": 2}, [1, 2]),
        ({"limit": 2, "flags": BOTH | REVERSED}, [6, 5]),
        ({"code": 1, "limit": 1, "flags": BOTH | REVERSED}, [3]),  # limit applies after filters
    ],
    ids=[
        "debits",
        "credits",
        "both",
        "reversed",
        "user_data_128",
        "user_data_64_inherited",
        "user_data_32",
        "code",
        "code_inherited",
        "conjunction",
        "conjunction_empty",
        "limit",
        "limit_reversed",
        "limit_after_filters",
    ],
)
def test_account_transfers_filters(engine, scenario, fields, expected) -> None:
    found = engine.client.get_account_transfers(account_filter(scenario.a, **fields))
    assert numbers(scenario, found) == expected


def test_account_transfers_are_the_stored_transfers(engine, scenario) -> None:
    found = engine.client.get_account_transfers(account_filter(scenario.c))
    assert found == [scenario.t[3], scenario.t[4]]


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        ((2, 3), [2, 3]),  # both bounds inclusive
        ((2, 0), [2, 3, 5, 6]),  # max 0 = unbounded
        ((0, 3), [1, 2, 3]),  # min 0 = unbounded
        ((3, 3), [3]),
    ],
    ids=["inclusive", "min_only", "max_only", "single_instant"],
)
def test_account_transfers_timestamp_bounds(engine, scenario, bounds, expected) -> None:
    low, high = (scenario.t[n].timestamp if n else 0 for n in bounds)
    found = engine.client.get_account_transfers(
        account_filter(scenario.a, timestamp_min=low, timestamp_max=high)
    )
    assert numbers(scenario, found) == expected


def test_account_transfers_paginate_forward(engine, scenario) -> None:
    pages: list[list[int]] = []
    low = 0
    while page := engine.client.get_account_transfers(
        account_filter(scenario.a, limit=2, timestamp_min=low)
    ):
        pages.append(numbers(scenario, page))
        low = page[-1].timestamp + 1
    assert pages == [[1, 2], [3, 5], [6]]


def test_account_transfers_paginate_backward(engine, scenario) -> None:
    pages: list[list[int]] = []
    high = 0
    while page := engine.client.get_account_transfers(
        account_filter(scenario.a, limit=2, timestamp_max=high, flags=BOTH | REVERSED)
    ):
        pages.append(numbers(scenario, page))
        high = page[-1].timestamp - 1
    assert pages == [[6, 5], [3, 2], [1]]


def test_account_transfers_of_an_unknown_account_is_empty(engine) -> None:
    assert engine.client.get_account_transfers(account_filter(engine.ids(1)[0])) == []


# Invalid AccountFilters: each must yield [] rather than an error (§9.2).
INVALID_ACCOUNT_FILTERS = {
    "account_id_zero": {"account_id": 0},
    "account_id_int_max": {"account_id": U128_MAX},
    "neither_debits_nor_credits": {"flags": AccountFilterFlags.NONE},
    "reversed_alone": {"flags": REVERSED},
    "unknown_flag_bit": {"flags": BOTH | (1 << 3)},
    "timestamp_min_above_2_63": {"timestamp_min": TIMESTAMP_MAX + 1},
    "timestamp_max_above_2_63": {"timestamp_max": TIMESTAMP_MAX + 1},
    "min_above_max": {"timestamp_min": "t3", "timestamp_max": "t2"},
    "limit_zero": {"limit": 0},
}


def _resolve(scenario: Scenario, fields: dict) -> dict:
    # "tN" stands for the timestamp of transfer N of the scenario.
    return {
        k: scenario.t[int(v[1:])].timestamp if isinstance(v, str) else v for k, v in fields.items()
    }


@pytest.mark.parametrize(
    "fields", INVALID_ACCOUNT_FILTERS.values(), ids=INVALID_ACCOUNT_FILTERS.keys()
)
def test_invalid_account_filter_finds_nothing(engine, scenario, fields) -> None:
    f = account_filter(**{"account_id": scenario.a, **_resolve(scenario, fields)})
    assert engine.client.get_account_transfers(f) == []
    assert engine.client.get_account_balances(f) == []


# -- get_account_balances --------------------------------------------------------------------


def test_balances_after_each_transfer(engine, scenario) -> None:
    balances = engine.client.get_account_balances(account_filter(scenario.a))
    t = scenario.t
    assert balances == [
        AccountBalance(0, 5, 0, 0, t[1].timestamp),
        AccountBalance(0, 5, 0, 3, t[2].timestamp),
        AccountBalance(0, 9, 0, 3, t[3].timestamp),
        AccountBalance(6, 9, 0, 3, t[5].timestamp),
        AccountBalance(0, 15, 0, 3, t[6].timestamp),
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"flags": CREDITS}, [2]),
        ({"code": 3}, [5, 6]),
        ({"flags": BOTH | REVERSED, "limit": 2}, [6, 5]),
        ({"timestamp_min": "t2", "timestamp_max": "t3"}, [2, 3]),
    ],
    ids=["credits", "code", "reversed_limit", "bounds"],
)
def test_balances_follow_the_transfer_filter(engine, scenario, fields, expected) -> None:
    f = account_filter(scenario.a, **_resolve(scenario, fields))
    balances = engine.client.get_account_balances(f)
    transfers = engine.client.get_account_transfers(f)
    assert numbers(scenario, transfers) == expected
    assert [b.timestamp for b in balances] == [t.timestamp for t in transfers]


def test_zero_amount_transfer_is_listed_with_a_balance_entry(engine, scenario) -> None:
    zero = Transfer(
        id=engine.ids(1)[0], debit_account_id=scenario.b, credit_account_id=scenario.a,
        amount=0, ledger=scenario.ledger, code=8,
    )  # fmt: skip
    (result,) = engine.client.create_transfers([zero])
    assert result.status == S.CREATED
    f = account_filter(scenario.a, code=8)
    assert ids(engine.client.get_account_transfers(f)) == [zero.id]
    assert engine.client.get_account_balances(f) == [AccountBalance(0, 15, 0, 3, result.timestamp)]


def test_balances_require_the_history_flag(engine, scenario) -> None:
    # b took part in transfers, but keeps no history; a's history does not help it.
    assert engine.client.get_account_transfers(account_filter(scenario.b)) != []
    assert engine.client.get_account_balances(account_filter(scenario.b)) == []


def test_balances_of_an_unknown_account_is_empty(engine) -> None:
    assert engine.client.get_account_balances(account_filter(engine.ids(1)[0])) == []


def test_upstream_balance_history_example(engine) -> None:
    """Reference §9.3: pending 1 from a history account, then posted."""
    client = engine.client
    ledger = engine.ledger()
    a1, a2, t1, t2 = engine.ids(4)
    client.create_accounts(
        [
            Account(id=a1, ledger=ledger, code=1, flags=AF.HISTORY),
            Account(id=a2, ledger=ledger, code=1),
        ]
    )
    pending = Transfer(
        id=t1, debit_account_id=a1, credit_account_id=a2, amount=1, ledger=ledger, code=1,
        flags=F.PENDING,
    )  # fmt: skip
    post = Transfer(id=t2, pending_id=t1, amount=AMOUNT_MAX, flags=F.POST_PENDING_TRANSFER)
    results = client.create_transfers([pending, post])
    assert [r.status for r in results] == [S.CREATED, S.CREATED]
    assert client.get_account_balances(account_filter(a1)) == [
        AccountBalance(1, 0, 0, 0, results[0].timestamp),
        AccountBalance(0, 1, 0, 0, results[1].timestamp),
    ]


def test_expiry_makes_no_balance_entry(engine) -> None:
    client = engine.client
    ledger = engine.ledger()
    a, b, pending_id, later_id = engine.ids(4)
    client.create_accounts(
        [
            Account(id=a, ledger=ledger, code=1, flags=AF.HISTORY),
            Account(id=b, ledger=ledger, code=1),
        ]
    )
    pending = Transfer(
        id=pending_id, debit_account_id=a, credit_account_id=b, amount=10, ledger=ledger,
        code=1, flags=F.PENDING, timeout=1,
    )  # fmt: skip
    assert client.create_transfers([pending])[0].status == S.CREATED
    engine.advance(1.1)
    # A real cluster releases in its own pulse shortly after the expiry instant.
    deadline = time.monotonic() + 5
    while client.lookup_accounts([a])[0].debits_pending:
        assert engine.real and time.monotonic() < deadline
        time.sleep(0.02)
    later = Transfer(
        id=later_id, debit_account_id=a, credit_account_id=b, amount=1, ledger=ledger, code=1
    )
    assert client.create_transfers([later])[0].status == S.CREATED
    balances = client.get_account_balances(account_filter(a))
    # The pending entry, then the later transfer's snapshot, which reflects the release.
    assert [(x.debits_pending, x.debits_posted) for x in balances] == [(10, 0), (0, 1)]
    assert ids(client.get_account_transfers(account_filter(a))) == [pending_id, later_id]


# -- query_accounts / query_transfers --------------------------------------------------------


@dataclass
class Population:
    """Accounts and transfers on a fresh ledger with a fresh user_data_128 tag; `x` also carries a
    second fresh tag so that a user_data_128 query needs no ledger to be scoped."""

    ledger: int
    tag: int
    other_tag: int
    accounts: list[Account]
    transfers: list[Transfer]


# (user_data_128 tag index, user_data_64, user_data_32, code) per account and per transfer.
SHAPES = [(0, 1, 10, 100), (0, 1, 20, 100), (1, 2, 10, 100), (0, 2, 20, 200), (0, 1, 10, 200)]


@pytest.fixture
def population(engine) -> Population:
    client = engine.client
    ledger = engine.ledger()
    tag, other_tag = engine.ids(2)
    tags = (tag, other_tag)
    account_ids = engine.ids(len(SHAPES))
    accounts = [
        Account(
            id=i, user_data_128=tags[t], user_data_64=u64, user_data_32=u32, ledger=ledger,
            code=code,
        )
        for i, (t, u64, u32, code) in zip(account_ids, SHAPES, strict=True)
    ]  # fmt: skip
    # One call per account so that each has its own request.
    for account in accounts:
        assert client.create_accounts([account])[0].status == CreateAccountStatus.CREATED
    transfer_ids = engine.ids(len(SHAPES))
    transfers = [
        Transfer(
            id=i, debit_account_id=account_ids[0], credit_account_id=account_ids[1], amount=1,
            user_data_128=tags[t], user_data_64=u64, user_data_32=u32, ledger=ledger, code=code,
        )
        for i, (t, u64, u32, code) in zip(transfer_ids, SHAPES, strict=True)
    ]  # fmt: skip
    for transfer in transfers:
        assert client.create_transfers([transfer])[0].status == S.CREATED
    return Population(
        ledger,
        tag,
        other_tag,
        client.lookup_accounts(account_ids),
        client.lookup_transfers(transfer_ids),
    )


QUERY_CASES = {
    # Each query is scoped by the population's fresh ledger ("L") or fresh tags ("tag").
    "ledger_only": ({"ledger": "L"}, [0, 1, 2, 3, 4]),
    "user_data_128_alone": ({"user_data_128": "other_tag"}, [2]),
    "user_data_128": ({"ledger": "L", "user_data_128": "tag"}, [0, 1, 3, 4]),
    "user_data_64": ({"ledger": "L", "user_data_64": 2}, [2, 3]),
    "user_data_32": ({"ledger": "L", "user_data_32": 20}, [1, 3]),
    "code": ({"ledger": "L", "code": 200}, [3, 4]),
    "conjunction": ({"user_data_128": "tag", "user_data_64": 1, "user_data_32": 10}, [0, 4]),
    "all_fields": (
        {"ledger": "L", "user_data_128": "tag", "user_data_64": 1, "user_data_32": 10, "code": 200},
        [4],
    ),
    "no_match": ({"ledger": "L", "code": 300}, []),
    "reversed": ({"ledger": "L", "flags": QueryFilterFlags.REVERSED}, [4, 3, 2, 1, 0]),
    "limit": ({"ledger": "L", "limit": 2}, [0, 1]),
    "reversed_limit": ({"ledger": "L", "limit": 2, "flags": QueryFilterFlags.REVERSED}, [4, 3]),
    "limit_after_filters": ({"ledger": "L", "code": 200, "limit": 1}, [3]),
    "reversed_bounds": (
        {
            "ledger": "L",
            "timestamp_min": "@1",
            "timestamp_max": "@3",
            "flags": QueryFilterFlags.REVERSED,
        },
        [3, 2, 1],
    ),
    "bounds_inclusive": ({"ledger": "L", "timestamp_min": "@1", "timestamp_max": "@3"}, [1, 2, 3]),
    "min_only": ({"ledger": "L", "timestamp_min": "@3"}, [3, 4]),
    "max_only": ({"ledger": "L", "timestamp_max": "@1"}, [0, 1]),
    # With no filter field at all, everything matches; bound it below by our first object
    # (nothing else is created meanwhile, even on a shared server).
    "no_filter_fields": ({"timestamp_min": "@0"}, [0, 1, 2, 3, 4]),
}


def _query_fields(p: Population, objects: list, fields: dict) -> dict:
    def value(v):
        if v == "L":
            return p.ledger
        if v == "tag":
            return p.tag
        if v == "other_tag":
            return p.other_tag
        if isinstance(v, str) and v.startswith("@"):
            return objects[int(v[1:])].timestamp
        return v

    return {k: value(v) for k, v in fields.items()}


@pytest.mark.parametrize(("fields", "expected"), QUERY_CASES.values(), ids=QUERY_CASES.keys())
def test_query_accounts(engine, population, fields, expected) -> None:
    f = query_filter(**_query_fields(population, population.accounts, fields))
    assert engine.client.query_accounts(f) == [population.accounts[i] for i in expected]


@pytest.mark.parametrize(("fields", "expected"), QUERY_CASES.values(), ids=QUERY_CASES.keys())
def test_query_transfers(engine, population, fields, expected) -> None:
    f = query_filter(**_query_fields(population, population.transfers, fields))
    found = engine.client.query_transfers(f)
    assert found == [population.transfers[i] for i in expected]


def test_query_transfers_matches_post_by_inherited_fields(engine) -> None:
    client = engine.client
    ledger = engine.ledger()
    a, b, pending_id, post_id, tag = engine.ids(5)
    client.create_accounts([Account(id=i, ledger=ledger, code=1) for i in (a, b)])
    pending = Transfer(
        id=pending_id, debit_account_id=a, credit_account_id=b, amount=3, ledger=ledger, code=9,
        user_data_128=tag, flags=F.PENDING,
    )  # fmt: skip
    post = Transfer(
        id=post_id, pending_id=pending_id, amount=AMOUNT_MAX, flags=F.POST_PENDING_TRANSFER
    )
    assert [r.status for r in client.create_transfers([pending, post])] == [S.CREATED] * 2
    f = query_filter(user_data_128=tag, ledger=ledger, code=9)
    assert ids(client.query_transfers(f)) == [pending_id, post_id]


INVALID_QUERY_FILTERS = {
    "unknown_flag_bit": {"flags": 1 << 1},
    "timestamp_min_above_2_63": {"timestamp_min": TIMESTAMP_MAX + 1},
    "timestamp_max_above_2_63": {"timestamp_max": TIMESTAMP_MAX + 1},
    "min_above_max": {"timestamp_min": "@3", "timestamp_max": "@1"},
    "limit_zero": {"limit": 0},
}


@pytest.mark.parametrize("fields", INVALID_QUERY_FILTERS.values(), ids=INVALID_QUERY_FILTERS.keys())
def test_invalid_query_filter_finds_nothing(engine, population, fields) -> None:
    scope = {"ledger": "L", **fields}
    accounts_filter = query_filter(**_query_fields(population, population.accounts, scope))
    transfers_filter = query_filter(**_query_fields(population, population.transfers, scope))
    assert engine.client.query_accounts(accounts_filter) == []
    assert engine.client.query_transfers(transfers_filter) == []
