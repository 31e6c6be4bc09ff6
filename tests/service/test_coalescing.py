"""Coalescing: concurrent single calls share engine requests, and every caller gets its own answer.

The batcher merges calls that arrive while a request is in flight into the next request
(DESIGN §6), so many concurrent `create_transfer` calls should travel in far fewer engine requests
than calls, and each caller still gets the result of its own transfer.
"""

from __future__ import annotations

import asyncio

from tbledger.errors import InsufficientBalanceError
from tbledger.service import LedgerService, TransferResult
from tbledger.store import EventKind
from tests.service.conftest import Ledger
from tests.service.helpers import EngineWrapper, deposit, one_store, request
from tests.support.book import open_service_book

CALLS = 1000


class NotCoalescedError(AssertionError):
    """The calls were correct but travelled (almost) one engine request each."""


async def test_a_thousand_concurrent_transfers_are_all_correct_and_coalesced(
    service: LedgerService,
) -> None:
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 10 * CALLS)
    stats = service.batcher.stats
    requests_before, events_before = stats.requests, stats.events
    amounts = [1 + n % 10 for n in range(CALLS)]
    results: list[TransferResult] = await asyncio.gather(
        *(service.create_transfer(request(book.alice, book.bob, a)) for a in amounts)
    )
    # Correct: every call made its own transfer and the balances add up.
    assert all(r.status == "created" for r in results)
    assert len({r.id for r in results}) == CALLS
    found = await service.engine.lookup_transfers([r.id for r in results])
    assert [t.amount for t in found] == amounts
    alice, bob = await service.get_balances([book.alice, book.bob])
    assert bob.posted == sum(amounts)
    assert alice.posted == 10 * CALLS - sum(amounts)
    assert stats.events - events_before == CALLS
    # Coalesced: engine requests carried many transfers each.
    requests = stats.requests - requests_before
    if not (requests <= CALLS // 2 and stats.events_per_request > 1):
        raise NotCoalescedError(
            f"{CALLS} calls took {requests} engine requests "
            f"(events_per_request={stats.events_per_request:.2f})"
        )


async def test_calls_arriving_while_a_request_is_in_flight_share_the_next_one(
    ledger: Ledger,
) -> None:
    book = await open_service_book(ledger.service)
    await deposit(ledger.service, book, book.alice, 1_000)
    slow = EngineWrapper(ledger.client)
    slow.delay_s = 0.05
    async with ledger.open_service(engine=slow) as service:
        results = await asyncio.gather(
            *(service.create_transfer(request(book.alice, book.bob, 2)) for _ in range(40))
        )
        assert all(r.ok for r in results)
        stats = service.batcher.stats
        assert stats.events == 40
        assert stats.requests < 40
        assert stats.events_per_request > 1
        assert stats.largest_request > 1
    assert (await ledger.service.get_balance(book.bob)).posted == 80


async def test_coalesced_callers_get_their_own_refusals(ledger: Ledger) -> None:
    book = await open_service_book(ledger.service)
    await deposit(ledger.service, book, book.alice, 50)
    slow = EngineWrapper(ledger.client)
    slow.delay_s = 0.02
    async with ledger.open_service(engine=slow) as service:
        outcomes = await asyncio.gather(
            *(service.create_transfer(request(book.alice, book.bob, 10)) for _ in range(8)),
            return_exceptions=True,
        )
    ok = [o for o in outcomes if isinstance(o, TransferResult)]
    refused = [o for o in outcomes if isinstance(o, InsufficientBalanceError)]
    assert (len(ok), len(refused)) == (5, 3)
    assert all(e.requested == 10 for e in refused)
    assert (await ledger.service.get_balance(book.bob)).posted == 50


@one_store
async def test_without_the_audit_trail_concurrent_calls_are_coalesced_too(ledger: Ledger) -> None:
    book = await open_service_book(ledger.service)
    await deposit(ledger.service, book, book.alice, 10 * CALLS)
    async with ledger.open_service(audit=False) as service:
        results = await asyncio.gather(
            *(service.create_transfer(request(book.alice, book.bob, 1)) for _ in range(CALLS))
        )
        assert all(r.status == "created" for r in results)
        assert len({r.id for r in results}) == CALLS
        stats = service.batcher.stats
        assert stats.events == CALLS
        if not (stats.requests <= CALLS // 2 and stats.events_per_request > 1):
            raise NotCoalescedError(
                f"{CALLS} calls without audit took {stats.requests} engine requests"
            )
    assert (await ledger.service.get_balance(book.bob)).posted == CALLS


async def test_the_next_group_is_persisted_while_the_last_one_is_with_the_engine(
    ledger: Ledger,
) -> None:
    """Write groups are pipelined: a call that arrives while an earlier group waits for the
    engine has its intent persisted (and audited as submitted) before that group returns, and
    both groups complete in order of their own outcomes."""
    book = await open_service_book(ledger.service)
    await deposit(ledger.service, book, book.alice, 100)
    held = EngineWrapper(ledger.client)
    held.gate = asyncio.Event()
    async with ledger.open_service(engine=held) as service:
        first = asyncio.ensure_future(
            service.create_transfer(request(book.alice, book.bob, 3, transfer_id=0xF1))
        )
        while held.create_transfers_calls == 0:
            await asyncio.sleep(0.001)
        # The first group is with the engine (held at the gate); a second call comes in.
        second = asyncio.ensure_future(
            service.create_transfer(request(book.alice, book.bob, 4, transfer_id=0xF2))
        )
        for _ in range(200):
            if await ledger.store.get_intent(0xF2) is not None:
                break
            await asyncio.sleep(0.005)
        # Persisted while the first group is still in flight: the pipeline did not wait.
        assert not first.done()
        assert await ledger.store.get_intent(0xF2) is not None
        audit = await service.get_transfer_audit(0xF2)
        assert [e.kind for e in audit] == [EventKind.SUBMITTED]
        held.gate.set()
        done = await asyncio.gather(first, second)
        assert [r.status for r in done] == ["created", "created"]
    assert (await ledger.service.get_balance(book.bob)).posted == 7
    for transfer_id in (0xF1, 0xF2):
        kinds = [e.kind for e in await ledger.service.get_transfer_audit(transfer_id)]
        assert kinds == [EventKind.SUBMITTED, EventKind.POSTED]
