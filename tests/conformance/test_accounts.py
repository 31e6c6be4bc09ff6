"""`create_accounts` and `lookup_accounts`, as TigerBeetle 0.17.9 specifies them.

Each status is shown in precedence order: every case below breaks its own rule *and* every rule
ranked after it, so the status it expects is only returned if the engine checks the rules in
TigerBeetle's order (reference §3.1). Then the `exists` family (idempotent retries compare flags,
user data, ledger and code — never balances or timestamp), linked chains of accounts (§5, with the
upstream example), the fact that a rejected account never burns its id, and `lookup_accounts`
(request order, duplicates kept, missing ids skipped; §9.1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from tigerbeetle import Account, AccountFlags, CreateAccountStatus

S = CreateAccountStatus
F = AccountFlags
U128_MAX = 2**128 - 1
TIMESTAMP_MAX = 2**63 - 1
RESERVED_FLAG_BIT = 1 << 6  # the first AccountFlags bit TigerBeetle does not define


def statuses(results: list) -> list[S]:
    return [r.status for r in results]


@dataclass
class Ctx:
    """What a precedence case may refer to: a fresh ledger and an account that already exists."""

    ledger: int
    existing: Account
    fresh: Callable[[], int]


@pytest.fixture
def ctx(engine) -> Ctx:
    ledger = engine.ledger()
    (existing_id,) = engine.ids(1)
    existing = Account(
        id=existing_id,
        user_data_128=11,
        user_data_64=12,
        user_data_32=13,
        ledger=ledger,
        code=7,
        flags=F.HISTORY,
    )
    assert statuses(engine.client.create_accounts([existing])) == [S.CREATED]
    return Ctx(ledger=ledger, existing=existing, fresh=lambda: engine.ids(1)[0])


def bad(c: Ctx, **fields) -> Account:
    """An account that breaks every rule the engine could check: zero ledger/code, non-zero
    balances, both limit flags. Cases override the fields their rule needs."""
    base = {
        "id": c.fresh(),
        "debits_pending": 1,
        "debits_posted": 1,
        "credits_pending": 1,
        "credits_posted": 1,
        "ledger": 0,
        "code": 0,
        "flags": F.DEBITS_MUST_NOT_EXCEED_CREDITS | F.CREDITS_MUST_NOT_EXCEED_DEBITS,
    }
    base.update(fields)
    return Account(**base)


def changed(existing: Account, *field_names: str) -> Account:
    """`existing` with each named field changed (and nothing else)."""
    values = {
        "flags": existing.flags | F.DEBITS_MUST_NOT_EXCEED_CREDITS,
        "user_data_128": existing.user_data_128 + 1,
        "user_data_64": existing.user_data_64 + 1,
        "user_data_32": existing.user_data_32 + 1,
        "ledger": existing.ledger + 1,
        "code": existing.code + 1,
    }
    return replace(existing, **{name: values[name] for name in field_names})


# (case, batch builder, status of the batch's LAST event). Each row also breaks every rule ranked
# below its own, so only TigerBeetle's precedence yields the expected status.
PRECEDENCE: list[tuple[str, Callable[[Ctx], list[Account]], S]] = [
    (
        "linked_last_event_beats_everything",
        lambda c: [bad(c, id=0, flags=F.LINKED | RESERVED_FLAG_BIT, timestamp=5)],
        S.LINKED_EVENT_CHAIN_OPEN,
    ),
    (
        "failed_chain_beats_own_faults",
        lambda c: [bad(c, id=0, flags=F.LINKED), bad(c, id=0, timestamp=5)],
        S.LINKED_EVENT_FAILED,
    ),
    (
        "imported_expected_beats_timestamp",
        # The first event decides that the batch is imported; it fails itself (timestamp 0).
        lambda c: [bad(c, flags=F.IMPORTED), bad(c, id=0, timestamp=5)],
        S.IMPORTED_EVENT_EXPECTED,
    ),
    (
        "imported_not_expected_beats_range",
        lambda c: [bad(c, id=0), bad(c, id=0, flags=F.IMPORTED, timestamp=0)],
        S.IMPORTED_EVENT_NOT_EXPECTED,
    ),
    (
        "timestamp_must_be_zero_beats_reserved_flag",
        lambda c: [bad(c, id=0, flags=RESERVED_FLAG_BIT, timestamp=1)],
        S.TIMESTAMP_MUST_BE_ZERO,
    ),
    (
        "imported_timestamp_zero_out_of_range",
        lambda c: [bad(c, id=0, flags=F.IMPORTED | RESERVED_FLAG_BIT, timestamp=0)],
        S.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE,
    ),
    (
        "imported_timestamp_above_2_63_out_of_range",
        lambda c: [bad(c, id=0, flags=F.IMPORTED, timestamp=TIMESTAMP_MAX + 1)],
        S.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE,
    ),
    (
        "imported_timestamp_in_future_must_not_advance",
        lambda c: [bad(c, id=0, flags=F.IMPORTED | RESERVED_FLAG_BIT, timestamp=TIMESTAMP_MAX)],
        S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE,
    ),
    (
        "reserved_flag_beats_id_zero",
        lambda c: [bad(c, id=0, flags=RESERVED_FLAG_BIT)],
        S.RESERVED_FLAG,
    ),
    ("id_zero", lambda c: [bad(c, id=0)], S.ID_MUST_NOT_BE_ZERO),
    ("id_int_max", lambda c: [bad(c, id=U128_MAX)], S.ID_MUST_NOT_BE_INT_MAX),
    (
        "exists_with_different_flags_beats_semantic_checks",
        lambda c: [
            replace(
                changed(c.existing, "user_data_128", "ledger"),
                flags=F.DEBITS_MUST_NOT_EXCEED_CREDITS | F.CREDITS_MUST_NOT_EXCEED_DEBITS,
                debits_pending=1,
            )
        ],
        S.EXISTS_WITH_DIFFERENT_FLAGS,
    ),
    (
        "exists_ignores_balances",
        # A retry of an existing account is `exists` even though its balances are illegal.
        lambda c: [replace(c.existing, debits_pending=1, credits_posted=2)],
        S.EXISTS,
    ),
    (
        "mutually_exclusive_flags_beat_balances",
        lambda c: [bad(c)],
        S.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
    ),
    (
        "debits_pending_beats_debits_posted",
        lambda c: [bad(c, flags=F.NONE)],
        S.DEBITS_PENDING_MUST_BE_ZERO,
    ),
    (
        "debits_posted_beats_credits_pending",
        lambda c: [bad(c, flags=F.NONE, debits_pending=0)],
        S.DEBITS_POSTED_MUST_BE_ZERO,
    ),
    (
        "credits_pending_beats_credits_posted",
        lambda c: [bad(c, flags=F.NONE, debits_pending=0, debits_posted=0)],
        S.CREDITS_PENDING_MUST_BE_ZERO,
    ),
    (
        "credits_posted_beats_ledger",
        lambda c: [bad(c, flags=F.NONE, debits_pending=0, debits_posted=0, credits_pending=0)],
        S.CREDITS_POSTED_MUST_BE_ZERO,
    ),
    (
        "ledger_beats_code",
        lambda c: [Account(id=c.fresh(), ledger=0, code=0)],
        S.LEDGER_MUST_NOT_BE_ZERO,
    ),
    (
        "code_zero",
        lambda c: [Account(id=c.fresh(), ledger=c.ledger, code=0)],
        S.CODE_MUST_NOT_BE_ZERO,
    ),
    (
        "valid_account_created",
        lambda c: [Account(id=c.fresh(), ledger=c.ledger, code=1)],
        S.CREATED,
    ),
]


@pytest.mark.parametrize(
    ("build", "expected"),
    [pytest.param(build, expected, id=name) for name, build, expected in PRECEDENCE],
)
def test_status_precedence(engine, ctx, build, expected) -> None:
    batch = build(ctx)
    results = engine.client.create_accounts(batch)
    assert len(results) == len(batch)
    assert results[-1].status == expected


@pytest.mark.parametrize(
    ("field_names", "expected"),
    [
        # Comparison order: flags, user_data_128, user_data_64, user_data_32, ledger, code.
        # Each row changes its field and every later one; the first difference wins.
        (
            ("flags", "user_data_128", "user_data_64", "user_data_32", "ledger", "code"),
            S.EXISTS_WITH_DIFFERENT_FLAGS,
        ),
        (
            ("user_data_128", "user_data_64", "user_data_32", "ledger", "code"),
            S.EXISTS_WITH_DIFFERENT_USER_DATA_128,
        ),
        (
            ("user_data_64", "user_data_32", "ledger", "code"),
            S.EXISTS_WITH_DIFFERENT_USER_DATA_64,
        ),
        (("user_data_32", "ledger", "code"), S.EXISTS_WITH_DIFFERENT_USER_DATA_32),
        (("ledger", "code"), S.EXISTS_WITH_DIFFERENT_LEDGER),
        (("code",), S.EXISTS_WITH_DIFFERENT_CODE),
        ((), S.EXISTS),
    ],
    ids=lambda v: v.name if isinstance(v, S) else None,
)
def test_exists_family_in_comparison_order(engine, ctx, field_names, expected) -> None:
    (result,) = engine.client.create_accounts([changed(ctx.existing, *field_names)])
    assert result.status == expected


def test_exists_compares_raw_flags_including_linked(engine, ctx) -> None:
    # `linked` is stored with the account, so a retry outside the original chain differs.
    with_linked = replace(ctx.existing, flags=ctx.existing.flags | F.LINKED)
    results = engine.client.create_accounts([with_linked, Account(id=ctx.fresh(), ledger=0)])
    assert results[0].status == S.EXISTS_WITH_DIFFERENT_FLAGS


def test_exists_returns_the_original_timestamp_and_changes_nothing(engine, ctx) -> None:
    (original,) = engine.client.lookup_accounts([ctx.existing.id])
    (result,) = engine.client.create_accounts([ctx.existing])
    assert result.status == S.EXISTS
    assert result.timestamp == original.timestamp
    assert engine.client.lookup_accounts([ctx.existing.id]) == [original]


def test_created_account_is_stored_as_sent_with_zero_balances(engine, ctx) -> None:
    (account_id,) = engine.ids(1)
    sent = Account(
        id=account_id,
        user_data_128=U128_MAX,
        user_data_64=2**64 - 1,
        user_data_32=2**32 - 1,
        ledger=ctx.ledger,
        code=2**16 - 1,
        flags=F.HISTORY | F.CREDITS_MUST_NOT_EXCEED_DEBITS,
    )
    (result,) = engine.client.create_accounts([sent])
    assert result.status == S.CREATED
    (stored,) = engine.client.lookup_accounts([account_id])
    assert stored == replace(sent, timestamp=result.timestamp)
    assert isinstance(stored.flags, F)


def test_account_created_closed_is_stored_closed(engine, ctx) -> None:
    (account_id,) = engine.ids(1)
    account = Account(id=account_id, ledger=ctx.ledger, code=1, flags=F.CLOSED)
    assert statuses(engine.client.create_accounts([account])) == [S.CREATED]
    (stored,) = engine.client.lookup_accounts([account_id])
    assert stored.flags == F.CLOSED


def test_rejected_account_does_not_burn_its_id(engine, ctx) -> None:
    # create_accounts has no transient statuses: fix the event and resubmit with the same id.
    (account_id,) = engine.ids(1)
    (first,) = engine.client.create_accounts([Account(id=account_id, ledger=ctx.ledger, code=0)])
    assert first.status == S.CODE_MUST_NOT_BE_ZERO
    (second,) = engine.client.create_accounts([Account(id=account_id, ledger=ctx.ledger, code=1)])
    assert second.status == S.CREATED


def test_duplicate_id_within_one_batch_is_exists(engine, ctx) -> None:
    (account_id,) = engine.ids(1)
    account = Account(id=account_id, ledger=ctx.ledger, code=1)
    first, second = engine.client.create_accounts([account, account])
    assert (first.status, second.status) == (S.CREATED, S.EXISTS)
    assert second.timestamp == first.timestamp


# -- linked chains ---------------------------------------------------------------------------


def test_upstream_chain_example(engine, ctx) -> None:
    """Reference §5: a chain broken by a duplicate of its own first member rolls back, and a later
    independent event does not see the rolled-back account."""
    a7, a1, a2, a3 = engine.ids(4)

    def acc(account_id: int, flags: F = F.NONE) -> Account:
        return Account(id=account_id, ledger=ctx.ledger, code=1, flags=flags)

    results = engine.client.create_accounts(
        [
            acc(a7),
            acc(a1, F.LINKED),
            acc(a2, F.LINKED),
            acc(a1, F.LINKED),  # the chain's own first member: `exists` breaks the chain
            acc(a3),
            acc(a1),
        ]
    )
    assert statuses(results) == [
        S.CREATED,
        S.LINKED_EVENT_FAILED,
        S.LINKED_EVENT_FAILED,
        S.EXISTS,
        S.LINKED_EVENT_FAILED,
        S.CREATED,
    ]
    found = engine.client.lookup_accounts([a7, a1, a2, a3])
    assert [a.id for a in found] == [a7, a1]
    assert found[1].flags == F.NONE  # the a1 of event 5, not the rolled-back linked one


def test_committed_chain_creates_every_member(engine, ctx) -> None:
    ids = engine.ids(3)
    chain = [
        Account(id=ids[0], ledger=ctx.ledger, code=1, flags=F.LINKED),
        Account(id=ids[1], ledger=ctx.ledger, code=1, flags=F.LINKED),
        Account(id=ids[2], ledger=ctx.ledger, code=1),
    ]
    assert statuses(engine.client.create_accounts(chain)) == [S.CREATED] * 3
    assert [a.flags for a in engine.client.lookup_accounts(ids)] == [F.LINKED, F.LINKED, F.NONE]


def test_failing_member_rolls_back_the_whole_chain(engine, ctx) -> None:
    ids = engine.ids(4)
    batch = [
        Account(id=ids[0], ledger=ctx.ledger, code=1, flags=F.LINKED),
        Account(id=ids[1], ledger=ctx.ledger, code=0, flags=F.LINKED),  # breaks the chain
        Account(id=ids[2], ledger=0, code=1),  # invalid too, but never evaluated
        Account(id=ids[3], ledger=ctx.ledger, code=1),  # independent: unaffected
    ]
    assert statuses(engine.client.create_accounts(batch)) == [
        S.LINKED_EVENT_FAILED,
        S.CODE_MUST_NOT_BE_ZERO,
        S.LINKED_EVENT_FAILED,
        S.CREATED,
    ]
    assert [a.id for a in engine.client.lookup_accounts(ids)] == [ids[3]]


@pytest.mark.parametrize(
    ("batch_shape", "expected"),
    [
        # One linked event alone: the chain is open at the end of the batch.
        (["open"], [S.LINKED_EVENT_CHAIN_OPEN]),
        # A healthy chain left open: its earlier members are rolled back too.
        (["open", "open"], [S.LINKED_EVENT_FAILED, S.LINKED_EVENT_CHAIN_OPEN]),
        # A chain already broken still reports chain_open on its linked last event.
        (
            ["open", "broken", "open"],
            [S.LINKED_EVENT_FAILED, S.CODE_MUST_NOT_BE_ZERO, S.LINKED_EVENT_CHAIN_OPEN],
        ),
        # A closed chain followed by an open one: only the open one fails.
        (
            ["open", "end", "open"],
            [S.CREATED, S.CREATED, S.LINKED_EVENT_CHAIN_OPEN],
        ),
    ],
    ids=["single", "healthy", "already_broken", "after_closed_chain"],
)
def test_chain_open_at_end_of_batch(engine, ctx, batch_shape, expected) -> None:
    ids = engine.ids(len(batch_shape))
    shapes = {
        "open": {"code": 1, "flags": F.LINKED},
        "broken": {"code": 0, "flags": F.LINKED},
        "end": {"code": 1, "flags": F.NONE},
    }
    batch = [
        Account(id=i, ledger=ctx.ledger, **shapes[shape])
        for i, shape in zip(ids, batch_shape, strict=True)
    ]
    assert statuses(engine.client.create_accounts(batch)) == expected
    created = [i for i, s in zip(ids, expected, strict=True) if s == S.CREATED]
    assert [a.id for a in engine.client.lookup_accounts(ids)] == created


def test_rolled_back_members_keep_their_slot_timestamps(engine, ctx) -> None:
    # Results of a failed chain still carry the consecutive per-event timestamps of the batch.
    ids = engine.ids(3)
    batch = [
        Account(id=ids[0], ledger=ctx.ledger, code=1, flags=F.LINKED),
        Account(id=ids[1], ledger=ctx.ledger, code=0, flags=F.LINKED),
        Account(id=ids[2], ledger=ctx.ledger, code=1),
    ]
    results = engine.client.create_accounts(batch)
    assert statuses(results) == [
        S.LINKED_EVENT_FAILED,
        S.CODE_MUST_NOT_BE_ZERO,
        S.LINKED_EVENT_FAILED,
    ]
    first = results[0].timestamp
    assert [r.timestamp for r in results] == [first, first + 1, first + 2]


# -- lookup_accounts -------------------------------------------------------------------------


def test_lookup_returns_request_order_keeps_duplicates_skips_missing(engine, ctx) -> None:
    a, b, missing = engine.ids(3)
    accounts = [Account(id=i, ledger=ctx.ledger, code=1) for i in (a, b)]
    assert statuses(engine.client.create_accounts(accounts)) == [S.CREATED, S.CREATED]
    found = engine.client.lookup_accounts([b, missing, 0, a, U128_MAX, b])
    assert [x.id for x in found] == [b, a, b]


def test_lookup_of_nothing_found_is_empty(engine) -> None:
    assert engine.client.lookup_accounts(engine.ids(3)) == []
