"""Linked chains of transfers, as TigerBeetle 0.17.9 specifies them (reference §5, §4.5).

A chain is all-or-nothing: the first member that is not `created` — including `exists` — rolls
back every earlier member (transfers, balances, pending resolutions, closed flags, balance
history), earlier members report `linked_event_failed`, the breaking member keeps its own status
and later members fail without being evaluated. A linked last event reports
`linked_event_chain_open` whether or not its chain had already broken. The one effect that
survives a rollback is the burn of a transiently failed id; the other members are not burned.
Retrying a committed chain verbatim yields `exists` then `linked_event_failed` for the rest.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from tigerbeetle import (
    AMOUNT_MAX,
    Account,
    AccountFilterFlags,
    AccountFlags,
    CreateTransferStatus,
    TransferFlags,
)

from tests.support.filters import account_filter

S = CreateTransferStatus
F = TransferFlags
AF = AccountFlags
L = F.LINKED
FAILED = S.LINKED_EVENT_FAILED


def test_committed_chain_applies_every_member(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    chain = [book.t(a, b, 1, flags=L), book.t(a, b, 2, flags=L), book.t(a, b, 3)]
    book.ok(*chain)
    assert book.balance(a) == (0, 6, 0, 0)
    assert [t.flags for t in book.client.lookup_transfers([t.id for t in chain])] == [L, L, 0]


def test_members_see_earlier_members(book) -> None:
    # The second member is only within the limit thanks to the first.
    limited, funder = book.open(AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE)
    book.ok(book.t(funder, limited, 5, flags=L), book.t(limited, funder, 5))


def test_failure_rolls_back_balances_and_transfers(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    chain = [
        book.t(a, b, 1, flags=L),
        book.t(a, b, 2, flags=L | F.PENDING),
        book.t(a, b, 3, ledger=0),  # breaks the chain
    ]
    assert book.submit(*chain) == [FAILED, FAILED, S.LEDGER_MUST_NOT_BE_ZERO]
    assert book.balance(a) == (0, 0, 0, 0)
    assert book.balance(b) == (0, 0, 0, 0)
    assert book.found(*chain) == []


def test_failure_rolls_back_a_post(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    p = book.t(a, b, 10, flags=F.PENDING)
    book.ok(p)
    post = book.resolve(p, F.POST_PENDING_TRANSFER | L, AMOUNT_MAX)
    assert book.submit(post, book.t(a, a)) == [FAILED, S.ACCOUNTS_MUST_BE_DIFFERENT]
    assert book.balance(a) == (10, 0, 0, 0)
    # Still pending: it can be voided now.
    book.ok(book.resolve(p, F.VOID_PENDING_TRANSFER))


def test_failure_rolls_back_a_closing_transfer(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    closer = book.t(a, b, 0, flags=F.PENDING | F.CLOSING_DEBIT | L)
    assert book.submit(closer, book.t(a, b, ledger=0)) == [FAILED, S.LEDGER_MUST_NOT_BE_ZERO]
    assert not book.closed(a)


def test_failure_rolls_back_a_reopening_void(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    closer = book.t(a, b, 0, flags=F.PENDING | F.CLOSING_DEBIT)
    book.ok(closer)
    void = book.resolve(closer, F.VOID_PENDING_TRANSFER | L)
    assert book.submit(void, book.t(b, b)) == [FAILED, S.ACCOUNTS_MUST_BE_DIFFERENT]
    assert book.closed(a)


def test_a_member_closing_an_account_blocks_later_members(book) -> None:
    # Members see the closed flag set by an earlier member; the whole chain then rolls back.
    a, b = book.open(AF.NONE, AF.NONE)
    closer = book.t(a, b, 0, flags=F.PENDING | F.CLOSING_DEBIT | L)
    assert book.submit(closer, book.t(a, b)) == [FAILED, S.DEBIT_ACCOUNT_ALREADY_CLOSED]
    assert not book.closed(a)


def test_failure_rolls_back_balance_history(book) -> None:
    a, b = book.open(AF.HISTORY, AF.NONE)
    book.ok(book.t(a, b, 1))
    assert book.submit(book.t(a, b, 2, flags=L), book.t(a, b, ledger=0)) == [
        FAILED,
        S.LEDGER_MUST_NOT_BE_ZERO,
    ]
    book.ok(book.t(a, b, 4))
    history = book.client.get_account_balances(
        account_filter(
            account_id=a, limit=10, flags=AccountFilterFlags.DEBITS | AccountFilterFlags.CREDITS
        )
    )
    assert [h.debits_posted for h in history] == [1, 5]


def test_exists_breaks_a_chain(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    existing = book.t(a, b, 1)
    book.ok(existing)
    first, last = book.t(a, b, 2, flags=L), book.t(a, b, 4)
    # `existing` itself is not linked, so it ends the chain as its last member.
    assert book.submit(first, existing, last) == [FAILED, S.EXISTS, S.CREATED]
    assert book.found(first, existing, last) == [existing.id, last.id]
    assert book.balance(a) == (0, 5, 0, 0)


def test_later_members_fail_without_evaluation(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    chain = [
        book.t(a, b, ledger=0, flags=L),  # breaks the chain
        book.t(a, a, flags=L),  # would be accounts_must_be_different
        book.t(a, b),  # would be created
    ]
    assert book.submit(*chain) == [S.LEDGER_MUST_NOT_BE_ZERO, FAILED, FAILED]


def test_independent_events_after_a_failed_chain_are_unaffected(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    before = book.t(a, b, 1)
    chain = [book.t(a, b, 2, flags=L), book.t(a, b, 2, ledger=0)]
    after = book.t(a, b, 4)
    assert book.submit(before, *chain, after) == [
        S.CREATED,
        FAILED,
        S.LEDGER_MUST_NOT_BE_ZERO,
        S.CREATED,
    ]
    assert book.balance(a) == (0, 5, 0, 0)


def test_two_chains_in_one_batch_are_independent(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    batch = [
        book.t(a, b, 1, flags=L),
        book.t(a, b, 0, ledger=0),  # breaks the first chain
        book.t(a, b, 2, flags=L),
        book.t(a, b, 4),
    ]
    assert book.submit(*batch) == [FAILED, S.LEDGER_MUST_NOT_BE_ZERO, S.CREATED, S.CREATED]
    assert book.balance(a) == (0, 6, 0, 0)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (["linked"], [S.LINKED_EVENT_CHAIN_OPEN]),
        (["linked", "linked"], [FAILED, S.LINKED_EVENT_CHAIN_OPEN]),
        (["linked", "linked", "linked"], [FAILED, FAILED, S.LINKED_EVENT_CHAIN_OPEN]),
        (["broken", "linked"], [S.LEDGER_MUST_NOT_BE_ZERO, S.LINKED_EVENT_CHAIN_OPEN]),
        (
            ["linked", "broken", "linked", "linked"],
            [FAILED, S.LEDGER_MUST_NOT_BE_ZERO, FAILED, S.LINKED_EVENT_CHAIN_OPEN],
        ),
        (["plain", "linked"], [S.CREATED, S.LINKED_EVENT_CHAIN_OPEN]),
    ],
    ids=["single", "fresh_pair", "fresh_triple", "broken_pair", "already_broken", "after_plain"],
)
def test_chain_open_at_the_end_of_the_batch(book, shape, expected) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    make = {
        "linked": lambda: book.t(a, b, 1, flags=L),
        "broken": lambda: book.t(a, b, 1, flags=L, ledger=0),
        "plain": lambda: book.t(a, b, 1),
    }
    batch = [make[kind]() for kind in shape]
    assert book.submit(*batch) == expected
    created = sum(1 for s in expected if s == S.CREATED)
    assert book.balance(a) == (0, created, 0, 0)


def test_chain_open_wins_over_the_last_events_own_faults(book) -> None:
    assert book.submit(book.t(0, 0, id=0, flags=L | (1 << 9), ledger=0)) == [
        S.LINKED_EVENT_CHAIN_OPEN
    ]


def test_transient_burn_inside_a_rolled_back_chain_survives(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    missing = book.fresh()
    first = book.t(a, b, 1, flags=L)
    transient = book.t(a, missing, 1, flags=L)
    last = book.t(a, b, 1)
    assert book.submit(first, transient, last) == [FAILED, S.CREDIT_ACCOUNT_NOT_FOUND, FAILED]
    book.client.create_accounts([Account(id=missing, ledger=book.ledger, code=1)])
    # The transient member's id stays burned (it is linked, so close its chain to retry it)...
    assert book.submit(transient, book.t(a, b)) == [S.ID_ALREADY_FAILED, FAILED]
    # ...while the other members' ids were never burned.
    book.ok(first, last)


def test_unevaluated_member_with_a_transient_fault_is_not_burned(book) -> None:
    # After the chain broke, a later member is not evaluated: its missing account is never
    # noticed, so its id is not burned.
    a, b = book.open(AF.NONE, AF.NONE)
    missing = book.fresh()
    would_fail = book.t(a, missing, 1)
    assert book.submit(book.t(a, b, ledger=0, flags=L), would_fail) == [
        S.LEDGER_MUST_NOT_BE_ZERO,
        FAILED,
    ]
    book.client.create_accounts([Account(id=missing, ledger=book.ledger, code=1)])
    book.ok(would_fail)


def test_verbatim_retry_of_a_committed_chain(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    chain = [book.t(a, b, 1, flags=L), book.t(a, b, 2, flags=L), book.t(a, b, 3)]
    book.ok(*chain)
    # The first member is `exists`, which breaks the chain: the rest report linked_event_failed
    # and nothing changes. Applications treat this pattern as "already applied".
    assert book.submit(*chain) == [S.EXISTS, FAILED, FAILED]
    assert book.balance(a) == (0, 6, 0, 0)


def test_retry_must_reproduce_the_linked_flag(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    chain = [book.t(a, b, 1, flags=L), book.t(a, b, 2)]
    book.ok(*chain)
    unlinked = replace(chain[0], flags=F.NONE)
    assert book.submit(unlinked) == [S.EXISTS_WITH_DIFFERENT_FLAGS]


def test_rolled_back_members_keep_consecutive_slot_timestamps(book) -> None:
    a, b = book.open(AF.NONE, AF.NONE)
    chain = [book.t(a, b, flags=L), book.t(a, b, flags=L), book.t(a, b, ledger=0)]
    results = book.client.create_transfers(chain)
    assert [r.status for r in results] == [FAILED, FAILED, S.LEDGER_MUST_NOT_BE_ZERO]
    first = results[0].timestamp
    assert [r.timestamp for r in results] == [first, first + 1, first + 2]
