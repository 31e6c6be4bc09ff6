"""Imported events: objects that carry their own historical timestamp (reference §8).

The first event of a batch decides whether the batch is imported. An imported timestamp must be in
[1, 2^63-1] and strictly before the batch's last slot (not in the engine's future); these checks
precede `exists`. It must not regress: above every existing object of its kind and equal to no
object of the other kind (checked last, after every semantic check). An imported transfer must
postdate both of its accounts, an imported pending transfer cannot have a timeout, and the
`exists` comparison ignores the timestamp.

These cases run unchanged on a shared real cluster: each picks its timestamps just above the
newest object timestamp in the whole database (read with a reversed, unfiltered query). That is
safe because normal traffic stamps objects with the clock, and every later request's base
timestamp is above every earlier object's, so `high_water + k` is always below the next batch's
last slot for the small `k` used here.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from tigerbeetle import (
    AMOUNT_MAX,
    Account,
    AccountFlags,
    CreateAccountStatus,
    CreateTransferStatus,
    QueryFilterFlags,
    Transfer,
    TransferFlags,
)

from tests.support.filters import query_filter

A = CreateAccountStatus
S = CreateTransferStatus
AF = AccountFlags
F = TransferFlags
TIMESTAMP_MAX = 2**63 - 1


def newest_timestamp(client) -> int:
    """The largest timestamp of any account or transfer in the database (0 if empty)."""
    newest = query_filter(limit=1, flags=QueryFilterFlags.REVERSED)
    found = [*client.query_accounts(newest), *client.query_transfers(newest)]
    return max((o.timestamp for o in found), default=0)


class Importer:
    """Builds imported accounts/transfers on a fresh ledger with timestamps `base + k`."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.client = engine.client
        self.ledger = engine.ledger()
        self.base = newest_timestamp(self.client)

    def account(self, k: int, **fields) -> Account:
        base = {"id": self.engine.ids(1)[0], "ledger": self.ledger, "code": 1}
        base.update(fields)
        flags = AF.IMPORTED | base.pop("flags", AF.NONE)
        return Account(timestamp=self.base + k, flags=flags, **base)

    def transfer(self, dr: int, cr: int, k: int, amount: int = 1, **fields) -> Transfer:
        base = {"id": self.engine.ids(1)[0], "ledger": self.ledger, "code": 1}
        base.update(fields)
        flags = F.IMPORTED | base.pop("flags", F.NONE)
        return Transfer(
            debit_account_id=dr,
            credit_account_id=cr,
            amount=amount,
            timestamp=self.base + k,
            flags=flags,
            **base,
        )

    def create_accounts(self, *accounts: Account) -> list[A]:
        return [r.status for r in self.client.create_accounts(list(accounts))]

    def create_transfers(self, *transfers: Transfer) -> list[S]:
        return [r.status for r in self.client.create_transfers(list(transfers))]

    def accounts_at(self, *ks: int) -> list[int]:
        """Import one account per offset `k` (ascending) and return their ids."""
        accounts = [self.account(k) for k in ks]
        assert self.create_accounts(*accounts) == [A.CREATED] * len(ks)
        return [a.id for a in accounts]


@pytest.fixture
def imp(engine) -> Importer:
    return Importer(engine)


# -- created objects keep the user's timestamp -----------------------------------------------


def test_imported_account_keeps_its_timestamp(imp) -> None:
    account = imp.account(1)
    (result,) = imp.client.create_accounts([account])
    assert (result.status, result.timestamp) == (A.CREATED, account.timestamp)
    assert imp.client.lookup_accounts([account.id]) == [account]


def test_imported_transfer_keeps_its_timestamp_and_moves_money(imp) -> None:
    dr, cr = imp.accounts_at(1, 2)
    transfer = imp.transfer(dr, cr, 3, amount=5)
    (result,) = imp.client.create_transfers([transfer])
    assert (result.status, result.timestamp) == (S.CREATED, transfer.timestamp)
    assert imp.client.lookup_transfers([transfer.id]) == [transfer]
    (debit,) = imp.client.lookup_accounts([dr])
    assert debit.debits_posted == 5


# -- the first event decides -----------------------------------------------------------------


def test_first_account_decides_the_batch_is_imported(imp) -> None:
    plain = Account(id=imp.engine.ids(1)[0], ledger=imp.ledger, code=1)
    assert imp.create_accounts(imp.account(1), plain) == [A.CREATED, A.IMPORTED_EVENT_EXPECTED]


def test_first_account_decides_the_batch_is_not_imported(imp) -> None:
    plain = Account(id=imp.engine.ids(1)[0], ledger=imp.ledger, code=1)
    assert imp.create_accounts(plain, imp.account(1)) == [A.CREATED, A.IMPORTED_EVENT_NOT_EXPECTED]


def test_first_transfer_decides(imp) -> None:
    dr, cr = imp.accounts_at(1, 2)
    plain = Transfer(
        id=imp.engine.ids(1)[0], debit_account_id=dr, credit_account_id=cr, ledger=imp.ledger,
        code=1, amount=1,
    )  # fmt: skip
    assert imp.create_transfers(imp.transfer(dr, cr, 3), plain) == [
        S.CREATED,
        S.IMPORTED_EVENT_EXPECTED,
    ]
    assert imp.create_transfers(
        replace(plain, id=imp.engine.ids(1)[0]), imp.transfer(dr, cr, 4)
    ) == [
        S.CREATED,
        S.IMPORTED_EVENT_NOT_EXPECTED,
    ]


# -- range and "not in the future" -------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "account_status", "transfer_status"),
    [
        (0, A.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE, S.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE),
        (
            TIMESTAMP_MAX + 1,
            A.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE,
            S.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE,
        ),
        (
            2**64 - 1,
            A.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE,
            S.IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE,
        ),
        (
            TIMESTAMP_MAX,
            A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE,
            S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE,
        ),
        (
            "an_hour_from_now",
            A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE,
            S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE,
        ),
    ],
    ids=["zero", "above_2_63", "u64_max", "timestamp_max", "an_hour_from_now"],
)
def test_timestamp_range_and_future(imp, timestamp, account_status, transfer_status) -> None:
    if timestamp == "an_hour_from_now":
        timestamp = time.time_ns() + 3600 * 1_000_000_000
    dr, cr = imp.accounts_at(1, 2)
    account = replace(imp.account(3), timestamp=timestamp)
    assert imp.create_accounts(account) == [account_status]
    transfer = replace(imp.transfer(dr, cr, 3), timestamp=timestamp)
    assert imp.create_transfers(transfer) == [transfer_status]


def test_future_timestamp_beats_exists(imp) -> None:
    # Range and future checks come before the idempotency check.
    (account_id,) = imp.accounts_at(1)
    (stored,) = imp.client.lookup_accounts([account_id])
    retry = replace(stored, timestamp=TIMESTAMP_MAX)
    assert imp.create_accounts(retry) == [A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE]


# -- must not regress ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS),
        (2, A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS),
        (3, A.CREATED),
    ],
    ids=["older", "equal", "newer"],
)
def test_account_must_not_regress_below_the_newest_account(imp, k, expected) -> None:
    imp.accounts_at(2)
    assert imp.create_accounts(imp.account(k)) == [expected]


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (3, S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS),
        (4, S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS),
        (5, S.CREATED),
    ],
    ids=["older", "equal", "newer"],
)
def test_transfer_must_not_regress_below_the_newest_transfer(imp, k, expected) -> None:
    dr, cr = imp.accounts_at(1, 2)
    assert imp.create_transfers(imp.transfer(dr, cr, 4)) == [S.CREATED]
    assert imp.create_transfers(imp.transfer(dr, cr, k)) == [expected]


def test_account_must_not_share_a_transfers_timestamp(engine, imp) -> None:
    # A normal transfer is the newest object; an imported account may be older than it (the
    # rule is per kind) but not at exactly its timestamp.
    dr, cr = engine.ids(2)
    imp.client.create_accounts([Account(id=i, ledger=imp.ledger, code=1) for i in (dr, cr)])
    transfer = Transfer(
        id=engine.ids(1)[0], debit_account_id=dr, credit_account_id=cr, amount=1,
        ledger=imp.ledger, code=1,
    )  # fmt: skip
    (result,) = imp.client.create_transfers([transfer])
    assert result.status == S.CREATED
    at_transfer = replace(imp.account(1), timestamp=result.timestamp)
    assert imp.create_accounts(at_transfer) == [A.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS]
    just_before = replace(at_transfer, timestamp=result.timestamp - 1)
    assert imp.create_accounts(just_before) == [A.CREATED]


def test_transfer_must_not_share_an_accounts_timestamp(imp) -> None:
    dr, cr, _ = imp.accounts_at(1, 2, 3)
    assert imp.create_transfers(imp.transfer(dr, cr, 3)) == [
        S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS
    ]


def test_transfer_may_be_older_than_the_newest_account(engine, imp) -> None:
    dr, cr = imp.accounts_at(1, 2)
    newer = Account(id=engine.ids(1)[0], ledger=imp.ledger, code=1)  # stamped "now"
    assert imp.client.create_accounts([newer])[0].status == A.CREATED
    assert imp.create_transfers(imp.transfer(dr, cr, 3)) == [S.CREATED]


def test_regress_is_checked_after_semantic_checks(imp) -> None:
    imp.accounts_at(2)
    older_without_ledger = imp.account(1, ledger=0)
    assert imp.create_accounts(older_without_ledger) == [A.LEDGER_MUST_NOT_BE_ZERO]


# -- transfer-specific rules -----------------------------------------------------------------


def test_transfer_must_postdate_its_debit_account(imp) -> None:
    older, newer = imp.accounts_at(1, 3)
    assert imp.create_transfers(imp.transfer(newer, older, 2)) == [
        S.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_DEBIT_ACCOUNT
    ]


def test_transfer_must_postdate_its_credit_account(imp) -> None:
    older, newer = imp.accounts_at(1, 3)
    assert imp.create_transfers(imp.transfer(older, newer, 2)) == [
        S.IMPORTED_EVENT_TIMESTAMP_MUST_POSTDATE_CREDIT_ACCOUNT
    ]


def test_imported_pending_transfer_must_not_have_a_timeout(imp) -> None:
    dr, cr = imp.accounts_at(1, 2)
    with_timeout = imp.transfer(dr, cr, 3, flags=F.PENDING, timeout=1)
    assert imp.create_transfers(with_timeout) == [S.IMPORTED_EVENT_TIMEOUT_MUST_BE_ZERO]


def test_imported_pending_can_be_posted_by_an_imported_post(imp) -> None:
    dr, cr = imp.accounts_at(1, 2)
    pending = imp.transfer(dr, cr, 3, amount=10, flags=F.PENDING)
    post = Transfer(
        id=imp.engine.ids(1)[0], pending_id=pending.id, amount=AMOUNT_MAX,
        flags=F.IMPORTED | F.POST_PENDING_TRANSFER, timestamp=imp.base + 4,
    )  # fmt: skip
    assert imp.create_transfers(pending, post) == [S.CREATED, S.CREATED]
    (debit,) = imp.client.lookup_accounts([dr])
    assert (debit.debits_pending, debit.debits_posted) == (0, 10)


def test_imported_post_must_not_regress(imp) -> None:
    dr, cr = imp.accounts_at(1, 2)
    pending = imp.transfer(dr, cr, 4, amount=10, flags=F.PENDING)
    assert imp.create_transfers(pending) == [S.CREATED]
    post = Transfer(
        id=imp.engine.ids(1)[0], pending_id=pending.id, amount=AMOUNT_MAX,
        flags=F.IMPORTED | F.POST_PENDING_TRANSFER, timestamp=imp.base + 3,
    )  # fmt: skip
    assert imp.create_transfers(post) == [S.IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS]


# -- exists ignores the timestamp ------------------------------------------------------------


def test_account_exists_ignores_the_timestamp(imp) -> None:
    account = imp.account(1)
    assert imp.create_accounts(account) == [A.CREATED]
    (result,) = imp.client.create_accounts([replace(account, timestamp=1)])
    assert (result.status, result.timestamp) == (A.EXISTS, account.timestamp)


def test_transfer_exists_ignores_the_timestamp(imp) -> None:
    dr, cr = imp.accounts_at(1, 2)
    transfer = imp.transfer(dr, cr, 3)
    assert imp.create_transfers(transfer) == [S.CREATED]
    (result,) = imp.client.create_transfers([replace(transfer, timestamp=1)])
    assert (result.status, result.timestamp) == (S.EXISTS, transfer.timestamp)


# -- imports as chains -----------------------------------------------------------------------


def test_failed_import_chain_can_be_resubmitted_with_the_same_timestamps(imp) -> None:
    # A rolled-back chain leaves the high-water timestamps where they were.
    chain = [
        imp.account(1, flags=AF.LINKED),
        imp.account(2, flags=AF.LINKED),
        imp.account(3, code=0),
    ]
    assert imp.create_accounts(*chain) == [
        A.LINKED_EVENT_FAILED,
        A.LINKED_EVENT_FAILED,
        A.CODE_MUST_NOT_BE_ZERO,
    ]
    fixed = [*chain[:2], replace(chain[2], code=1)]
    assert imp.create_accounts(*fixed) == [A.CREATED] * 3
