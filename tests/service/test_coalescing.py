"""Coalescing: concurrent single calls share engine requests, and every caller gets its own answer.

The batcher merges calls that arrive while a request is in flight into the next request
(DESIGN §6), so many concurrent `create_transfer` calls should travel in far fewer engine requests
than calls, and each caller still gets the result of its own transfer.
"""

from __future__ import annotations

import asyncio

from tbledger.errors import InsufficientBalanceError
from tbledger.service import LedgerService, TransferResult
from tests.service.conftest import Ledger
from tests.service.helpers import EngineWrapper, deposit, open_book, request

CALLS = 1000


class NotCoalescedError(AssertionError):
    """The calls were correct but travelled (almost) one engine request each."""


async def test_a_thousand_concurrent_transfers_are_all_correct_and_coalesced(
    service: LedgerService,
) -> None:
    book = await open_book(service)
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
    book = await open_book(ledger.service)
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
    book = await open_book(ledger.service)
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
