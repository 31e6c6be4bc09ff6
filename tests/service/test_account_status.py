"""Account status: frozen and closed are enforced by the engine itself (DESIGN §4).

Freezing books a zero-amount pending transfer with ``closing_debit`` and no timeout, which sets
the engine account's ``closed`` flag: every transfer touching the account is then refused by the
engine (``*_account_already_closed`` -> `AccountFrozenError`), race-free. Unfreezing voids that
transfer, which reopens the account. Closing sweeps the whole balance to `sweep_to` with a
balancing transfer linked to a closing transfer that is never voided, so it is all or nothing.
Every change is an ``account_status_changed`` event in the audit log and to listeners.
"""

from __future__ import annotations

import pytest
import tigerbeetle as tb

from tbledger.errors import (
    AccountFrozenError,
    AccountNotFoundError,
    TransferFailedError,
    ValidationError,
)
from tbledger.events import LedgerEvent
from tbledger.ids import format_id
from tbledger.service import LedgerService
from tbledger.store import AccountStatus, AuditEvent, EventKind
from tests.service.conftest import Ledger
from tests.service.helpers import LEDGER, Recorder, deposit, engine_account, request
from tests.support.book import open_service_book

CLOSED = tb.AccountFlags.CLOSED


async def status_events(ledger: Ledger, account_id: int) -> list[AuditEvent]:
    events = await ledger.store.events_since(0, 1000)
    return [
        e
        for e in events
        if e.account_id == account_id and e.kind is EventKind.ACCOUNT_STATUS_CHANGED
    ]


async def test_freezing_closes_the_engine_account_and_records_the_closing_transfer(
    ledger: Ledger,
) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    info = await service.update_account_status(book.alice, "frozen")
    assert info.status is AccountStatus.FROZEN
    assert info.record.freeze_transfer_id is not None
    account = await engine_account(ledger.client, book.alice)
    assert account.flags & CLOSED
    freeze = await service.get_transfer(info.record.freeze_transfer_id)
    assert freeze is not None
    assert freeze.flags & tb.TransferFlags.PENDING
    assert freeze.flags & tb.TransferFlags.CLOSING_DEBIT
    assert (freeze.amount, freeze.timeout, freeze.debit_account_id) == (0, 0, book.alice)
    # The money stays where it was.
    balance = await service.get_balance(book.alice)
    assert (balance.posted, balance.available, balance.closed) == (100, 100, True)


async def test_a_frozen_account_is_refused_by_the_engine_in_both_directions(
    ledger: Ledger,
) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    await service.update_account_status(book.alice, "frozen")
    with pytest.raises(AccountFrozenError) as outgoing:
        await service.create_transfer(request(book.alice, book.bob, 10))
    assert outgoing.value.code == "account_frozen"
    with pytest.raises(AccountFrozenError) as incoming:
        await service.create_transfer(request(book.treasury, book.alice, 10))
    assert incoming.value.code == "account_frozen"
    with pytest.raises(AccountFrozenError):
        await service.create_pending_transfer(request(book.alice, book.bob, 10))
    # The refusal is the engine's, and it is in the audit trail.
    audit = await service.get_transfer_audit(outgoing.value.details["transfer_id"])  # type: ignore[arg-type]
    assert [e.kind for e in audit] == [EventKind.SUBMITTED, EventKind.FAILED]
    assert audit[-1].status == "debit_account_already_closed"
    assert (await service.get_balance(book.alice)).posted == 100


async def test_unfreezing_voids_the_freeze_and_transfers_succeed_again(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    frozen = await service.update_account_status(book.alice, "frozen")
    freeze_id = frozen.record.freeze_transfer_id
    assert freeze_id is not None
    active = await service.update_account_status(book.alice, "active")
    assert active.status is AccountStatus.ACTIVE
    assert active.record.freeze_transfer_id is None
    assert not (await engine_account(ledger.client, book.alice)).flags & CLOSED
    assert [e.kind for e in await service.get_transfer_audit(freeze_id)][-1] is EventKind.VOIDED
    result = await service.create_transfer(request(book.alice, book.bob, 10))
    assert result.ok
    assert (await service.get_balance(book.bob)).posted == 10


async def test_an_account_can_be_frozen_again_after_unfreezing(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    first = await service.update_account_status(book.alice, "frozen")
    await service.update_account_status(book.alice, "active")
    second = await service.update_account_status(book.alice, "frozen")
    assert second.record.freeze_transfer_id not in (None, first.record.freeze_transfer_id)
    assert (await engine_account(ledger.client, book.alice)).flags & CLOSED


async def test_setting_the_current_status_changes_nothing(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    requests_before = service.batcher.stats.requests
    info = await service.update_account_status(book.alice, "active")
    assert info.status is AccountStatus.ACTIVE
    assert service.batcher.stats.requests == requests_before
    assert await status_events(ledger, book.alice) == []


async def test_closing_sweeps_the_balance_to_sweep_to_and_closes_for_good(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 120)
    info = await service.update_account_status(book.alice, "closed", sweep_to=book.bob)
    assert info.status is AccountStatus.CLOSED
    alice, bob = await service.get_balances([book.alice, book.bob])
    assert (alice.posted, alice.available, alice.closed) == (0, 0, True)
    assert bob.posted == 120
    with pytest.raises(AccountFrozenError):
        await service.create_transfer(request(book.treasury, book.alice, 1))
    with pytest.raises(ValidationError, match="closed"):
        await service.update_account_status(book.alice, "active")
    with pytest.raises(ValidationError):
        await service.update_account_status(book.alice, "frozen")
    assert (await service.get_account(book.alice)).status is AccountStatus.CLOSED
    assert (await engine_account(ledger.client, book.alice)).flags & CLOSED


async def test_closing_sweeps_to_the_ledgers_control_account_by_default(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 70)
    await service.update_account_status(book.alice, "closed")
    control = await ledger.store.get_account_by_name(f"system:control:{LEDGER}")
    assert control is not None
    assert control.account_type == "control"
    assert (await service.get_balance(book.alice)).posted == 0
    account = await engine_account(ledger.client, control.id)
    assert account.credits_posted == 70


async def test_closing_a_debit_normal_account_sweeps_its_debit_balance(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 55)
    await service.update_account_status(book.treasury, "closed")
    treasury = await service.get_balance(book.treasury)
    assert (treasury.posted, treasury.closed) == (0, True)
    assert (await service.get_balance(book.alice)).posted == 55


async def test_closing_is_atomic_when_the_sweep_is_refused(ledger: Ledger) -> None:
    # Bob's wallet may not be debited past its credits, so it cannot receive a debit-normal sweep:
    # the chain fails as a whole and the treasury stays open with its balance.
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 55)
    with pytest.raises(TransferFailedError) as caught:
        await service.update_account_status(book.treasury, "closed", sweep_to=book.bob)
    assert caught.value.code == "exceeds_credits"
    treasury = await service.get_balance(book.treasury)
    assert (treasury.posted, treasury.closed) == (55, False)
    assert (await service.get_account(book.treasury)).status is AccountStatus.ACTIVE
    assert (await service.get_balance(book.bob)).posted == 0
    await deposit(service, book, book.bob, 1)


async def test_closing_a_frozen_account_sweeps_it_and_keeps_it_closed(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 30)
    frozen = await service.update_account_status(book.alice, "frozen")
    info = await service.update_account_status(book.alice, "closed", sweep_to=book.bob)
    assert info.status is AccountStatus.CLOSED
    assert info.record.freeze_transfer_id != frozen.record.freeze_transfer_id
    alice, bob = await service.get_balances([book.alice, book.bob])
    assert (alice.posted, alice.closed, bob.posted) == (0, True, 30)
    assert frozen.record.freeze_transfer_id is not None
    freeze_audit = await service.get_transfer_audit(frozen.record.freeze_transfer_id)
    assert freeze_audit[-1].kind is EventKind.VOIDED
    with pytest.raises(AccountFrozenError):
        await service.create_transfer(request(book.bob, book.alice, 1))


async def test_closing_a_frozen_account_records_one_change_frozen_to_closed(
    ledger: Ledger,
) -> None:
    service = ledger.service
    book = await open_service_book(service)
    seen = Recorder()
    await service.update_account_status(book.alice, "frozen")
    service.on("account_status_changed", seen)
    await service.update_account_status(book.alice, "closed", sweep_to=book.bob)
    statuses = [e.status for e in await status_events(ledger, book.alice)]
    assert statuses == ["frozen", "closed"]
    assert [e.data for e in seen.events] == [{"status": "closed", "previous": "frozen"}]


async def test_status_changes_are_audit_events_and_reach_listeners(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    seen: list[LedgerEvent] = []
    service.on("account_status_changed", seen.append)
    frozen = await service.update_account_status(book.alice, "frozen")
    await service.update_account_status(book.alice, "active")
    events = await status_events(ledger, book.alice)
    assert [e.status for e in events] == ["frozen", "active"]
    assert events[0].detail["freeze_transfer_id"] is not None
    assert frozen.record.freeze_transfer_id is not None
    assert events[0].detail["freeze_transfer_id"] == format_id(frozen.record.freeze_transfer_id)
    assert events[1].detail["freeze_transfer_id"] is None
    assert [(e.subject_id, e.data) for e in seen] == [
        (book.alice, {"status": "frozen", "previous": "active"}),
        (book.alice, {"status": "active", "previous": "frozen"}),
    ]


async def test_update_account_status_of_an_unknown_account_raises(service: LedgerService) -> None:
    with pytest.raises(AccountNotFoundError):
        await service.update_account_status(tb.id(), "frozen")


async def test_an_unknown_status_is_a_validation_error(service: LedgerService) -> None:
    book = await open_service_book(service)
    with pytest.raises(ValidationError):
        await service.update_account_status(book.alice, "suspended")
