"""Hold expiry is decided by the engine's clock, never by this machine's.

A hold with a timeout expires in the engine when the engine's time passes its creation timestamp
plus the timeout. `expire_holds()` asks the engine for its current time and appends ``expired``
for every open hold past that point, with the expiry instant as the engine timestamp. Every read
of a transfer's status does the same for the holds it reads, so a hold past its timeout never
reads ``pending`` while the engine has released it, with or without a recovery pass; and it is
recorded ``expired`` once, whoever gets there first. Here the engine runs on a `ManualClock`, so
wall time passing changes nothing until the test advances it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tigerbeetle as tb

from tbledger.errors import OutcomeUnknownError, TransferFailedError
from tbledger.service import LedgerService
from tbledger.store import EventKind
from tests.service.conftest import Ledger
from tests.service.helpers import EngineWrapper, Recorder, deposit, request
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


# -- a hold's status is never stale ---------------------------------------------------------------


def past_expiry(ledger: Ledger, hold_timestamp: int | None, timeout_s: int = 1) -> int:
    """Move the engine's clock to the hold's expiry instant; return the instant. The engine's
    next request gets a slot after it, so the engine has expired the hold by then."""
    assert hold_timestamp is not None
    expires_at = hold_timestamp + timeout_s * SECOND_NS
    ledger.clock.advance(ns=max(0, expires_at - ledger.clock()))
    return expires_at


async def _status_by_current_status(service: LedgerService, hold_id: int, _: int) -> str:
    return (await service.current_status([hold_id]))[hold_id].kind.value


async def _status_by_transfer_statuses(service: LedgerService, hold_id: int, _: int) -> str:
    return (await service.transfer_statuses([hold_id]))[hold_id].status


async def _status_by_audit(service: LedgerService, hold_id: int, _: int) -> str:
    return (await service.get_transfer_audit(hold_id))[-1].kind.value


async def _status_by_activity(service: LedgerService, hold_id: int, account_id: int) -> str:
    page = await service.account_activity(account_id)
    (entry,) = [e for e in page.entries if e.transfer.id == hold_id]
    assert entry.status is not None
    return entry.status


READS: dict[str, Callable[[LedgerService, int, int], Awaitable[str]]] = {
    "current_status": _status_by_current_status,
    "transfer_statuses": _status_by_transfer_statuses,
    "get_transfer_audit": _status_by_audit,
    "account_activity": _status_by_activity,
}


@pytest.mark.parametrize("read", list(READS))
async def test_a_hold_reads_expired_once_the_engine_clock_passes_it_without_recovery(
    ledger: Ledger, read: str
) -> None:
    service = ledger.service
    book = await funded(ledger)
    seen = Recorder()
    service.on("transfer_expired", seen)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 30, timeout=1))
    ledger.clock.advance(0.5)
    assert await READS[read](service, hold.id, book.alice) == "pending"
    expires_at = past_expiry(ledger, hold.timestamp)
    # No recovery pass has run: the read asks the engine's clock and records the expiry.
    assert await READS[read](service, hold.id, book.alice) == "expired"
    audit = await service.get_transfer_audit(hold.id)
    assert [e.kind for e in audit] == [EventKind.SUBMITTED, EventKind.PENDING, EventKind.EXPIRED]
    assert audit[-1].engine_timestamp == expires_at
    assert int(audit[-1].detail["engine_now"]) > expires_at
    assert seen.of(hold.id) == ["transfer_expired"]
    assert (await service.get_balance(book.alice)).available == 100
    # Recorded once: the recovery pass finds nothing left, and reading again appends nothing.
    assert await service.expire_holds() == 0
    assert await READS[read](service, hold.id, book.alice) == "expired"
    assert len(await service.get_transfer_audit(hold.id)) == 3


async def test_reads_ask_the_engine_only_about_pending_holds_with_a_timeout(
    ledger: Ledger,
) -> None:
    book = await funded(ledger)
    counting = CountingEngine(ledger.client)
    async with ledger.open_service(engine=counting) as service:
        plain = await service.create_transfer(request(book.alice, book.bob, 1))
        forever = await service.create_pending_transfer(request(book.alice, book.bob, 1))
        timed = await service.create_pending_transfer(request(book.alice, book.bob, 1, timeout=60))
        counting.calls.clear()
        statuses = await service.current_status([plain.id, forever.id])
        assert [statuses[t].kind for t in (plain.id, forever.id)] == [
            EventKind.POSTED,
            EventKind.PENDING,
        ]
        assert counting.calls == []
        # A hold with a timeout: one request for the engine's time, nothing else.
        assert (await service.current_status([timed.id]))[timed.id].kind is EventKind.PENDING
        assert counting.calls == ["create_accounts"]
        # Once the engine is seen past the instant (here by the time of a later write), no
        # request is needed to know the hold expired; only its posts and voids are looked for.
        past_expiry(ledger, timed.timestamp, timeout_s=60)
        await service.create_transfer(request(book.alice, book.bob, 1))
        counting.calls.clear()
        assert (await service.current_status([timed.id]))[timed.id].kind is EventKind.EXPIRED
        assert counting.calls == []


async def test_a_read_and_recovery_passes_racing_record_the_expiry_once(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(ledger)
    holds = await service.create_pending_transfers(
        [request(book.alice, book.bob, 5, timeout=1) for _ in range(3)]
    )
    ids = [h.id for h in holds]
    seen, seen_elsewhere = Recorder(), Recorder()
    service.on("transfer_expired", seen)
    # Another process's recovery pass, on the same store and engine.
    async with ledger.open_service() as elsewhere:
        elsewhere.on("transfer_expired", seen_elsewhere)
        past_expiry(ledger, max(h.timestamp or 0 for h in holds))
        done = await asyncio.gather(
            service.current_status(ids),
            service.expire_holds(),
            elsewhere.expire_holds(),
            service.transfer_statuses(ids),
            service.recover(grace_s=0),
            service.get_transfer_audit(ids[0]),
        )
    assert {e.kind for e in done[0].values()} == {EventKind.EXPIRED}
    for hold_id in ids:
        kinds = [e.kind for e in await service.get_transfer_audit(hold_id)]
        assert kinds == [EventKind.SUBMITTED, EventKind.PENDING, EventKind.EXPIRED]
        assert seen.of(hold_id) + seen_elsewhere.of(hold_id) == ["transfer_expired"]
    assert done[1] + done[2] + done[4].expired <= len(ids)


async def test_a_hold_posted_before_its_timeout_never_reads_expired(ledger: Ledger) -> None:
    """The engine applied a post before the hold's timeout, and its answer never came back in
    time (outcome unknown). Past the timeout, a read finds the post in the engine and records it:
    the hold was captured, not expired."""
    book = await funded(ledger)
    hold = await ledger.service.create_pending_transfer(
        request(book.alice, book.bob, 30, timeout=1)
    )
    late = EngineWrapper(ledger.client)
    late.answer_gate = asyncio.Event()
    async with ledger.open_service(engine=late, request_timeout_ms=100) as other:
        post_id = tb.id()
        with pytest.raises(OutcomeUnknownError):
            await other.post_pending_transfer(hold.id, 12, transfer_id=post_id)
        assert late.applied == 1
        past_expiry(ledger, hold.timestamp)
        status = (await ledger.service.transfer_statuses([hold.id]))[hold.id]
        assert (status.status, status.captured_amount, status.released_amount) == (
            "posted",
            12,
            18,
        )
        assert await ledger.service.expire_holds() == 0
        late.answer_gate.set()  # the late answer finds its outcome recorded
    hold_kinds = [e.kind for e in await ledger.service.get_transfer_audit(hold.id)]
    assert hold_kinds == [EventKind.SUBMITTED, EventKind.PENDING, EventKind.POSTED]
    post_kinds = [e.kind for e in await ledger.service.get_transfer_audit(post_id)]
    assert post_kinds == [EventKind.SUBMITTED, EventKind.OUTCOME_UNKNOWN, EventKind.POSTED]
    assert (await ledger.service.get_balance(book.bob)).posted == 12


# -- what a posted hold captured ------------------------------------------------------------------


async def test_a_partly_captured_hold_shows_what_was_captured_and_released(
    ledger: Ledger,
) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 10_000)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 3000))
    post = await service.post_pending_transfer(hold.id, 1200)
    whole = await service.create_pending_transfer(request(book.alice, book.bob, 500))
    await service.post_pending_transfer(whole.id)  # in full
    voided = await service.create_pending_transfer(request(book.alice, book.bob, 100))
    await service.void_pending_transfer(voided.id)
    statuses = await service.transfer_statuses([hold.id, post.id, whole.id, voided.id])
    shown = {t: (s.status, s.captured_amount, s.released_amount) for t, s in statuses.items()}
    assert shown == {
        hold.id: ("posted", 1200, 1800),
        post.id: ("posted", None, None),
        whole.id: ("posted", 500, 0),
        voided.id: ("voided", None, None),
    }
    page = await service.account_activity(book.alice)
    entries = {e.transfer.id: e for e in page.entries}
    assert (entries[hold.id].captured_amount, entries[hold.id].released_amount) == (1200, 1800)
    assert (entries[whole.id].captured_amount, entries[whole.id].released_amount) == (500, 0)
    assert entries[post.id].released_amount is None
    assert (await service.get_balance(book.alice)).posted == 10_000 - 1200 - 500


class CountingEngine:
    """Delegates to an engine client and names every call it is asked to make."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name.startswith("_") or not callable(attribute) or name == "close":
            return attribute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return await attribute(*args, **kwargs)

        return counted
