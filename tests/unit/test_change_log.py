"""The embedded state machine's change log: what TigerBeetle's ``get_change_events`` reports.

One event per created transfer (single-phase, pending, post, void, imported) and per expiry, in
timestamp order, with both accounts' balances and flags as of right after the event; the amount is
what moved; a rolled-back chain leaves nothing; a journal replay rebuilds the same log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tigerbeetle import (
    Account,
    AccountFlags,
    CreateAccountStatus,
    CreateTransferStatus,
    Transfer,
    TransferFlags,
)

from tbledger.embedded import ChangeRecord, ClientSync, ManualClock, StateMachine
from tbledger.limits import EXPIRY_PULSE_EVENTS_MAX

SINGLE, PENDING, POSTED, VOIDED, EXPIRED = range(5)
T0 = 1_700_000_000_000_000_000
CLOSED = int(AccountFlags.CLOSED)


def account(id_: int, flags: AccountFlags = AccountFlags.NONE) -> Account:
    return Account(id=id_, ledger=1, code=10, flags=flags, user_data_64=id_ * 7)


def transfer(id_: int, dr: int = 1, cr: int = 2, amount: int = 10, **kw: object) -> Transfer:
    fields: dict[str, object] = {"ledger": 1, "code": 5}
    fields.update(kw)
    return Transfer(id=id_, debit_account_id=dr, credit_account_id=cr, amount=amount, **fields)  # type: ignore[arg-type]


def created(results: list[Any]) -> bool:
    return all(
        r.status in (CreateAccountStatus.CREATED, CreateTransferStatus.CREATED) for r in results
    )


def client(clock: ManualClock, path: Path | None = None) -> ClientSync:
    return ClientSync(cluster_id=0, path=path, clock=clock)


def events(c: ClientSync, timestamp_min: int = 0, limit: int = 8189) -> list[ChangeRecord]:
    return c.replica.change_events(timestamp_min, limit)


def balances(e: ChangeRecord) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (
        (
            e.debit_account_debits_pending,
            e.debit_account_debits_posted,
            e.debit_account_credits_pending,
            e.debit_account_credits_posted,
        ),
        (
            e.credit_account_debits_pending,
            e.credit_account_debits_posted,
            e.credit_account_credits_pending,
            e.credit_account_credits_posted,
        ),
    )


def test_each_event_type_with_balances_as_of_the_event() -> None:
    clock = ManualClock(T0)
    with client(clock) as c:
        assert created(c.create_accounts([account(1), account(2)]))
        assert created(c.create_transfers([transfer(10, amount=5)]))
        assert created(c.create_transfers([transfer(11, amount=30, flags=TransferFlags.PENDING)]))
        assert created(
            c.create_transfers(
                [transfer(12, 0, 0, 20, pending_id=11, flags=TransferFlags.POST_PENDING_TRANSFER)]
            )
        )
        assert created(c.create_transfers([transfer(13, amount=7, flags=TransferFlags.PENDING)]))
        assert created(
            c.create_transfers(
                [transfer(14, 0, 0, 0, pending_id=13, flags=TransferFlags.VOID_PENDING_TRANSFER)]
            )
        )
        log = events(c)
        assert [(e.type, e.transfer_id, e.transfer_amount) for e in log] == [
            (SINGLE, 10, 5),
            (PENDING, 11, 30),
            (POSTED, 12, 20),  # the amount posted, not the pending amount
            (PENDING, 13, 7),
            (VOIDED, 14, 7),
        ]
        assert [balances(e) for e in log] == [
            ((0, 5, 0, 0), (0, 0, 0, 5)),
            ((30, 5, 0, 0), (0, 0, 30, 5)),
            ((0, 25, 0, 0), (0, 0, 0, 25)),
            ((7, 25, 0, 0), (0, 0, 7, 25)),
            ((0, 25, 0, 0), (0, 0, 0, 25)),
        ]
        transfers = {t.id: t for t in c.lookup_transfers([10, 11, 12, 13, 14])}
        assert [e.timestamp for e in log] == [transfers[e.transfer_id].timestamp for e in log]
        assert log[2].transfer_pending_id == 11
        assert log[0].debit_account_user_data_64 == 7
        assert log[0].credit_account_user_data_64 == 14
        # Paging: from a timestamp on, with a limit.
        assert events(c, log[2].timestamp, 2) == log[2:4]
        assert events(c, log[-1].timestamp + 1) == []


def test_balancing_transfer_reports_the_clamped_amount() -> None:
    clock = ManualClock(T0)
    with client(clock) as c:
        assert created(
            c.create_accounts(
                [account(1, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS), account(2), account(3)]
            )
        )
        assert created(c.create_transfers([transfer(10, dr=3, cr=1, amount=40)]))
        assert created(
            c.create_transfers([transfer(11, amount=100, flags=TransferFlags.BALANCING_DEBIT)])
        )
        (last,) = events(c)[-1:]
        assert (last.type, last.transfer_amount) == (SINGLE, 40)
        assert balances(last)[0] == (0, 40, 0, 40)


def test_closing_transfer_flags_the_account_closed_until_voided() -> None:
    clock = ManualClock(T0)
    with client(clock) as c:
        assert created(c.create_accounts([account(1), account(2)]))
        closing = TransferFlags.PENDING | TransferFlags.CLOSING_DEBIT
        assert created(c.create_transfers([transfer(10, amount=0, flags=closing)]))
        assert created(
            c.create_transfers(
                [transfer(11, 0, 0, 0, pending_id=10, flags=TransferFlags.VOID_PENDING_TRANSFER)]
            )
        )
        pending, voided = events(c)
        assert pending.debit_account_flags & CLOSED
        assert not pending.credit_account_flags & CLOSED
        assert not voided.debit_account_flags & CLOSED


def test_a_failed_linked_chain_leaves_no_event() -> None:
    clock = ManualClock(T0)
    with client(clock) as c:
        assert created(c.create_accounts([account(1), account(2)]))
        results = c.create_transfers(
            [
                transfer(10, flags=TransferFlags.LINKED),
                transfer(11, flags=TransferFlags.LINKED | TransferFlags.PENDING),
                transfer(12, dr=1, cr=99),  # no such account: the chain fails
                transfer(13, amount=3),
            ]
        )
        assert [r.status.name for r in results] == [
            "LINKED_EVENT_FAILED",
            "LINKED_EVENT_FAILED",
            "CREDIT_ACCOUNT_NOT_FOUND",
            "CREATED",
        ]
        assert [(e.transfer_id, e.transfer_amount) for e in events(c)] == [(13, 3)]
        assert balances(events(c)[0]) == ((0, 3, 0, 0), (0, 0, 0, 3))


def test_an_expiry_is_an_event_at_the_instant_the_engine_released_the_hold() -> None:
    clock = ManualClock(T0)
    with client(clock) as c:
        assert created(c.create_accounts([account(1), account(2, AccountFlags.HISTORY)]))
        flags = TransferFlags.PENDING | TransferFlags.CLOSING_CREDIT
        assert created(c.create_transfers([transfer(10, amount=9, timeout=1, flags=flags)]))
        (pending,) = events(c)
        assert pending.credit_account_flags & CLOSED
        clock.advance(ns=1_001_000_000)
        # A read performs the due pulse: the expiry shows up without any write.
        pending_again, expired = events(c)
        assert pending_again == pending
        assert (expired.type, expired.transfer_id, expired.transfer_amount) == (EXPIRED, 10, 9)
        assert expired.transfer_timestamp == pending.timestamp
        assert expired.transfer_flags == int(flags)
        # TigerBeetle's pulse reserves a batch of slots and expiries take the last ones.
        assert expired.timestamp == T0 + 1_001_000_000 + EXPIRY_PULSE_EVENTS_MAX
        assert expired.timestamp >= pending.timestamp + 1_000_000_000
        assert balances(expired) == ((0, 0, 0, 0), (0, 0, 0, 0))
        assert not expired.credit_account_flags & CLOSED
        # Later objects come after the pulse's range.
        assert created(c.create_transfers([transfer(11)]))
        assert events(c)[-1].timestamp > expired.timestamp


def test_imported_transfers_are_events_in_timestamp_order() -> None:
    sm = StateMachine()
    acc = (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 10, int(AccountFlags.IMPORTED), 0)
    sm.create_accounts([(1, *acc[1:12], 100), (2, *acc[1:12], 200)], T0)
    imported = int(TransferFlags.IMPORTED)
    sm.create_transfers([(10, 1, 2, 4, 0, 0, 0, 0, 0, 1, 5, imported, 300)], T0 + 10)
    (e,) = sm.change_events(0, 10)
    assert (e.timestamp, e.type, e.transfer_amount) == (300, SINGLE, 4)
    assert (e.debit_account_timestamp, e.credit_account_timestamp) == (100, 200)


def test_the_log_survives_a_journal_replay(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    path = tmp_path / "ledger.tbj"
    with client(clock, path) as c:
        assert created(c.create_accounts([account(1), account(2)]))
        assert created(
            c.create_transfers([transfer(10, amount=5, timeout=1, flags=TransferFlags.PENDING)])
        )
        assert created(c.create_transfers([transfer(11, amount=6)]))
        clock.advance(2)
        before = events(c)
    assert [e.type for e in before] == [PENDING, SINGLE, EXPIRED]
    with client(clock, path) as c:
        assert events(c) == before
