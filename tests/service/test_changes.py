"""TigerBeetle's change stream into the store (`LedgerService.apply_change_events`), each store.

The events are built from what the twin holds after each transfer, as `tigerbeetle amqp` reports
them. Recording is idempotent by the event's timestamp and type; a hold's expiry is recorded
once whichever of the change stream and the expiry pass comes first; a transfer written behind
the service's back is a foreign transfer; and an account without the engine's history flag gets
its history from the balances the stream recorded.
"""

from __future__ import annotations

import pytest
import tigerbeetle as tb

from tbledger.cdc import ChangeEventType
from tbledger.errors import HistoryNotKeptError, LimitExceededError
from tbledger.ids import format_id
from tbledger.limits import CDC_BATCH_EVENTS_MAX
from tbledger.model import EventKind
from tests.service.conftest import Ledger
from tests.service.helpers import DEPOSIT, deposit, request
from tests.support.book import open_service_book
from tests.support.changes import event_now

SECOND_NS = 1_000_000_000


async def test_each_event_is_recorded_once_with_both_balances(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    first = await deposit(service, book, book.alice, 100)
    events = [await event_now(ledger.client, first.id)]
    paid = await service.create_transfer(request(book.alice, book.bob, 30))
    events.append(await event_now(ledger.client, paid.id))

    # An event twice in one batch (redelivered meanwhile) is recorded once.
    report = await service.apply_change_events([*events, events[1]])
    assert (report.recorded, report.duplicates, report.foreign) == (2, 1, 0)
    assert report.timestamp_max == paid.timestamp
    # Delivered again (a redelivery, a replay from the start): nothing new.
    again = await service.apply_change_events([*events, events[0]])
    assert (again.recorded, again.duplicates) == (0, 3)

    stored = await ledger.store.change_balances(book.alice, [e.timestamp for e in events])
    alice = events[1].debit_account
    assert stored[paid.timestamp].debits_posted == alice.debits_posted == 30
    assert stored[paid.timestamp].credits_posted == alice.credits_posted == 100
    assert stored[first.timestamp].credits_posted == 100
    assert await service.latest_change_timestamp() == paid.timestamp
    # The service's own transfers are not foreign: no audit event but their own.
    audit = await service.get_transfer_audit(paid.id)
    assert EventKind.FOREIGN_TRANSFER not in [e.kind for e in audit]


async def test_a_transfer_no_intent_asked_for_is_a_foreign_transfer(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    # Another client writes to the cluster directly.
    (result,) = await ledger.client.create_transfers(
        [
            tb.Transfer(
                id=0xF0F0,
                debit_account_id=book.alice,
                credit_account_id=book.bob,
                amount=7,
                ledger=1,
                code=1,
            )
        ]
    )
    assert result.status == tb.CreateTransferStatus.CREATED
    event = await event_now(ledger.client, 0xF0F0)
    report = await service.apply_change_events([event])
    assert (report.recorded, report.foreign) == (1, 1)
    assert (await service.apply_change_events([event])).foreign == 0

    (audit,) = await service.get_transfer_audit(0xF0F0)
    assert audit.kind is EventKind.FOREIGN_TRANSFER
    assert audit.status == "single_phase"
    assert audit.engine_timestamp == event.timestamp
    assert audit.detail["amount"] == "7"
    assert audit.detail["debit_account_id"] == format_id(book.alice)


async def test_an_expiry_is_recorded_once_as_the_engine_releases_the_hold(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 30, timeout=1))
    assert hold.timestamp is not None
    ledger.clock.advance(2)
    released_at = ledger.clock()
    expired = await event_now(
        ledger.client, hold.id, type_=ChangeEventType.TWO_PHASE_EXPIRED, timestamp=released_at
    )
    report = await service.apply_change_events([expired])
    assert (report.recorded, report.expired, report.foreign) == (1, 1, 0)
    audit = await service.get_transfer_audit(hold.id)
    assert [e.kind for e in audit] == [EventKind.SUBMITTED, EventKind.PENDING, EventKind.EXPIRED]
    # The instant the hold expired, as every other path records it; decided at the release.
    assert audit[-1].engine_timestamp == hold.timestamp + SECOND_NS
    assert audit[-1].detail["engine_now"] == str(released_at)
    # The expiry pass, and the stream delivered again, find it recorded.
    assert await service.expire_holds() == 0
    assert (await service.apply_change_events([expired])).expired == 0
    assert len(await service.get_transfer_audit(hold.id)) == 3


async def test_an_expiry_the_expiry_pass_recorded_first_is_not_repeated(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 30, timeout=1))
    ledger.clock.advance(2)
    assert await service.expire_holds() == 1
    expired = await event_now(
        ledger.client, hold.id, type_=ChangeEventType.TWO_PHASE_EXPIRED, timestamp=ledger.clock()
    )
    report = await service.apply_change_events([expired])
    assert (report.recorded, report.expired) == (1, 0)
    kinds = [e.kind for e in await service.get_transfer_audit(hold.id)]
    assert kinds.count(EventKind.EXPIRED) == 1


async def test_history_without_the_flag_comes_from_the_change_stream(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    anchor = await service.create_account(owner_id=None, account_type="anchor", ledger=1)
    (engine,) = await ledger.client.lookup_accounts([anchor.id])
    assert not engine.flags & tb.AccountFlags.HISTORY
    first = await service.create_transfer(request(book.treasury, anchor.id, 10, code=DEPOSIT))
    await service.apply_change_events([await event_now(ledger.client, first.id)])
    ledger.clock.advance(1)
    second = await service.create_transfer(request(book.treasury, anchor.id, 5, code=DEPOSIT))
    # The stream has not reported the second transfer yet: the history is not complete.
    with pytest.raises(HistoryNotKeptError):
        await service.balance_history(anchor.id)
    await service.apply_change_events([await event_now(ledger.client, second.id)])

    history = await service.balance_history(anchor.id)
    assert [p.transfer.id if p.transfer else None for p in history.points] == [
        None,
        first.id,
        second.id,
    ]
    assert [p.balance.credits_posted for p in history.points] == [0, 10, 15]
    between = await service.balance_as_of(anchor.id, as_of=second.timestamp - 1)
    assert between.point is not None and between.point.balance.credits_posted == 10
    statement = await service.statement(anchor.id, start=1, end=second.timestamp + 1)
    assert [line.point.transfer for line in statement.lines] == [
        p.transfer for p in history.points[1:]
    ]
    assert statement.closing.posted - statement.opening.posted == sum(
        line.change for line in statement.lines
    )


async def test_a_batch_is_bounded(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    first = await deposit(service, book, book.alice, 1)
    event = await event_now(ledger.client, first.id)
    with pytest.raises(LimitExceededError):
        await service.apply_change_events([event] * (CDC_BATCH_EVENTS_MAX + 1))
