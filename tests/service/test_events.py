"""Events: listeners hear about every write after it is durable; the audit log is the durable tail.

Listeners (plain functions or coroutines) subscribe with `service.on(name, listener)` and are
called after the outcome is in the engine and in the audit log. A listener that raises is logged
and breaks neither the write nor the other listeners. `service.events(since=cursor)` yields the
audit log itself, in `seq` order, and resumes after any cursor: what a consumer that must not
miss anything reads.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tbledger.errors import InsufficientBalanceError
from tbledger.events import LedgerEvent, LedgerEventName
from tbledger.service import LedgerService
from tbledger.store import AuditEvent, EventKind
from tests.service.conftest import Ledger
from tests.service.helpers import LEDGER, Recorder, deposit, request, wait_until
from tests.support.book import open_service_book

ALL = [name.value for name in LedgerEventName]


async def run_every_kind_of_write(ledger: Ledger) -> dict[str, int]:
    """One write of each kind; returns the subject id of each event name."""
    service = ledger.service
    book = await open_service_book(service)
    posted = await deposit(service, book, book.alice, 100)
    pending = await service.create_pending_transfer(request(book.alice, book.bob, 10))
    void = await service.void_pending_transfer(pending.id)
    expiring = await service.create_pending_transfer(request(book.alice, book.bob, 10, timeout=1))
    ledger.clock.advance(2)
    await service.expire_holds()
    with pytest.raises(InsufficientBalanceError) as failed:
        await service.create_transfer(request(book.bob, book.alice, 1))
    await service.update_account_status(book.bob, "frozen")
    return {
        "account_created": book.alice,
        "transfer_posted": posted.id,
        "transfer_pending": pending.id,
        "transfer_voided": void.id,
        "transfer_expired": expiring.id,
        "transfer_failed": int(str(failed.value.details["transfer_id"]), 16),
        "account_status_changed": book.bob,
    }


async def test_a_sync_listener_hears_every_kind_of_event(ledger: Ledger) -> None:
    seen = Recorder()
    for name in ALL:
        ledger.service.on(name, seen)
    subjects = await run_every_kind_of_write(ledger)
    for name, subject in subjects.items():
        assert name in seen.of(subject), name
    assert set(seen.names()) == set(ALL)


async def test_an_async_listener_hears_every_kind_of_event(ledger: Ledger) -> None:
    seen: list[LedgerEvent] = []

    async def listener(event: LedgerEvent) -> None:
        await asyncio.sleep(0)
        seen.append(event)

    for name in ALL:
        ledger.service.on(name, listener)
    subjects = await run_every_kind_of_write(ledger)
    await wait_until(lambda: {e.name.value for e in seen} == set(ALL))
    for name, subject in subjects.items():
        assert any(e.name.value == name and e.subject_id == subject for e in seen), name


async def test_event_data_describes_the_write(service: LedgerService) -> None:
    seen = Recorder()
    service.on("account_created", seen)
    service.on("transfer_posted", seen)
    service.on("transfer_failed", seen)
    book = await open_service_book(service)
    posted = await deposit(service, book, book.alice, 100)
    with pytest.raises(InsufficientBalanceError):
        await service.create_transfer(request(book.bob, book.alice, 7))
    created = [e for e in seen.events if e.name is LedgerEventName.ACCOUNT_CREATED]
    assert created[1].data == {"account_type": "user", "owner_id": "alice", "ledger": LEDGER}
    (deposit_event,) = [e for e in seen.events if e.name is LedgerEventName.TRANSFER_POSTED]
    assert (deposit_event.subject_id, deposit_event.data) == (
        posted.id,
        {"status": "created", "amount": 100},
    )
    (failure,) = [e for e in seen.events if e.name is LedgerEventName.TRANSFER_FAILED]
    assert failure.data == {"status": "exceeds_credits", "amount": 7}


async def test_a_listener_runs_after_the_outcome_is_in_the_audit_log(
    service: LedgerService,
) -> None:
    book = await open_service_book(service)
    audited: list[list[str]] = []

    async def listener(event: LedgerEvent) -> None:
        audit = await service.get_transfer_audit(event.subject_id)
        audited.append([e.kind.value for e in audit])

    service.on("transfer_posted", listener)
    await deposit(service, book, book.alice, 1)
    await wait_until(lambda: bool(audited))
    assert audited == [["submitted", "posted"]]


async def test_a_failing_listener_is_logged_and_breaks_nothing(
    service: LedgerService, caplog: pytest.LogCaptureFixture
) -> None:
    book = await open_service_book(service)
    after = Recorder()

    def broken(event: LedgerEvent) -> None:
        raise RuntimeError("listener bug")

    async def broken_async(event: LedgerEvent) -> None:
        raise RuntimeError("async listener bug")

    service.on("transfer_posted", broken)
    service.on("transfer_posted", broken_async)
    service.on("transfer_posted", after)
    with caplog.at_level(logging.ERROR, logger="tbledger.events"):
        result = await deposit(service, book, book.alice, 10)
        await wait_until(lambda: sum("listener" in r.getMessage() for r in caplog.records) >= 2)
    assert result.ok
    assert (await service.get_balance(book.alice)).posted == 10
    assert after.of(result.id) == ["transfer_posted"]
    messages = [r.getMessage() for r in caplog.records if r.name == "tbledger.events"]
    assert any("failed on transfer_posted" in m for m in messages)
    assert any(r.exc_info and "async listener bug" in str(r.exc_info[1]) for r in caplog.records)


async def test_unsubscribing_stops_delivery(service: LedgerService) -> None:
    book = await open_service_book(service)
    seen = Recorder()
    off = service.on("transfer_posted", seen)
    await deposit(service, book, book.alice, 1)
    off()
    off()  # idempotent
    await deposit(service, book, book.alice, 1)
    assert len(seen.events) == 1


async def test_subscribing_to_an_unknown_event_is_refused(service: LedgerService) -> None:
    with pytest.raises(ValueError):
        service.on("transfer_teleported", Recorder())


async def take(service: LedgerService, since: int, count: int) -> list[AuditEvent]:
    taken: list[AuditEvent] = []
    stream = service.events(since, poll_s=0.01)
    try:
        async with asyncio.timeout(5):
            async for event in stream:
                taken.append(event)
                if len(taken) == count:
                    break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return taken


async def test_events_yields_the_audit_log_in_order(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    result = await deposit(service, book, book.alice, 5)
    everything = await ledger.store.events_since(0, 1000)
    streamed = await take(service, 0, len(everything))
    assert streamed == everything
    assert [e.seq for e in streamed] == sorted(e.seq for e in streamed)
    kinds = [(e.kind, e.account_id or e.transfer_id) for e in streamed]
    assert kinds[-2:] == [(EventKind.SUBMITTED, result.id), (EventKind.POSTED, result.id)]
    assert (EventKind.ACCOUNT_CREATED, book.alice) in kinds


async def test_events_resumes_after_a_cursor(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    first = await take(service, 0, 3)
    cursor = first[-1].seq
    result = await deposit(service, book, book.alice, 5)
    resumed = await take(service, cursor, 2)
    assert resumed[0].seq > cursor
    rest = await ledger.store.events_since(cursor, 1000)
    assert resumed == rest[:2]
    last = (await ledger.store.events_since(0, 1000))[-1]
    tail = await take(service, last.seq - 2, 2)
    assert [(e.kind, e.transfer_id) for e in tail] == [
        (EventKind.SUBMITTED, result.id),
        (EventKind.POSTED, result.id),
    ]


async def test_events_waits_for_new_events(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    last = (await ledger.store.events_since(0, 1000))[-1].seq
    waiting = asyncio.ensure_future(take(service, last, 2))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    result = await deposit(service, book, book.alice, 5)
    events = await waiting
    assert [e.transfer_id for e in events] == [result.id, result.id]
