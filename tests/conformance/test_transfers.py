"""Single-phase (and pending) `create_transfers`: path S of TigerBeetle 0.17.9 (reference §4).

The precedence table shows every status of the common prefix and of path S in order, each case
breaking its own rule and as many lower-ranked rules as can be combined with it (an existing id
with `ledger=0` is an `exists_*`, an id of 0 with a reserved flag is `reserved_flag`, ...). Then
the `exists` family in comparison order, balancing transfers (the clamp, clamping to zero, both
flags, with pending, and the `retry < recorded` exists rule), the overflow statuses at amounts near
2^128-1, the `exceeds_*` limits, transient failures burning ids (`id_already_failed` after each of
the seven transient statuses, never after a non-transient one) and zero-amount transfers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from tigerbeetle import (
    AMOUNT_MAX,
    Account,
    AccountFlags,
    CreateTransferStatus,
    Transfer,
    TransferFlags,
)

from tests.support.book import Book

S = CreateTransferStatus
F = TransferFlags
AF = AccountFlags
U128_MAX = 2**128 - 1
TIMESTAMP_MAX = 2**63 - 1
HALF = 2**127
RESERVED_FLAG_BIT = 1 << 9  # the first TransferFlags bit TigerBeetle does not define


# -- precedence ------------------------------------------------------------------------------


@dataclass
class World:
    """Accounts and ids a precedence case can refer to."""

    book: Book
    a: int  # plain accounts on the book's ledger
    b: int
    other: int  # a plain account on another ledger
    closed_a: int  # accounts created closed
    closed_b: int
    limited_debits: int  # debits_must_not_exceed_credits, no credits
    limited_credits: int  # credits_must_not_exceed_debits, no debits
    missing: int  # no such account
    missing_too: int  # no such account either
    existing: Transfer  # a committed transfer a -> b
    burned: int  # a transfer id that failed transiently

    def t(self, dr: int = 0, cr: int = 0, amount: int = 1, **fields) -> Transfer:
        return self.book.t(dr, cr, amount, **fields)


@pytest.fixture
def world(book) -> World:
    a, b, closed_a, closed_b, limited_debits, limited_credits = book.open(
        AF.NONE,
        AF.NONE,
        AF.CLOSED,
        AF.CLOSED,
        AF.DEBITS_MUST_NOT_EXCEED_CREDITS,
        AF.CREDITS_MUST_NOT_EXCEED_DEBITS,
    )
    (other,) = book.open(AF.NONE, ledger=book.engine.ledger())
    existing = book.t(a, b, 5, user_data_128=1, user_data_64=2, user_data_32=3, code=7)
    book.ok(existing)
    missing, missing_too, burned = book.engine.ids(3)
    assert book.submit(book.t(missing, b, id=burned)) == [S.DEBIT_ACCOUNT_NOT_FOUND]
    return World(
        book=book,
        a=a,
        b=b,
        other=other,
        closed_a=closed_a,
        closed_b=closed_b,
        limited_debits=limited_debits,
        limited_credits=limited_credits,
        missing=missing,
        missing_too=missing_too,
        existing=existing,
        burned=burned,
    )


# (case, batch builder, status of the batch's LAST event), in TigerBeetle's precedence order.
PRECEDENCE: list[tuple[str, Callable[[World], list[Transfer]], S]] = [
    (
        "linked_last_event_beats_everything",
        lambda w: [w.t(id=0, flags=F.LINKED | RESERVED_FLAG_BIT, timestamp=5, ledger=0)],
        S.LINKED_EVENT_CHAIN_OPEN,
    ),
    (
        "failed_chain_beats_own_faults",
        lambda w: [w.t(id=0, flags=F.LINKED), w.t(id=0, timestamp=5, flags=RESERVED_FLAG_BIT)],
        S.LINKED_EVENT_FAILED,
    ),
    (
        "imported_expected_beats_timestamp",
        lambda w: [w.t(flags=F.IMPORTED), w.t(id=0, timestamp=5)],
        S.IMPORTED_EVENT_EXPECTED,
    ),
    (
        "imported_not_expected_beats_range",
        lambda w: [w.t(id=0), w.t(id=0, flags=F.IMPORTED, timestamp=0)],
        S.IMPORTED_EVENT_NOT_EXPECTED,
    ),
    (
        "timestamp_must_be_zero_beats_reserved_flag",
        lambda w: [w.t(id=0, flags=RESERVED_FLAG_BIT, timestamp=1)],
        S.TIMESTAMP_MUST_BE_ZERO,
    ),
    (
        "imported_timestamp_zero_out_of_range",
        lambda w: [w.t(id=0, flags=F.IMPORTED | RESERVED_FLAG_BIT, timestamp=0)],
        S.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE,
    ),
    (
        "imported_timestamp_above_2_63_out_of_range",
        lambda w: [w.t(id=0, flags=F.IMPORTED, timestamp=TIMESTAMP_MAX + 1)],
        S.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE,
    ),
    (
        "imported_future_timestamp_must_not_advance",
        lambda w: [w.t(id=0, flags=F.IMPORTED | RESERVED_FLAG_BIT, timestamp=TIMESTAMP_MAX)],
        S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE,
    ),
    (
        "reserved_flag_beats_id_zero",
        lambda w: [w.t(id=0, flags=RESERVED_FLAG_BIT)],
        S.RESERVED_FLAG,
    ),
    ("id_zero_beats_everything_after", lambda w: [w.t(id=0, ledger=0)], S.ID_MUST_NOT_BE_ZERO),
    ("id_int_max", lambda w: [w.t(id=U128_MAX, ledger=0)], S.ID_MUST_NOT_BE_INT_MAX),
    (
        "existing_id_with_ledger_zero_is_exists_family",
        lambda w: [replace(w.existing, ledger=0)],
        S.EXISTS_WITH_DIFFERENT_LEDGER,
    ),
    (
        "existing_id_with_debit_zero_is_exists_family",
        lambda w: [replace(w.existing, debit_account_id=0, ledger=0)],
        S.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID,
    ),
    (
        "existing_id_with_pending_id_and_timeout",
        lambda w: [replace(w.existing, pending_id=w.a, timeout=1)],
        S.EXISTS_WITH_DIFFERENT_PENDING_ID,
    ),
    (
        "burned_id_beats_every_validation",
        lambda w: [w.t(id=w.burned, ledger=0)],
        S.ID_ALREADY_FAILED,
    ),
    (
        "debit_zero_beats_credit_zero",
        lambda w: [w.t(0, 0, pending_id=1, ledger=0)],
        S.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO,
    ),
    (
        "debit_int_max_beats_credit_zero",
        lambda w: [w.t(U128_MAX, 0, ledger=0)],
        S.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX,
    ),
    (
        "credit_zero_beats_pending_id",
        lambda w: [w.t(w.a, 0, pending_id=1, ledger=0)],
        S.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO,
    ),
    (
        "credit_int_max",
        lambda w: [w.t(w.a, U128_MAX, pending_id=1, ledger=0)],
        S.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX,
    ),
    (
        "same_accounts_beats_pending_id",
        lambda w: [w.t(w.a, w.a, pending_id=1, timeout=1, ledger=0)],
        S.ACCOUNTS_MUST_BE_DIFFERENT,
    ),
    (
        "pending_id_beats_timeout",
        lambda w: [w.t(w.a, w.b, pending_id=1, timeout=1, flags=F.CLOSING_DEBIT, ledger=0)],
        S.PENDING_ID_MUST_BE_ZERO,
    ),
    (
        "timeout_without_pending_beats_closing",
        lambda w: [w.t(w.a, w.b, timeout=1, flags=F.CLOSING_DEBIT, ledger=0)],
        S.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
    ),
    (
        "closing_without_pending_beats_ledger",
        lambda w: [w.t(w.a, w.b, flags=F.CLOSING_CREDIT, ledger=0)],
        S.CLOSING_TRANSFER_MUST_BE_PENDING,
    ),
    (
        "ledger_zero_beats_code_and_missing_accounts",
        lambda w: [w.t(w.missing, w.missing_too, ledger=0, code=0)],
        S.LEDGER_MUST_NOT_BE_ZERO,
    ),
    (
        "code_zero_beats_missing_accounts",
        lambda w: [w.t(w.missing, w.missing_too, code=0)],
        S.CODE_MUST_NOT_BE_ZERO,
    ),
    (
        "debit_not_found_beats_credit_not_found",
        lambda w: [w.t(w.missing, w.missing_too)],
        S.DEBIT_ACCOUNT_NOT_FOUND,
    ),
    (
        "credit_not_found_beats_ledger_checks",
        lambda w: [w.t(w.a, w.missing, ledger=w.book.ledger + 1)],
        S.CREDIT_ACCOUNT_NOT_FOUND,
    ),
    (
        "account_ledgers_differ_beats_transfer_ledger",
        lambda w: [w.t(w.a, w.other, ledger=0xFFFFFFFF)],
        S.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
    ),
    (
        "transfer_ledger_differs_beats_closed",
        lambda w: [w.t(w.closed_a, w.closed_b, ledger=0xFFFFFFFF)],
        S.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
    ),
    (
        "debit_closed_beats_credit_closed",
        lambda w: [w.t(w.closed_a, w.closed_b)],
        S.DEBIT_ACCOUNT_ALREADY_CLOSED,
    ),
    (
        "credit_closed_beats_limits_and_overflow",
        lambda w: [w.t(w.limited_debits, w.closed_b, AMOUNT_MAX)],
        S.CREDIT_ACCOUNT_ALREADY_CLOSED,
    ),
    (
        "exceeds_credits_beats_exceeds_debits",
        lambda w: [w.t(w.limited_debits, w.limited_credits)],
        S.EXCEEDS_CREDITS,
    ),
    ("exceeds_debits", lambda w: [w.t(w.a, w.limited_credits)], S.EXCEEDS_DEBITS),
    ("valid_transfer_created", lambda w: [w.t(w.a, w.b)], S.CREATED),
]


@pytest.mark.parametrize(
    ("build", "expected"),
    [pytest.param(build, expected, id=name) for name, build, expected in PRECEDENCE],
)
def test_status_precedence(engine, world, build, expected) -> None:
    batch = build(world)
    results = engine.client.create_transfers(batch)
    assert len(results) == len(batch)
    assert results[-1].status == expected


# -- exists family ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field_names", "expected"),
    [
        # Comparison order for single-phase/pending transfers; each row changes its own field and
        # every later one, so the first difference in TigerBeetle's order must win.
        ("flags", S.EXISTS_WITH_DIFFERENT_FLAGS),
        ("pending_id", S.EXISTS_WITH_DIFFERENT_PENDING_ID),
        ("timeout", S.EXISTS_WITH_DIFFERENT_TIMEOUT),
        ("debit_account_id", S.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID),
        ("credit_account_id", S.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID),
        ("amount", S.EXISTS_WITH_DIFFERENT_AMOUNT),
        ("user_data_128", S.EXISTS_WITH_DIFFERENT_USER_DATA_128),
        ("user_data_64", S.EXISTS_WITH_DIFFERENT_USER_DATA_64),
        ("user_data_32", S.EXISTS_WITH_DIFFERENT_USER_DATA_32),
        ("ledger", S.EXISTS_WITH_DIFFERENT_LEDGER),
        ("code", S.EXISTS_WITH_DIFFERENT_CODE),
        (None, S.EXISTS),
    ],
    ids=lambda v: v.name if isinstance(v, S) else None,
)
def test_exists_family_in_comparison_order(engine, book, field_names, expected) -> None:
    order = [
        "flags",
        "pending_id",
        "timeout",
        "debit_account_id",
        "credit_account_id",
        "amount",
        "user_data_128",
        "user_data_64",
        "user_data_32",
        "ledger",
        "code",
    ]
    a, b, c = book.open(AF.NONE, AF.NONE, AF.NONE)
    existing = book.t(a, b, 5, user_data_128=1, user_data_64=2, user_data_32=3, code=7)
    book.ok(existing)
    new_values = {
        "flags": F.PENDING,
        "pending_id": 99,
        "timeout": 9,
        "debit_account_id": c,
        "credit_account_id": c,
        "amount": 6,
        "user_data_128": 10,
        "user_data_64": 20,
        "user_data_32": 30,
        "ledger": book.ledger + 1,
        "code": 70,
    }
    changed = order[order.index(field_names) :] if field_names else []
    retry = replace(existing, **{name: new_values[name] for name in changed})
    (result,) = engine.client.create_transfers([retry])
    assert result.status == expected
    if expected == S.EXISTS:
        (stored,) = engine.client.lookup_transfers([existing.id])
        assert result.timestamp == stored.timestamp


def test_exists_changes_no_balance(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    transfer = book.t(a, b, 5)
    book.ok(transfer)
    assert book.submit(transfer, transfer) == [S.EXISTS, S.EXISTS]
    assert book.balance(a) == (0, 5, 0, 0)


# -- effects ---------------------------------------------------------------------------------


def test_single_phase_moves_posted_balances_and_is_stored_as_sent(engine, book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    transfer = book.t(a, b, 7, user_data_128=1, user_data_64=2, user_data_32=3, code=9)
    (result,) = engine.client.create_transfers([transfer])
    assert result.status == S.CREATED
    assert engine.client.lookup_transfers([transfer.id]) == [
        replace(transfer, timestamp=result.timestamp)
    ]
    assert book.balance(a) == (0, 7, 0, 0)
    assert book.balance(b) == (0, 0, 0, 7)


def test_pending_moves_pending_balances(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    book.ok(book.t(a, b, 7, flags=F.PENDING))
    assert book.balance(a) == (7, 0, 0, 0)
    assert book.balance(b) == (0, 0, 7, 0)


def test_longest_timeout_does_not_overflow_today(book) -> None:
    # now + (2^32 - 1) s is still far below 2^63 - 1 ns (overflows_timeout needs ~year 2126).
    a, b = book.open(AF.NONE, AF.NONE)
    book.ok(book.t(a, b, 1, flags=F.PENDING, timeout=2**32 - 1))


def test_lookup_transfers_request_order_duplicates_and_missing(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    t1, t2 = book.t(a, b, 1), book.t(a, b, 2)
    book.ok(t1, t2)
    burned = book.fresh()
    assert book.submit(book.t(a, book.fresh(), id=burned)) == [S.CREDIT_ACCOUNT_NOT_FOUND]
    found = book.client.lookup_transfers([t2.id, burned, 0, t1.id, U128_MAX, t2.id])
    assert [t.id for t in found] == [t2.id, t1.id, t2.id]


def test_events_see_earlier_events_of_the_same_batch(book) -> None:
    # The second transfer is only within the limit because of the first.
    limited, funder = book.open(AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE)
    assert book.submit(book.t(funder, limited, 5), book.t(limited, funder, 5)) == [
        S.CREATED,
        S.CREATED,
    ]


# -- zero amounts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected_balance"),
    [(F.NONE, (0, 0, 0, 0)), (F.PENDING, (0, 0, 0, 0))],
    ids=["single_phase", "pending"],
)
def test_zero_amount_transfer_is_created_and_moves_nothing(book, flags, expected_balance) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    transfer = book.t(a, b, 0, flags=flags)
    book.ok(transfer)
    assert book.amount_of(transfer.id) == 0
    assert book.balance(a) == expected_balance
    assert book.balance(b) == expected_balance


def test_zero_amount_passes_limits_of_an_empty_account(book) -> None:
    limited_debits, limited_credits = book.open(
        AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.CREDITS_MUST_NOT_EXCEED_DEBITS
    )
    book.ok(book.t(limited_debits, limited_credits, 0))


# -- balancing -------------------------------------------------------------------------------


def test_balancing_debit_clamps_to_the_debit_accounts_credit_balance(book) -> None:
    a, b, c = book.open(AF.NONE, AF.NONE, AF.NONE)
    book.ok(book.t(b, a, 10), book.t(a, b, 3))  # a: credits 10, debits 3 -> room 7
    transfer = book.t(a, c, AMOUNT_MAX, flags=F.BALANCING_DEBIT)
    book.ok(transfer)
    assert book.amount_of(transfer.id) == 7
    assert book.balance(a) == (0, 10, 0, 10)


def test_balancing_amount_is_an_upper_bound(book) -> None:
    a, b, c = book.open(AF.NONE, AF.NONE, AF.NONE)
    book.ok(book.t(b, a, 10))
    transfer = book.t(a, c, 4, flags=F.BALANCING_DEBIT)
    book.ok(transfer)
    assert book.amount_of(transfer.id) == 4


def test_balancing_credit_clamps_to_the_credit_accounts_debit_balance(book) -> None:
    a, b, c = book.open(AF.NONE, AF.NONE, AF.NONE)
    book.ok(book.t(a, b, 10), book.t(c, a, 4))  # a: debits 10, credits 4 -> room 6
    transfer = book.t(b, a, AMOUNT_MAX, flags=F.BALANCING_CREDIT)
    book.ok(transfer)
    assert book.amount_of(transfer.id) == 6
    assert book.balance(a) == (0, 10, 0, 10)


@pytest.mark.parametrize(
    "account_flags",
    [AF.NONE, AF.DEBITS_MUST_NOT_EXCEED_CREDITS],
    ids=["without_limit_flag", "with_limit_flag"],
)
def test_balancing_clamp_to_zero_creates_a_zero_amount_transfer(book, account_flags) -> None:
    # The clamp applies whether or not the account has a limit flag, and clamping to 0 is a
    # success (no exceeds_credits for the clamped side).
    a, b = book.open(account_flags, AF.NONE)
    transfer = book.t(a, b, 5, flags=F.BALANCING_DEBIT)
    book.ok(transfer)
    assert book.amount_of(transfer.id) == 0
    assert book.balance(a) == (0, 0, 0, 0)


def test_both_balancing_flags_take_the_smaller_clamp(book) -> None:
    a, b, x, y = book.open(AF.NONE, AF.NONE, AF.NONE, AF.NONE)
    book.ok(book.t(x, a, 10), book.t(b, y, 3))  # a may give 10; b may receive 3
    transfer = book.t(a, b, AMOUNT_MAX, flags=F.BALANCING_DEBIT | F.BALANCING_CREDIT)
    book.ok(transfer)
    assert book.amount_of(transfer.id) == 3


def test_pending_balancing_reserves_the_clamp_and_counts_for_the_next_clamp(book) -> None:
    a, b, c = book.open(AF.NONE, AF.NONE, AF.NONE)
    book.ok(book.t(b, a, 10))
    first = book.t(a, c, 6, flags=F.PENDING | F.BALANCING_DEBIT)
    second = book.t(a, c, AMOUNT_MAX, flags=F.PENDING | F.BALANCING_DEBIT)
    book.ok(first, second)
    assert (book.amount_of(first.id), book.amount_of(second.id)) == (6, 4)
    assert book.balance(a) == (10, 0, 0, 10)


def test_balancing_is_still_subject_to_the_other_accounts_limit(book) -> None:
    a, b, limited_credits = book.open(AF.NONE, AF.NONE, AF.CREDITS_MUST_NOT_EXCEED_DEBITS)
    book.ok(book.t(b, a, 10))
    assert book.submit(book.t(a, limited_credits, AMOUNT_MAX, flags=F.BALANCING_DEBIT)) == [
        S.EXCEEDS_DEBITS
    ]


@pytest.mark.parametrize(
    ("retry_amount", "expected"),
    [
        (AMOUNT_MAX, S.EXISTS),
        (8, S.EXISTS),
        (7, S.EXISTS),  # the recorded amount
        (6, S.EXISTS_WITH_DIFFERENT_AMOUNT),
        (0, S.EXISTS_WITH_DIFFERENT_AMOUNT),
    ],
)
def test_balancing_retry_exists_unless_below_recorded_amount(book, retry_amount, expected) -> None:
    a, b, c = book.open(AF.NONE, AF.NONE, AF.NONE)
    book.ok(book.t(b, a, 7))
    transfer = book.t(a, c, AMOUNT_MAX, flags=F.BALANCING_DEBIT)
    book.ok(transfer)
    book.ok(book.t(b, a, 100))  # the state changed: a fresh clamp would now differ
    assert book.submit(replace(transfer, amount=retry_amount)) == [expected]


# -- overflow --------------------------------------------------------------------------------


# (case, setup transfers (a, b, c, d) -> list, the transfer under test, expected status)
OVERFLOWS = [
    (
        "debits_pending",
        lambda bk, a, b, c, d: [bk.t(a, b, U128_MAX, flags=F.PENDING)],
        lambda bk, a, b, c, d: bk.t(a, c, 1, flags=F.PENDING),
        S.OVERFLOWS_DEBITS_PENDING,
    ),
    (
        "debits_pending_beats_credits_pending",
        lambda bk, a, b, c, d: [
            bk.t(a, b, U128_MAX, flags=F.PENDING),
            bk.t(c, d, U128_MAX, flags=F.PENDING),
        ],
        lambda bk, a, b, c, d: bk.t(a, d, 1, flags=F.PENDING),
        S.OVERFLOWS_DEBITS_PENDING,
    ),
    (
        "credits_pending",
        lambda bk, a, b, c, d: [bk.t(a, b, U128_MAX, flags=F.PENDING)],
        lambda bk, a, b, c, d: bk.t(c, b, 1, flags=F.PENDING),
        S.OVERFLOWS_CREDITS_PENDING,
    ),
    (
        "debits_posted",
        lambda bk, a, b, c, d: [bk.t(a, b, U128_MAX)],
        lambda bk, a, b, c, d: bk.t(a, c, 1),
        S.OVERFLOWS_DEBITS_POSTED,
    ),
    (
        "debits_posted_checked_for_pending_too",
        lambda bk, a, b, c, d: [bk.t(a, b, U128_MAX)],
        lambda bk, a, b, c, d: bk.t(a, c, 1, flags=F.PENDING),
        S.OVERFLOWS_DEBITS_POSTED,
    ),
    (
        "debits_posted_beats_credits_posted",
        lambda bk, a, b, c, d: [bk.t(a, b, U128_MAX), bk.t(c, d, U128_MAX)],
        lambda bk, a, b, c, d: bk.t(a, d, 1),
        S.OVERFLOWS_DEBITS_POSTED,
    ),
    (
        "credits_posted",
        lambda bk, a, b, c, d: [bk.t(a, b, U128_MAX)],
        lambda bk, a, b, c, d: bk.t(c, b, 1),
        S.OVERFLOWS_CREDITS_POSTED,
    ),
    (
        "credits_posted_checked_for_pending_too",
        lambda bk, a, b, c, d: [bk.t(a, b, U128_MAX)],
        lambda bk, a, b, c, d: bk.t(c, b, 1, flags=F.PENDING),
        S.OVERFLOWS_CREDITS_POSTED,
    ),
    (
        "debits_pending_plus_posted",
        lambda bk, a, b, c, d: [bk.t(a, b, HALF, flags=F.PENDING)],
        lambda bk, a, b, c, d: bk.t(a, c, HALF),
        S.OVERFLOWS_DEBITS,
    ),
    (
        "credits_pending_plus_posted",
        lambda bk, a, b, c, d: [bk.t(a, b, HALF, flags=F.PENDING)],
        lambda bk, a, b, c, d: bk.t(c, b, HALF),
        S.OVERFLOWS_CREDITS,
    ),
    (
        "reaching_exactly_the_maximum_is_allowed",
        lambda bk, a, b, c, d: [bk.t(a, b, HALF, flags=F.PENDING)],
        lambda bk, a, b, c, d: bk.t(a, c, HALF - 1),
        S.CREATED,
    ),
]


@pytest.mark.parametrize(
    ("setup", "under_test", "expected"),
    [pytest.param(setup, t, expected, id=name) for name, setup, t, expected in OVERFLOWS],
)
def test_overflow_statuses(book, setup, under_test, expected) -> None:
    accounts = book.open(AF.NONE, AF.NONE, AF.NONE, AF.NONE)
    book.ok(*setup(book, *accounts))
    assert book.submit(under_test(book, *accounts)) == [expected]


def test_overflow_is_checked_before_the_limit(book) -> None:
    # Both `overflows_debits_posted` and `exceeds_credits` apply; overflow ranks first.
    limited, funder, sink = book.open(AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE, AF.NONE)
    book.ok(book.t(funder, limited, U128_MAX), book.t(limited, sink, U128_MAX))
    assert book.submit(book.t(limited, sink, 1)) == [S.OVERFLOWS_DEBITS_POSTED]


# -- limits ----------------------------------------------------------------------------------


def test_debits_up_to_credits_posted_then_exceeds_credits(book) -> None:
    limited, funder, sink = book.open(AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE, AF.NONE)
    book.ok(book.t(funder, limited, 10), book.t(limited, sink, 10))
    assert book.submit(book.t(limited, sink, 1)) == [S.EXCEEDS_CREDITS]


def test_credits_up_to_debits_posted_then_exceeds_debits(book) -> None:
    limited, source, sink = book.open(AF.CREDITS_MUST_NOT_EXCEED_DEBITS, AF.NONE, AF.NONE)
    book.ok(book.t(limited, sink, 10), book.t(source, limited, 10))
    assert book.submit(book.t(source, limited, 1)) == [S.EXCEEDS_DEBITS]


def test_outgoing_pending_counts_against_the_limit(book) -> None:
    limited, funder, sink = book.open(AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE, AF.NONE)
    book.ok(book.t(funder, limited, 10), book.t(limited, sink, 6, flags=F.PENDING))
    assert book.submit(book.t(limited, sink, 5)) == [S.EXCEEDS_CREDITS]
    book.ok(book.t(limited, sink, 4))


def test_incoming_pending_credits_are_not_available(book) -> None:
    limited, funder, sink = book.open(AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE, AF.NONE)
    book.ok(book.t(funder, limited, 100, flags=F.PENDING))
    assert book.submit(book.t(limited, sink, 1)) == [S.EXCEEDS_CREDITS]


# -- transient failures burn ids -------------------------------------------------------------


@dataclass
class Transient:
    """A transient failure: how to provoke it, and how to remove its cause afterwards."""

    provoke: Callable[[Book], tuple[Transfer, Callable[[], None]]]
    status: S


def _debit_not_found(bk: Book):
    (b,) = bk.open(AF.NONE)
    missing = bk.fresh()

    def fix() -> None:
        bk.client.create_accounts([Account(id=missing, ledger=bk.ledger, code=1)])

    return bk.t(missing, b), fix


def _credit_not_found(bk: Book):
    (a,) = bk.open(AF.NONE)
    missing = bk.fresh()

    def fix() -> None:
        bk.client.create_accounts([Account(id=missing, ledger=bk.ledger, code=1)])

    return bk.t(a, missing), fix


def _pending_not_found(bk: Book):
    a, b = bk.open(AF.NONE, AF.NONE)
    pending_id = bk.fresh()
    post = bk.t(
        0, 0, AMOUNT_MAX, pending_id=pending_id, flags=F.POST_PENDING_TRANSFER, ledger=0, code=0
    )
    return post, lambda: bk.ok(bk.t(a, b, 1, id=pending_id, flags=F.PENDING))


def _exceeds_credits(bk: Book):
    limited, other = bk.open(AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE)
    return bk.t(limited, other, 1), lambda: bk.ok(bk.t(other, limited, 1))


def _exceeds_debits(bk: Book):
    limited, other = bk.open(AF.CREDITS_MUST_NOT_EXCEED_DEBITS, AF.NONE)
    return bk.t(other, limited, 1), lambda: bk.ok(bk.t(limited, other, 1))


def _closed(side: str):
    def provoke(bk: Book):
        closed, other = bk.open(AF.NONE, AF.NONE)
        closing = F.CLOSING_DEBIT if side == "debit" else F.CLOSING_CREDIT
        pair = (closed, other) if side == "debit" else (other, closed)
        closer = bk.t(*pair, 0, flags=F.PENDING | closing)
        bk.ok(closer)
        reopen = bk.t(
            0, 0, 0, pending_id=closer.id, flags=F.VOID_PENDING_TRANSFER, ledger=0, code=0
        )
        return bk.t(*pair, 1), lambda: bk.ok(reopen)

    return provoke


TRANSIENTS = {
    "debit_account_not_found": Transient(_debit_not_found, S.DEBIT_ACCOUNT_NOT_FOUND),
    "credit_account_not_found": Transient(_credit_not_found, S.CREDIT_ACCOUNT_NOT_FOUND),
    "pending_transfer_not_found": Transient(_pending_not_found, S.PENDING_TRANSFER_NOT_FOUND),
    "exceeds_credits": Transient(_exceeds_credits, S.EXCEEDS_CREDITS),
    "exceeds_debits": Transient(_exceeds_debits, S.EXCEEDS_DEBITS),
    "debit_account_already_closed": Transient(_closed("debit"), S.DEBIT_ACCOUNT_ALREADY_CLOSED),
    "credit_account_already_closed": Transient(_closed("credit"), S.CREDIT_ACCOUNT_ALREADY_CLOSED),
}


def test_the_transient_table_covers_exactly_the_seven_transient_statuses() -> None:
    assert len({case.status for case in TRANSIENTS.values()}) == 7


@pytest.mark.parametrize("case", TRANSIENTS.values(), ids=TRANSIENTS.keys())
def test_transient_failure_burns_the_id_even_after_its_cause_is_fixed(book, case) -> None:
    transfer, fix = case.provoke(book)
    assert book.submit(transfer) == [case.status]
    fix()
    # The identical retry would now succeed, but the id failed for good.
    assert book.submit(transfer) == [S.ID_ALREADY_FAILED]
    assert book.client.lookup_transfers([transfer.id]) == []


def test_burned_id_fails_whatever_the_new_content(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    burned = book.fresh()
    assert book.submit(book.t(a, book.fresh(), id=burned)) == [S.CREDIT_ACCOUNT_NOT_FOUND]
    assert book.submit(book.t(a, b, 5, id=burned, flags=F.PENDING)) == [S.ID_ALREADY_FAILED]
    assert book.submit(book.t(a, b, id=burned, ledger=0)) == [S.ID_ALREADY_FAILED]


def test_burned_id_as_pending_id_is_pending_transfer_not_found(book) -> None:
    (a,) = book.open(AF.NONE)
    burned = book.fresh()
    assert book.submit(book.t(a, book.fresh(), id=burned, flags=F.PENDING)) == [
        S.CREDIT_ACCOUNT_NOT_FOUND
    ]
    post = book.t(0, 0, 0, pending_id=burned, flags=F.VOID_PENDING_TRANSFER, ledger=0, code=0)
    assert book.submit(post) == [S.PENDING_TRANSFER_NOT_FOUND]


# (case, the failing transfer, its status, the corrected transfer with the same id)
NON_TRANSIENT = [
    (
        "ledger_must_not_be_zero",
        lambda bk, a, b, earlier: bk.t(a, b, ledger=0),
        S.LEDGER_MUST_NOT_BE_ZERO,
        lambda bk, a, b, i: bk.t(a, b, id=i),
    ),
    (
        "accounts_must_be_different",
        lambda bk, a, b, earlier: bk.t(a, a),
        S.ACCOUNTS_MUST_BE_DIFFERENT,
        lambda bk, a, b, i: bk.t(a, b, id=i),
    ),
    (
        "timeout_reserved_for_pending_transfer",
        lambda bk, a, b, earlier: bk.t(a, b, timeout=1),
        S.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
        lambda bk, a, b, i: bk.t(a, b, id=i),
    ),
    (
        "overflows_debits_posted",
        lambda bk, a, b, earlier: bk.t(a, b, U128_MAX),  # after a prior transfer of 1
        S.OVERFLOWS_DEBITS_POSTED,
        lambda bk, a, b, i: bk.t(a, b, 1, id=i),
    ),
    (
        "pending_transfer_not_pending",
        lambda bk, a, b, earlier: bk.t(0, 0, pending_id=earlier, flags=F.POST_PENDING_TRANSFER),
        S.PENDING_TRANSFER_NOT_PENDING,
        lambda bk, a, b, i: bk.t(a, b, id=i),
    ),
    (
        "pending_transfer_already_posted",
        lambda bk, a, b, earlier: _second_resolution(bk, a, b, F.POST_PENDING_TRANSFER),
        S.PENDING_TRANSFER_ALREADY_POSTED,
        lambda bk, a, b, i: bk.t(a, b, id=i),
    ),
    (
        "pending_transfer_already_voided",
        lambda bk, a, b, earlier: _second_resolution(bk, a, b, F.VOID_PENDING_TRANSFER),
        S.PENDING_TRANSFER_ALREADY_VOIDED,
        lambda bk, a, b, i: bk.t(a, b, id=i),
    ),
]


def _second_resolution(bk: Book, a: int, b: int, first: F) -> Transfer:
    """A post of a pending transfer already resolved by `first`."""
    pending = bk.t(a, b, 5, flags=F.PENDING)
    resolve = {"pending_id": pending.id, "ledger": 0, "code": 0}
    bk.ok(pending, bk.t(0, 0, 0, flags=first, **resolve))
    return bk.t(0, 0, 5, flags=F.POST_PENDING_TRANSFER, **resolve)


@pytest.mark.parametrize(
    ("failing", "status", "corrected"),
    [pytest.param(f, s, c, id=name) for name, f, s, c in NON_TRANSIENT],
)
def test_non_transient_failure_leaves_the_id_reusable(book, failing, status, corrected) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    earlier = book.t(a, b, 1)
    book.ok(earlier)
    transfer = failing(book, a, b, earlier.id)
    assert book.submit(transfer) == [status]
    assert book.submit(corrected(book, a, b, transfer.id)) == [S.CREATED]
