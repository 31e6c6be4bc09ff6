"""Idempotency: a retried request returns the original outcome and never moves money twice.

Two ways to say "this is the same request": the caller's `transfer_id` (a retry reuses it), and
an `idempotency_key` (a retry may come with a freshly minted id). Either way the replay returns
the original result with ``replayed=True``, and the engine is asked once. The same key or id with
different fields is the caller's mistake: `IdempotencyConflictError`. Concurrent replays wait for
the original instead of submitting it again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
import tigerbeetle as tb

from tbledger.errors import IdempotencyConflictError, InsufficientBalanceError
from tbledger.service import LedgerService
from tbledger.store import EventKind, TransferIntent
from tbledger.store.tables import transfers
from tests.service.conftest import Ledger
from tests.service.helpers import LEDGER, PAYMENT, deposit, request
from tests.support.book import ServiceBook, open_service_book


async def funded(service: LedgerService, amount: int = 1_000) -> ServiceBook:
    book = await open_service_book(service)
    await deposit(service, book, book.alice, amount)
    return book


async def intents_with_key(ledger: Ledger, key: str) -> int:
    async with ledger.store.engine.connect() as conn:
        query = sa.select(sa.func.count()).where(transfers.c.idempotency_key == key)
        return int((await conn.execute(query)).scalar_one())


async def test_replaying_a_transfer_id_returns_the_original_outcome(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    transfer_id = tb.id()
    first = await service.create_transfer(
        request(book.alice, book.bob, 10, transfer_id=transfer_id)
    )
    requests_before = service.batcher.stats.requests
    again = await service.create_transfer(
        request(book.alice, book.bob, 10, transfer_id=transfer_id)
    )
    assert (again.id, again.status, again.timestamp) == (first.id, first.status, first.timestamp)
    assert (first.replayed, again.replayed) == (False, True)
    assert service.batcher.stats.requests == requests_before
    assert (await service.get_balance(book.bob)).posted == 10
    kinds = [e.kind for e in await service.get_transfer_audit(transfer_id)]
    assert kinds == [EventKind.SUBMITTED, EventKind.POSTED]


async def test_replaying_a_transfer_id_with_other_fields_is_a_conflict(
    service: LedgerService,
) -> None:
    book = await funded(service)
    transfer_id = tb.id()
    await service.create_transfer(request(book.alice, book.bob, 10, transfer_id=transfer_id))
    with pytest.raises(IdempotencyConflictError) as caught:
        await service.create_transfer(request(book.alice, book.bob, 11, transfer_id=transfer_id))
    assert caught.value.code == "idempotency_conflict"
    assert (await service.get_balance(book.bob)).posted == 10


async def test_replaying_an_idempotency_key_with_a_fresh_id_returns_the_same_transfer(
    service: LedgerService,
) -> None:
    book = await funded(service)
    first = await service.create_transfer(request(book.alice, book.bob, 10, idempotency_key="k-1"))
    again = await service.create_transfer(request(book.alice, book.bob, 10, idempotency_key="k-1"))
    chosen = await service.create_transfer(
        request(book.alice, book.bob, 10, idempotency_key="k-1", transfer_id=tb.id())
    )
    assert again.id == chosen.id == first.id
    assert (again.replayed, chosen.replayed) == (True, True)
    assert (await service.get_balance(book.bob)).posted == 10


async def test_the_same_idempotency_key_with_other_fields_is_a_conflict(
    service: LedgerService,
) -> None:
    book = await funded(service)
    await service.create_transfer(request(book.alice, book.bob, 10, idempotency_key="k-2"))
    for changed in (
        request(book.alice, book.bob, 12, idempotency_key="k-2"),
        request(book.bob, book.alice, 10, idempotency_key="k-2"),
        request(book.alice, book.bob, 10, idempotency_key="k-2", metadata={"memo": "x"}),
        request(book.alice, book.bob, 10, idempotency_key="k-2", pending=True),
    ):
        with pytest.raises(IdempotencyConflictError):
            await service.create_transfer(changed)
    assert (await service.get_balance(book.bob)).posted == 10


async def test_a_batch_mixing_new_and_replayed_transfers_submits_only_the_new(
    service: LedgerService,
) -> None:
    book = await funded(service)
    old_id = tb.id()
    first = await service.create_transfer(request(book.alice, book.bob, 10, transfer_id=old_id))
    results = await service.create_transfers(
        [
            request(book.alice, book.bob, 10, transfer_id=old_id),
            request(book.alice, book.bob, 5),
        ]
    )
    assert [(r.status, r.replayed) for r in results] == [("created", True), ("created", False)]
    assert results[0].timestamp == first.timestamp
    assert (await service.get_balance(book.bob)).posted == 15


async def test_an_atomic_batch_partly_submitted_before_is_a_conflict(
    service: LedgerService,
) -> None:
    book = await funded(service)
    old_id = tb.id()
    await service.create_transfer(request(book.alice, book.bob, 10, transfer_id=old_id))
    with pytest.raises(IdempotencyConflictError):
        await service.create_transfers(
            [
                request(book.alice, book.bob, 10, transfer_id=old_id),
                request(book.alice, book.bob, 5),
            ],
            atomic=True,
        )
    assert (await service.get_balance(book.bob)).posted == 10


async def test_replaying_a_refused_request_raises_the_original_refusal(
    service: LedgerService,
) -> None:
    book = await funded(service, amount=5)
    with pytest.raises(InsufficientBalanceError):
        await service.create_transfer(request(book.alice, book.bob, 10, idempotency_key="k-3"))
    await deposit(service, book, book.alice, 100)
    with pytest.raises(InsufficientBalanceError):
        await service.create_transfer(request(book.alice, book.bob, 10, idempotency_key="k-3"))
    assert (await service.get_balance(book.bob)).posted == 0


async def test_replaying_a_post_with_its_key_posts_once(service: LedgerService) -> None:
    book = await funded(service)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 50))
    first = await service.post_pending_transfer(hold.id, 20, idempotency_key="capture-1")
    again = await service.post_pending_transfer(hold.id, 20, idempotency_key="capture-1")
    assert (again.id, again.replayed) == (first.id, True)
    with pytest.raises(IdempotencyConflictError):
        await service.post_pending_transfer(hold.id, 30, idempotency_key="capture-1")
    assert (await service.get_balance(book.bob)).posted == 20


async def test_replaying_a_void_with_its_key_voids_once(service: LedgerService) -> None:
    book = await funded(service)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 50))
    void = await service.void_pending_transfer(hold.id, idempotency_key="release-1")
    again = await service.void_pending_transfer(hold.id, idempotency_key="release-1")
    assert (again.id, again.status, again.replayed) == (void.id, "created", True)
    assert (await service.get_balance(book.alice)).available == 1_000


async def test_a_replay_of_a_never_submitted_intent_submits_it_once(ledger: Ledger) -> None:
    # A crash left the intent persisted but never submitted; the client retries with its key.
    service = ledger.service
    book = await funded(service)
    stranded = TransferIntent(
        id=tb.id(),
        debit_account_id=book.alice,
        credit_account_id=book.bob,
        amount=10,
        ledger=LEDGER,
        code=PAYMENT,
        idempotency_key="k-4",
    )
    await ledger.store.insert_intents([stranded])
    result = await service.create_transfer(request(book.alice, book.bob, 10, idempotency_key="k-4"))
    assert (result.id, result.status, result.replayed) == (stranded.id, "created", True)
    assert (await service.get_balance(book.bob)).posted == 10
    assert [e.kind for e in await service.get_transfer_audit(stranded.id)] == [
        EventKind.SUBMITTED,
        EventKind.POSTED,
    ]


async def test_fifty_concurrent_calls_with_one_key_make_one_transfer(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    results = await asyncio.gather(
        *(
            service.create_transfer(request(book.alice, book.bob, 7, idempotency_key="once"))
            for _ in range(50)
        ),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    ids = {r.id for r in results}  # type: ignore[union-attr]
    assert len(ids) == 1
    assert sum(not r.replayed for r in results) == 1  # type: ignore[union-attr]
    (transfer_id,) = ids
    assert (await service.get_balance(book.bob)).posted == 7
    assert (await service.get_balance(book.alice)).posted == 1_000 - 7
    assert len(await ledger.client.lookup_transfers([transfer_id])) == 1
    assert await intents_with_key(ledger, "once") == 1
    kinds = [e.kind for e in await service.get_transfer_audit(transfer_id)]
    assert kinds == [EventKind.SUBMITTED, EventKind.POSTED]


async def test_replaying_a_hold_after_it_was_posted_returns_the_holds_own_outcome(
    service: LedgerService,
) -> None:
    book = await funded(service)
    hold_id = tb.id()
    hold = await service.create_pending_transfer(
        request(book.alice, book.bob, 25, transfer_id=hold_id)
    )
    await service.post_pending_transfer(hold_id)
    again = await service.create_pending_transfer(
        request(book.alice, book.bob, 25, transfer_id=hold_id)
    )
    assert (again.id, again.status, again.replayed) == (hold.id, hold.status, True)
    assert again.timestamp == hold.timestamp


async def test_concurrent_calls_with_one_transfer_id_both_get_the_original_outcome(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ledger.service
    book = await funded(service)
    insert_intents = ledger.store.insert_intents
    calls = 0

    async def first_insert_is_slow(intents: list[TransferIntent], **kw: Any) -> Any:
        # The first caller claims the id, then its insert loses the race to the second caller's.
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.05)
        return await insert_intents(intents, **kw)

    monkeypatch.setattr(ledger.store, "insert_intents", first_insert_is_slow)
    transfer_id = tb.id()
    same = request(book.alice, book.bob, 7, transfer_id=transfer_id)
    async with asyncio.timeout(5):
        results = await asyncio.gather(
            service.create_transfer(same), service.create_transfer(same), return_exceptions=True
        )
    assert [type(r).__name__ for r in results] == ["TransferResult", "TransferResult"]
    assert sorted(r.replayed for r in results) == [False, True]  # type: ignore[union-attr]
    kinds = [e.kind for e in await service.get_transfer_audit(transfer_id)]
    assert kinds == [EventKind.SUBMITTED, EventKind.POSTED]
    assert (await service.get_balance(book.bob)).posted == 7


async def test_a_large_replayed_batch_of_holds_answers_each_holds_own_outcome(
    ledger: Ledger,
) -> None:
    # Large enough to be looked up before it is queued; two of the holds are resolved since, so
    # their latest events are resolutions and their own outcomes come from their histories.
    service = ledger.service
    book = await funded(service)
    size = 100
    requests = [
        request(book.alice, book.bob, 1, pending=True, idempotency_key=f"holds:{k}")
        for k in range(size)
    ]
    first = await service.create_pending_transfers(requests)
    assert {r.status for r in first} == {"created"}
    await service.post_pending_transfer(first[3].id)
    await service.void_pending_transfer(first[7].id)
    requests_before = service.batcher.stats.requests
    again = await service.create_pending_transfers(requests)
    assert [(r.id, r.status, r.timestamp) for r in again] == [
        (r.id, r.status, r.timestamp) for r in first
    ]
    assert all(r.replayed for r in again)
    assert service.batcher.stats.requests == requests_before
    assert (await service.get_balance(book.bob)).posted == 1
    changed = [
        *requests[:-1],
        request(book.alice, book.bob, 2, pending=True, idempotency_key=f"holds:{size - 1}"),
    ]
    with pytest.raises(IdempotencyConflictError):
        await service.create_pending_transfers(changed)
