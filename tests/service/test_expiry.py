"""Hold expiry is decided by the engine's clock, never by this machine's.

A hold with a timeout expires in the engine when the engine's time passes its creation timestamp
plus the timeout. `expire_holds()` asks the engine for its current time and appends ``expired``
for every open hold past that point, with the expiry instant as the engine timestamp. Here the
engine runs on a `ManualClock`, so wall time passing changes nothing until the test advances it.
"""

from __future__ import annotations

import pytest

from tbledger.errors import TransferFailedError
from tbledger.store import EventKind
from tests.service.conftest import Ledger
from tests.service.helpers import Recorder, deposit, request
from tests.support.book import ServiceBook, open_service_book

SECOND_NS = 1_000_000_000


async def funded(ledger: Ledger) -> ServiceBook:
    book = await open_service_book(ledger.service)
    await deposit(ledger.service, book, book.alice, 100)
    return book


async def test_a_hold_past_its_timeout_is_recorded_expired(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(ledger)
    seen = Recorder()
    service.on("transfer_expired", seen)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 30, timeout=1))
    assert hold.timestamp is not None
    ledger.clock.advance(2)
    assert await service.expire_holds() == 1
    audit = await service.get_transfer_audit(hold.id)
    assert [e.kind for e in audit] == [EventKind.SUBMITTED, EventKind.PENDING, EventKind.EXPIRED]
    expired = audit[-1]
    assert expired.status == "expired"
    assert expired.engine_timestamp == hold.timestamp + 1 * SECOND_NS
    # Decided at the engine's current time, which is the advanced manual clock.
    assert int(expired.detail["engine_now"]) >= ledger.clock() > hold.timestamp + SECOND_NS
    assert seen.of(hold.id) == ["transfer_expired"]
    assert (await service.get_balance(book.alice)).available == 100
    # Nothing left to expire.
    assert await service.expire_holds() == 0


async def test_nothing_expires_until_the_engine_clock_passes_the_timeout(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(ledger)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 30, timeout=1))
    assert await service.expire_holds() == 0
    ledger.clock.advance(0.5)
    assert await service.expire_holds() == 0
    assert [e.kind for e in await service.get_transfer_audit(hold.id)][-1] is EventKind.PENDING
    assert await service.engine_now_ns() < hold.timestamp + SECOND_NS  # type: ignore[operator]


async def test_posting_an_expired_hold_fails_with_pending_transfer_expired(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(ledger)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 30, timeout=1))
    ledger.clock.advance(2)
    await service.expire_holds()
    with pytest.raises(TransferFailedError) as caught:
        await service.post_pending_transfer(hold.id)
    assert caught.value.code == "pending_transfer_expired"
    kinds = [e.kind for e in await service.get_transfer_audit(hold.id)]
    assert kinds == [EventKind.SUBMITTED, EventKind.PENDING, EventKind.EXPIRED]
    assert (await service.get_balance(book.bob)).posted == 0


async def test_a_refused_post_reports_the_expiry_before_expire_holds_runs(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(ledger)
    seen = Recorder()
    service.on("transfer_expired", seen)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 30, timeout=1))
    ledger.clock.advance(2)
    with pytest.raises(TransferFailedError):
        await service.void_pending_transfer(hold.id)
    audit = await service.get_transfer_audit(hold.id)
    assert [e.kind for e in audit] == [EventKind.SUBMITTED, EventKind.PENDING, EventKind.EXPIRED]
    assert "reported_by" in audit[-1].detail
    assert seen.of(hold.id) == ["transfer_expired"]
    assert await service.expire_holds() == 0


async def test_holds_without_timeout_or_already_resolved_never_expire(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(ledger)
    forever = await service.create_pending_transfer(request(book.alice, book.bob, 10))
    posted = await service.create_pending_transfer(request(book.alice, book.bob, 10, timeout=1))
    await service.post_pending_transfer(posted.id)
    ledger.clock.advance(3600)
    assert await service.expire_holds() == 0
    assert [e.kind for e in await service.get_transfer_audit(forever.id)][-1] is EventKind.PENDING
    assert [e.kind for e in await service.get_transfer_audit(posted.id)][-1] is EventKind.POSTED
    assert (await service.post_pending_transfer(forever.id)).ok


async def test_recover_also_records_expired_holds(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(ledger)
    holds = await service.create_pending_transfers(
        [request(book.alice, book.bob, 5, timeout=1), request(book.alice, book.bob, 5, timeout=5)]
    )
    ledger.clock.advance(2)
    report = await service.recover(grace_s=0)
    assert report.expired == 1
    assert [e.kind for e in await service.get_transfer_audit(holds[0].id)][-1] is EventKind.EXPIRED
    assert [e.kind for e in await service.get_transfer_audit(holds[1].id)][-1] is EventKind.PENDING
    ledger.clock.advance(5)
    assert (await service.recover(grace_s=0)).expired == 1


async def test_engine_now_ns_is_the_engines_clock(ledger: Ledger) -> None:
    first = await ledger.service.engine_now_ns()
    assert first >= ledger.clock()
    assert await ledger.service.engine_now_ns() > first  # strictly increasing, like the engine
    moved_to = ledger.clock.advance(10)
    second = await ledger.service.engine_now_ns()
    assert second >= moved_to >= first + 10 * SECOND_NS - 10
