"""One scenario per status code: every member of `CreateAccountStatus` and `CreateTransferStatus`.

The tables below map each status to the smallest scenario that produces it (the scenario returns
the status of the event under test). A coverage test fails as soon as an enum member has no
scenario, so a status added to the official client cannot go unnoticed; the parametrized tests run
every scenario against each engine. Precedence between statuses is specified in the other modules;
here each scenario only needs to be unambiguous.

Two scenarios cannot run against a real cluster, and say so when skipped:
`CreateAccountStatus.RESERVED_FIELD` (the Python `Account` has no `reserved` field, so it is
checked on the twin's state machine with a raw wire-order event tuple) and
`CreateTransferStatus.OVERFLOWS_TIMEOUT` (it needs a cluster clock past the year 2126).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from tigerbeetle import (
    AMOUNT_MAX,
    Account,
    AccountFlags,
    CreateAccountStatus,
    CreateTransferStatus,
    QueryFilter,
    QueryFilterFlags,
    Transfer,
    TransferFlags,
)

from tbledger.embedded import StateMachine

A = CreateAccountStatus
S = CreateTransferStatus
AF = AccountFlags
F = TransferFlags
POST = F.POST_PENDING_TRANSFER
VOID = F.VOID_PENDING_TRANSFER
U128_MAX = 2**128 - 1
TIMESTAMP_MAX = 2**63 - 1


class Ctx:
    """Shorthands for writing a scenario against the engine under test, on a fresh ledger."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.client = engine.client
        self.ledger = engine.ledger()

    def fresh(self) -> int:
        return self.engine.ids(1)[0]

    # accounts

    def account(self, **fields) -> Account:
        base = {"id": self.fresh(), "ledger": self.ledger, "code": 1}
        base.update(fields)
        return Account(**base)

    def accounts(self, *accounts: Account) -> list[A]:
        return [r.status for r in self.client.create_accounts(list(accounts))]

    def open(self, *flags: AF) -> list[int]:
        accounts = [self.account(flags=f) for f in flags]
        assert self.accounts(*accounts) == [A.CREATED] * len(accounts)
        return [a.id for a in accounts]

    def newest_timestamp(self) -> int:
        """The newest object timestamp in the database: imported timestamps go just above it."""
        f = QueryFilter(0, 0, 0, 0, 0, 0, 0, 1, QueryFilterFlags.REVERSED)
        found = [*self.client.query_accounts(f), *self.client.query_transfers(f)]
        return max((o.timestamp for o in found), default=0)

    # transfers

    def t(self, dr: int = 0, cr: int = 0, amount: int = 1, **fields) -> Transfer:
        base = {"id": self.fresh(), "ledger": self.ledger, "code": 1}
        base.update(fields)
        return Transfer(debit_account_id=dr, credit_account_id=cr, amount=amount, **base)

    def transfers(self, *transfers: Transfer) -> list[S]:
        return [r.status for r in self.client.create_transfers(list(transfers))]

    def pair(self) -> tuple[int, int]:
        a, b = self.open(AF.NONE, AF.NONE)
        return a, b

    def created(self, transfer: Transfer) -> Transfer:
        assert self.transfers(transfer) == [S.CREATED]
        return transfer

    def pending(self, amount: int = 10, **fields) -> Transfer:
        a, b = self.pair()
        return self.created(self.t(a, b, amount, flags=F.PENDING, **fields))

    def resolve(self, p: Transfer, flag: F, amount: int = 0, **fields) -> Transfer:
        return Transfer(id=self.fresh(), pending_id=p.id, amount=amount, flags=flag, **fields)


@dataclass(frozen=True)
class Case:
    run: Callable[[Ctx], int]  # returns the status of the event under test
    real_skip: str | None = None  # why the scenario cannot run against a real cluster


ACCOUNT_CASES: dict[A, Case] = {}
TRANSFER_CASES: dict[S, Case] = {}


def account_case(status: A, *, real_skip: str | None = None):
    def register(run: Callable[[Ctx], int]) -> Callable[[Ctx], int]:
        ACCOUNT_CASES[status] = Case(run, real_skip)
        return run

    return register


def transfer_case(status: S, *, real_skip: str | None = None):
    def register(run: Callable[[Ctx], int]) -> Callable[[Ctx], int]:
        TRANSFER_CASES[status] = Case(run, real_skip)
        return run

    return register


# -- CreateAccountStatus ---------------------------------------------------------------------


@account_case(A.CREATED)
def _account_created(c: Ctx) -> int:
    return c.accounts(c.account())[0]


@account_case(A.LINKED_EVENT_FAILED)
def _account_linked_event_failed(c: Ctx) -> int:
    return c.accounts(c.account(flags=AF.LINKED, code=0), c.account())[1]


@account_case(A.LINKED_EVENT_CHAIN_OPEN)
def _account_linked_event_chain_open(c: Ctx) -> int:
    return c.accounts(c.account(flags=AF.LINKED))[0]


@account_case(A.IMPORTED_EVENT_EXPECTED)
def _account_imported_event_expected(c: Ctx) -> int:
    imported = c.account(flags=AF.IMPORTED, timestamp=c.newest_timestamp() + 1)
    return c.accounts(imported, c.account())[1]


@account_case(A.IMPORTED_EVENT_NOT_EXPECTED)
def _account_imported_event_not_expected(c: Ctx) -> int:
    imported = c.account(flags=AF.IMPORTED, timestamp=c.newest_timestamp() + 1)
    return c.accounts(c.account(), imported)[1]


@account_case(A.TIMESTAMP_MUST_BE_ZERO)
def _account_timestamp_must_be_zero(c: Ctx) -> int:
    return c.accounts(c.account(timestamp=1))[0]


@account_case(A.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE)
def _account_timestamp_out_of_range(c: Ctx) -> int:
    return c.accounts(c.account(flags=AF.IMPORTED, timestamp=0))[0]


@account_case(A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE)
def _account_timestamp_must_not_advance(c: Ctx) -> int:
    return c.accounts(c.account(flags=AF.IMPORTED, timestamp=TIMESTAMP_MAX))[0]


@account_case(
    A.RESERVED_FIELD,
    real_skip="Account.reserved is not exposed by the Python client (always sent as 0)",
)
def _account_reserved_field(c: Ctx) -> int:
    """Checked on the twin's state machine: the event tuple is in wire order (id,
    debits_pending, debits_posted, credits_pending, credits_posted, user_data_128, user_data_64,
    user_data_32, reserved, ledger, code, flags, timestamp), with reserved = 1."""
    event = (c.fresh(), 0, 0, 0, 0, 0, 0, 0, 1, c.ledger, 1, 0, 0)
    ((_, status),) = StateMachine().create_accounts([event], time.time_ns())
    return status


@account_case(A.RESERVED_FLAG)
def _account_reserved_flag(c: Ctx) -> int:
    return c.accounts(c.account(flags=1 << 6))[0]


@account_case(A.ID_MUST_NOT_BE_ZERO)
def _account_id_must_not_be_zero(c: Ctx) -> int:
    return c.accounts(c.account(id=0))[0]


@account_case(A.ID_MUST_NOT_BE_INT_MAX)
def _account_id_must_not_be_int_max(c: Ctx) -> int:
    return c.accounts(c.account(id=U128_MAX))[0]


def _account_exists_with(**changes) -> Callable[[Ctx], int]:
    def run(c: Ctx) -> int:
        fields = {"user_data_128": 1, "user_data_64": 2, "user_data_32": 3, "code": 4}
        existing = c.account(**fields)
        assert c.accounts(existing) == [A.CREATED]
        values = {"id": existing.id, "ledger": existing.ledger, "flags": existing.flags, **fields}
        return c.accounts(Account(**{**values, **changes}))[0]

    return run


account_case(A.EXISTS_WITH_DIFFERENT_FLAGS)(_account_exists_with(flags=AF.HISTORY))
account_case(A.EXISTS_WITH_DIFFERENT_USER_DATA_128)(_account_exists_with(user_data_128=9))
account_case(A.EXISTS_WITH_DIFFERENT_USER_DATA_64)(_account_exists_with(user_data_64=9))
account_case(A.EXISTS_WITH_DIFFERENT_USER_DATA_32)(_account_exists_with(user_data_32=9))
account_case(A.EXISTS_WITH_DIFFERENT_LEDGER)(_account_exists_with(ledger=1))
account_case(A.EXISTS_WITH_DIFFERENT_CODE)(_account_exists_with(code=9))
account_case(A.EXISTS)(_account_exists_with())


@account_case(A.FLAGS_ARE_MUTUALLY_EXCLUSIVE)
def _account_flags_are_mutually_exclusive(c: Ctx) -> int:
    both = AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.CREDITS_MUST_NOT_EXCEED_DEBITS
    return c.accounts(c.account(flags=both))[0]


account_case(A.DEBITS_PENDING_MUST_BE_ZERO)(lambda c: c.accounts(c.account(debits_pending=1))[0])
account_case(A.DEBITS_POSTED_MUST_BE_ZERO)(lambda c: c.accounts(c.account(debits_posted=1))[0])
account_case(A.CREDITS_PENDING_MUST_BE_ZERO)(lambda c: c.accounts(c.account(credits_pending=1))[0])
account_case(A.CREDITS_POSTED_MUST_BE_ZERO)(lambda c: c.accounts(c.account(credits_posted=1))[0])
account_case(A.LEDGER_MUST_NOT_BE_ZERO)(lambda c: c.accounts(c.account(ledger=0))[0])
account_case(A.CODE_MUST_NOT_BE_ZERO)(lambda c: c.accounts(c.account(code=0))[0])


@account_case(A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS)
def _account_timestamp_must_not_regress(c: Ctx) -> int:
    base = c.newest_timestamp()
    newer = c.account(flags=AF.IMPORTED, timestamp=base + 2)
    older = c.account(flags=AF.IMPORTED, timestamp=base + 1)
    return c.accounts(newer, older)[1]


# -- CreateTransferStatus: common prefix -----------------------------------------------------


@transfer_case(S.CREATED)
def _created(c: Ctx) -> int:
    return c.transfers(c.t(*c.pair()))[0]


@transfer_case(S.LINKED_EVENT_FAILED)
def _linked_event_failed(c: Ctx) -> int:
    a, b = c.pair()
    return c.transfers(c.t(a, b, flags=F.LINKED, code=0), c.t(a, b))[1]


@transfer_case(S.LINKED_EVENT_CHAIN_OPEN)
def _linked_event_chain_open(c: Ctx) -> int:
    return c.transfers(c.t(*c.pair(), flags=F.LINKED))[0]


def _imported_pair(c: Ctx) -> tuple[int, int, int]:
    """Two imported accounts just above the newest timestamp; returns (a, b, next offset base)."""
    base = c.newest_timestamp()
    a = c.account(flags=AF.IMPORTED, timestamp=base + 1)
    b = c.account(flags=AF.IMPORTED, timestamp=base + 2)
    assert c.accounts(a, b) == [A.CREATED, A.CREATED]
    return a.id, b.id, base + 2


@transfer_case(S.IMPORTED_EVENT_EXPECTED)
def _imported_event_expected(c: Ctx) -> int:
    a, b, ts = _imported_pair(c)
    return c.transfers(c.t(a, b, flags=F.IMPORTED, timestamp=ts + 1), c.t(a, b))[1]


@transfer_case(S.IMPORTED_EVENT_NOT_EXPECTED)
def _imported_event_not_expected(c: Ctx) -> int:
    a, b, ts = _imported_pair(c)
    return c.transfers(c.t(a, b), c.t(a, b, flags=F.IMPORTED, timestamp=ts + 1))[1]


@transfer_case(S.TIMESTAMP_MUST_BE_ZERO)
def _timestamp_must_be_zero(c: Ctx) -> int:
    return c.transfers(c.t(*c.pair(), timestamp=1))[0]


@transfer_case(S.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE)
def _timestamp_out_of_range(c: Ctx) -> int:
    return c.transfers(c.t(*c.pair(), flags=F.IMPORTED, timestamp=TIMESTAMP_MAX + 1))[0]


@transfer_case(S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE)
def _timestamp_must_not_advance(c: Ctx) -> int:
    return c.transfers(c.t(*c.pair(), flags=F.IMPORTED, timestamp=TIMESTAMP_MAX))[0]


@transfer_case(S.RESERVED_FLAG)
def _reserved_flag(c: Ctx) -> int:
    return c.transfers(c.t(*c.pair(), flags=1 << 9))[0]


transfer_case(S.ID_MUST_NOT_BE_ZERO)(lambda c: c.transfers(c.t(*c.pair(), id=0))[0])
transfer_case(S.ID_MUST_NOT_BE_INT_MAX)(lambda c: c.transfers(c.t(*c.pair(), id=U128_MAX))[0])


def _transfer_exists_with(**changes) -> Callable[[Ctx], int]:
    def run(c: Ctx) -> int:
        a, b = c.pair()
        existing = c.created(
            c.t(a, b, 5, user_data_128=1, user_data_64=2, user_data_32=3, flags=F.PENDING)
        )
        values = {
            "id": existing.id,
            "debit_account_id": a,
            "credit_account_id": b,
            "amount": 5,
            "user_data_128": 1,
            "user_data_64": 2,
            "user_data_32": 3,
            "ledger": c.ledger,
            "code": 1,
            "flags": F.PENDING,
        }
        values.update({k: (v(a, b) if callable(v) else v) for k, v in changes.items()})
        return c.transfers(Transfer(**values))[0]

    return run


transfer_case(S.EXISTS_WITH_DIFFERENT_FLAGS)(_transfer_exists_with(flags=F.NONE))
transfer_case(S.EXISTS_WITH_DIFFERENT_PENDING_ID)(_transfer_exists_with(pending_id=1))
transfer_case(S.EXISTS_WITH_DIFFERENT_TIMEOUT)(_transfer_exists_with(timeout=1))
transfer_case(S.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID)(
    _transfer_exists_with(debit_account_id=lambda a, b: b)
)
transfer_case(S.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID)(
    _transfer_exists_with(credit_account_id=lambda a, b: a)
)
transfer_case(S.EXISTS_WITH_DIFFERENT_AMOUNT)(_transfer_exists_with(amount=6))
transfer_case(S.EXISTS_WITH_DIFFERENT_USER_DATA_128)(_transfer_exists_with(user_data_128=9))
transfer_case(S.EXISTS_WITH_DIFFERENT_USER_DATA_64)(_transfer_exists_with(user_data_64=9))
transfer_case(S.EXISTS_WITH_DIFFERENT_USER_DATA_32)(_transfer_exists_with(user_data_32=9))
transfer_case(S.EXISTS_WITH_DIFFERENT_LEDGER)(_transfer_exists_with(ledger=1))
transfer_case(S.EXISTS_WITH_DIFFERENT_CODE)(_transfer_exists_with(code=9))
transfer_case(S.EXISTS)(_transfer_exists_with())


@transfer_case(S.ID_ALREADY_FAILED)
def _id_already_failed(c: Ctx) -> int:
    (a,) = c.open(AF.NONE)
    transfer = c.t(a, c.fresh())
    assert c.transfers(transfer) == [S.CREDIT_ACCOUNT_NOT_FOUND]
    return c.transfers(transfer)[0]


# -- CreateTransferStatus: path S ------------------------------------------------------------


transfer_case(S.DEBIT_ACCOUNT_ID_MUST_NOT_BE_ZERO)(lambda c: c.transfers(c.t(0, c.pair()[1]))[0])
transfer_case(S.DEBIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX)(
    lambda c: c.transfers(c.t(U128_MAX, c.pair()[1]))[0]
)
transfer_case(S.CREDIT_ACCOUNT_ID_MUST_NOT_BE_ZERO)(lambda c: c.transfers(c.t(c.pair()[0], 0))[0])
transfer_case(S.CREDIT_ACCOUNT_ID_MUST_NOT_BE_INT_MAX)(
    lambda c: c.transfers(c.t(c.pair()[0], U128_MAX))[0]
)


@transfer_case(S.ACCOUNTS_MUST_BE_DIFFERENT)
def _accounts_must_be_different(c: Ctx) -> int:
    a, _ = c.pair()
    return c.transfers(c.t(a, a))[0]


transfer_case(S.PENDING_ID_MUST_BE_ZERO)(lambda c: c.transfers(c.t(*c.pair(), pending_id=1))[0])
transfer_case(S.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER)(
    lambda c: c.transfers(c.t(*c.pair(), timeout=1))[0]
)
transfer_case(S.CLOSING_TRANSFER_MUST_BE_PENDING)(
    lambda c: c.transfers(c.t(*c.pair(), flags=F.CLOSING_DEBIT))[0]
)
transfer_case(S.LEDGER_MUST_NOT_BE_ZERO)(lambda c: c.transfers(c.t(*c.pair(), ledger=0))[0])
transfer_case(S.CODE_MUST_NOT_BE_ZERO)(lambda c: c.transfers(c.t(*c.pair(), code=0))[0])
transfer_case(S.DEBIT_ACCOUNT_NOT_FOUND)(lambda c: c.transfers(c.t(c.fresh(), c.pair()[1]))[0])
transfer_case(S.CREDIT_ACCOUNT_NOT_FOUND)(lambda c: c.transfers(c.t(c.pair()[0], c.fresh()))[0])


@transfer_case(S.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER)
def _accounts_must_have_the_same_ledger(c: Ctx) -> int:
    (a,) = c.open(AF.NONE)
    other = c.account(ledger=c.engine.ledger())
    assert c.accounts(other) == [A.CREATED]
    return c.transfers(c.t(a, other.id))[0]


@transfer_case(S.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS)
def _transfer_must_have_the_same_ledger_as_accounts(c: Ctx) -> int:
    return c.transfers(c.t(*c.pair(), ledger=c.ledger + 1))[0]


@transfer_case(S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS)
def _transfer_timestamp_must_not_regress(c: Ctx) -> int:
    a, b, ts = _imported_pair(c)
    newer = c.t(a, b, flags=F.IMPORTED, timestamp=ts + 2)
    older = c.t(a, b, flags=F.IMPORTED, timestamp=ts + 1)
    return c.transfers(newer, older)[1]


@transfer_case(S.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_DEBIT_ACCOUNT)
def _postdate_debit_account(c: Ctx) -> int:
    base = c.newest_timestamp()
    older = c.account(flags=AF.IMPORTED, timestamp=base + 1)
    newer = c.account(flags=AF.IMPORTED, timestamp=base + 3)
    assert c.accounts(older, newer) == [A.CREATED, A.CREATED]
    return c.transfers(c.t(newer.id, older.id, flags=F.IMPORTED, timestamp=base + 2))[0]


@transfer_case(S.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_CREDIT_ACCOUNT)
def _postdate_credit_account(c: Ctx) -> int:
    base = c.newest_timestamp()
    older = c.account(flags=AF.IMPORTED, timestamp=base + 1)
    newer = c.account(flags=AF.IMPORTED, timestamp=base + 3)
    assert c.accounts(older, newer) == [A.CREATED, A.CREATED]
    return c.transfers(c.t(older.id, newer.id, flags=F.IMPORTED, timestamp=base + 2))[0]


@transfer_case(S.IMPORTED_EVENT_TIMEOUT_MUST_BE_ZERO)
def _imported_timeout_must_be_zero(c: Ctx) -> int:
    a, b, ts = _imported_pair(c)
    pending = c.t(a, b, flags=F.IMPORTED | F.PENDING, timeout=1, timestamp=ts + 1)
    return c.transfers(pending)[0]


def _closed(side: F) -> Callable[[Ctx], int]:
    def run(c: Ctx) -> int:
        a, b = c.pair()
        c.created(c.t(a, b, 0, flags=F.PENDING | side))
        return c.transfers(c.t(a, b))[0]

    return run


transfer_case(S.DEBIT_ACCOUNT_ALREADY_CLOSED)(_closed(F.CLOSING_DEBIT))
transfer_case(S.CREDIT_ACCOUNT_ALREADY_CLOSED)(_closed(F.CLOSING_CREDIT))


def _overflow(flags: F, side: str) -> Callable[[Ctx], int]:
    """Fill a's debits (or b's credits) to 2^128-1 with `flags`, then move 1 more the same way."""

    def run(c: Ctx) -> int:
        a, b, other = c.open(AF.NONE, AF.NONE, AF.NONE)
        c.created(c.t(a, b, U128_MAX, flags=flags))
        pair = (a, other) if side == "debit" else (other, b)
        return c.transfers(c.t(*pair, 1, flags=flags))[0]

    return run


transfer_case(S.OVERFLOWS_DEBITS_PENDING)(_overflow(F.PENDING, "debit"))
transfer_case(S.OVERFLOWS_CREDITS_PENDING)(_overflow(F.PENDING, "credit"))
transfer_case(S.OVERFLOWS_DEBITS_POSTED)(_overflow(F.NONE, "debit"))
transfer_case(S.OVERFLOWS_CREDITS_POSTED)(_overflow(F.NONE, "credit"))


@transfer_case(S.OVERFLOWS_DEBITS)
def _overflows_debits(c: Ctx) -> int:
    a, b, other = c.open(AF.NONE, AF.NONE, AF.NONE)
    c.created(c.t(a, b, 2**127, flags=F.PENDING))
    return c.transfers(c.t(a, other, 2**127))[0]


@transfer_case(S.OVERFLOWS_CREDITS)
def _overflows_credits(c: Ctx) -> int:
    a, b, other = c.open(AF.NONE, AF.NONE, AF.NONE)
    c.created(c.t(a, b, 2**127, flags=F.PENDING))
    return c.transfers(c.t(other, b, 2**127))[0]


@transfer_case(
    S.OVERFLOWS_TIMEOUT,
    real_skip="needs a cluster clock past 2126: timestamp + (2^32-1) s must pass 2^63-1 ns",
)
def _overflows_timeout(c: Ctx) -> int:
    """The longest timeout (2^32-1 s, ~136 years) overflows the 63-bit timestamp only once the
    clock is past ~4.93e18 ns; the twin's clock is moved there (about 101 years ahead)."""
    a, b = c.pair()
    c.engine.advance(3.2e9)
    return c.transfers(c.t(a, b, flags=F.PENDING, timeout=2**32 - 1))[0]


transfer_case(S.EXCEEDS_CREDITS)(
    lambda c: c.transfers(c.t(*c.open(AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.NONE)))[0]
)
transfer_case(S.EXCEEDS_DEBITS)(
    lambda c: c.transfers(c.t(*c.open(AF.NONE, AF.CREDITS_MUST_NOT_EXCEED_DEBITS)))[0]
)


# -- CreateTransferStatus: path V ------------------------------------------------------------


transfer_case(S.FLAGS_ARE_MUTUALLY_EXCLUSIVE)(
    lambda c: c.transfers(c.resolve(c.pending(), POST | F.PENDING))[0]
)
transfer_case(S.PENDING_ID_MUST_NOT_BE_ZERO)(
    lambda c: c.transfers(Transfer(id=c.fresh(), flags=POST))[0]
)
transfer_case(S.PENDING_ID_MUST_NOT_BE_INT_MAX)(
    lambda c: c.transfers(Transfer(id=c.fresh(), pending_id=U128_MAX, flags=VOID))[0]
)


@transfer_case(S.PENDING_ID_MUST_BE_DIFFERENT)
def _pending_id_must_be_different(c: Ctx) -> int:
    own = c.fresh()
    return c.transfers(Transfer(id=own, pending_id=own, flags=POST))[0]


transfer_case(S.PENDING_TRANSFER_NOT_FOUND)(
    lambda c: c.transfers(Transfer(id=c.fresh(), pending_id=c.fresh(), flags=VOID))[0]
)


@transfer_case(S.PENDING_TRANSFER_NOT_PENDING)
def _pending_transfer_not_pending(c: Ctx) -> int:
    plain = c.created(c.t(*c.pair()))
    return c.transfers(c.resolve(plain, POST))[0]


transfer_case(S.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID)(
    lambda c: c.transfers(c.resolve(c.pending(), POST, debit_account_id=c.pair()[0]))[0]
)
transfer_case(S.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID)(
    lambda c: c.transfers(c.resolve(c.pending(), POST, credit_account_id=c.pair()[0]))[0]
)
transfer_case(S.PENDING_TRANSFER_HAS_DIFFERENT_LEDGER)(
    lambda c: c.transfers(c.resolve(c.pending(), VOID, ledger=c.ledger + 1))[0]
)
transfer_case(S.PENDING_TRANSFER_HAS_DIFFERENT_CODE)(
    lambda c: c.transfers(c.resolve(c.pending(), VOID, code=2))[0]
)
transfer_case(S.EXCEEDS_PENDING_TRANSFER_AMOUNT)(
    lambda c: c.transfers(c.resolve(c.pending(10), POST, 11))[0]
)
transfer_case(S.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT)(
    lambda c: c.transfers(c.resolve(c.pending(10), VOID, 9))[0]
)


@transfer_case(S.PENDING_TRANSFER_ALREADY_POSTED)
def _pending_transfer_already_posted(c: Ctx) -> int:
    p = c.pending()
    c.created(c.resolve(p, POST, AMOUNT_MAX))
    return c.transfers(c.resolve(p, VOID))[0]


@transfer_case(S.PENDING_TRANSFER_ALREADY_VOIDED)
def _pending_transfer_already_voided(c: Ctx) -> int:
    p = c.pending()
    c.created(c.resolve(p, VOID))
    return c.transfers(c.resolve(p, POST, AMOUNT_MAX))[0]


@transfer_case(S.PENDING_TRANSFER_EXPIRED)
def _pending_transfer_expired(c: Ctx) -> int:
    p = c.pending(timeout=1)
    c.engine.advance(1.1)  # on a real cluster this is a real wait
    return c.transfers(c.resolve(p, POST, AMOUNT_MAX))[0]


# -- the tests -------------------------------------------------------------------------------


def test_every_create_account_status_has_a_scenario() -> None:
    missing = sorted(s.name for s in set(A) - set(ACCOUNT_CASES))
    assert not missing, f"CreateAccountStatus members without a scenario: {missing}"


def test_every_create_transfer_status_has_a_scenario() -> None:
    missing = sorted(s.name for s in set(S) - set(TRANSFER_CASES))
    assert not missing, f"CreateTransferStatus members without a scenario: {missing}"


def _run(engine, case: Case) -> int:
    if engine.real and case.real_skip:
        pytest.skip(case.real_skip)
    return case.run(Ctx(engine))


@pytest.mark.parametrize("status", list(A), ids=lambda s: s.name)
def test_create_accounts_status(engine, status) -> None:
    assert _run(engine, ACCOUNT_CASES[status]) == status


@pytest.mark.parametrize("status", list(S), ids=lambda s: s.name)
def test_create_transfers_status(engine, status) -> None:
    assert _run(engine, TRANSFER_CASES[status]) == status
