"""Transfers: single and batch, one- and two-phase, their typed errors, and reading them back.

A write goes down once and comes back once: validate, persist the intent (``submitted``), submit
to the engine, append the outcome (``posted``/``pending``/``failed``, later ``posted``/``voided``
for a hold). A single call raises a typed error when the engine refuses; a batch call returns one
result per input and never raises for a refusal. Money is read from the engine
(`get_transfer`, `list_account_transfers`), context from the store (`get_transfer_audit`,
`get_transfers_by_event_id`).
"""

from __future__ import annotations

import pytest
import tigerbeetle as tb

from tbledger.errors import (
    AccountNotFoundError,
    InsufficientBalanceError,
    InvalidIdError,
    TransferFailedError,
    ValidationError,
)
from tbledger.limits import BATCH_EVENTS_MAX
from tbledger.service import LedgerService, TransferRequest
from tbledger.store import EventKind
from tests.service.conftest import Ledger
from tests.service.helpers import LEDGER, PAYMENT, deposit, one_store, request
from tests.support.book import ServiceBook, open_service_book

_TF = tb.TransferFlags


async def funded_book(service: LedgerService, alice: int = 100) -> ServiceBook:
    book = await open_service_book(service)
    await deposit(service, book, book.alice, alice)
    return book


async def kinds(service: LedgerService, transfer_id: int) -> list[str]:
    return [e.kind.value for e in await service.get_transfer_audit(transfer_id)]


# -- create_transfer -----------------------------------------------------------------------------


async def test_create_transfer_moves_money_and_records_submitted_then_posted(
    service: LedgerService,
) -> None:
    book = await funded_book(service)
    result = await service.create_transfer(request(book.alice, book.bob, 40))
    assert (result.status, result.ok, result.replayed) == ("created", True, False)
    assert result.timestamp is not None
    assert result.id_hex == f"0x{result.id:032x}"
    transfer = await service.get_transfer(result.id)
    assert transfer is not None
    assert (transfer.debit_account_id, transfer.credit_account_id, transfer.amount) == (
        book.alice,
        book.bob,
        40,
    )
    assert (transfer.ledger, transfer.code, transfer.timestamp) == (
        LEDGER,
        PAYMENT,
        result.timestamp,
    )
    assert await kinds(service, result.id) == ["submitted", "posted"]
    audit = await service.get_transfer_audit(result.id)
    assert (audit[-1].status, audit[-1].engine_timestamp) == ("created", result.timestamp)


async def test_create_transfer_takes_keywords_and_the_callers_id_and_context(
    ledger: Ledger,
) -> None:
    service = ledger.service
    book = await funded_book(service)
    transfer_id = tb.id()
    result = await service.create_transfer(
        debit_account_id=hex(book.alice),
        credit_account_id=str(book.bob),
        amount=5,
        ledger=LEDGER,
        code=PAYMENT,
        transfer_id=transfer_id,
        user_data_128=1,
        user_data_64=2,
        user_data_32=3,
        payment_id="pay-1",
        event_id="evt-1",
        chain_tx_hash="0xabc",
        metadata={"memo": "lunch"},
    )
    assert result.id == transfer_id
    transfer = await service.get_transfer(hex(transfer_id))
    assert transfer is not None
    assert (transfer.user_data_128, transfer.user_data_64, transfer.user_data_32) == (1, 2, 3)
    intent = await ledger.store.get_intent(transfer_id)
    assert intent is not None
    assert (intent.payment_id, intent.event_id, intent.chain_tx_hash) == (
        "pay-1",
        "evt-1",
        "0xabc",
    )
    assert dict(intent.metadata) == {"memo": "lunch"}


async def test_create_transfer_with_pending_true_is_a_hold(service: LedgerService) -> None:
    book = await funded_book(service)
    result = await service.create_transfer(request(book.alice, book.bob, 10, pending=True))
    transfer = await service.get_transfer(result.id)
    assert transfer is not None
    assert transfer.flags & _TF.PENDING
    assert await kinds(service, result.id) == ["submitted", "pending"]


@one_store
@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"amount": -1}, ValidationError),
        ({"amount": 2**128}, ValidationError),
        ({"amount": 1.5}, ValidationError),
        ({"ledger": 0}, ValidationError),
        ({"code": 0}, ValidationError),
        ({"code": 2**16}, ValidationError),
        ({"timeout": 5}, ValidationError),  # only a hold has a timeout
        ({"transfer_id": 0}, ValidationError),
        ({"transfer_id": "zz"}, InvalidIdError),
        ({"debit_account_id": 0}, ValidationError),
        ({"user_data_32": 2**32}, ValidationError),
        ({"event_id": "e" * 256}, ValidationError),
        ({"metadata": {"x": float("nan")}}, ValidationError),
    ],
)
async def test_invalid_transfers_reach_neither_the_store_nor_the_engine(
    ledger: Ledger, fields: dict[str, object], error: type[Exception]
) -> None:
    service = ledger.service
    book = await funded_book(service)
    requests_before = service.batcher.stats.requests
    seq_before = len(await ledger.store.events_since(0, 1000))
    values: dict[str, object] = {
        "debit_account_id": book.alice,
        "credit_account_id": book.bob,
        "amount": 1,
        "ledger": LEDGER,
        "code": PAYMENT,
    }
    values.update(fields)
    with pytest.raises(error):
        await service.create_transfer(TransferRequest(**values))  # type: ignore[arg-type]
    assert service.batcher.stats.requests == requests_before
    assert len(await ledger.store.events_since(0, 1000)) == seq_before


@one_store
async def test_a_transfer_to_the_same_account_is_refused_before_the_engine(
    service: LedgerService,
) -> None:
    book = await funded_book(service)
    requests_before = service.batcher.stats.requests
    with pytest.raises(ValidationError, match="different"):
        await service.create_transfer(request(book.alice, hex(book.alice), 1))
    assert service.batcher.stats.requests == requests_before


# -- typed errors --------------------------------------------------------------------------------


@one_store
async def test_overdrawing_raises_insufficient_balance_with_available_and_requested(
    service: LedgerService,
) -> None:
    book = await funded_book(service, alice=100)
    await service.create_pending_transfer(request(book.alice, book.bob, 30))
    with pytest.raises(InsufficientBalanceError) as caught:
        await service.create_transfer(request(book.alice, book.bob, 80))
    error = caught.value
    assert (error.code, error.available, error.requested) == ("exceeds_credits", 70, 80)
    assert isinstance(error, TransferFailedError)
    transfer_id = int(str(error.details["transfer_id"]), 16)
    assert await service.get_transfer(transfer_id) is None
    audit = await service.get_transfer_audit(transfer_id)
    assert [(e.kind, e.status) for e in audit][-1] == (EventKind.FAILED, "exceeds_credits")
    assert (await service.get_balance(book.alice)).available == 70


@one_store
async def test_overcrediting_a_limited_account_raises_exceeds_debits(
    service: LedgerService,
) -> None:
    book = await funded_book(service, alice=100)
    anchor = await service.create_account(owner_id=None, account_type="anchor", ledger=LEDGER)
    with pytest.raises(InsufficientBalanceError) as caught:
        await service.create_transfer(request(anchor.id, book.treasury, 150))
    assert (caught.value.code, caught.value.available, caught.value.requested) == (
        "exceeds_debits",
        100,
        150,
    )


@one_store
@pytest.mark.parametrize("side", ["debit", "credit"])
async def test_an_unknown_account_raises_account_not_found(
    service: LedgerService, side: str
) -> None:
    book = await funded_book(service)
    missing = tb.id()
    debit, credit = (missing, book.bob) if side == "debit" else (book.alice, missing)
    with pytest.raises(AccountNotFoundError) as caught:
        await service.create_transfer(request(debit, credit, 1))
    assert caught.value.code == f"{side}_account_not_found"


@one_store
async def test_other_refusals_raise_transfer_failed_with_the_engine_status(
    service: LedgerService,
) -> None:
    book = await funded_book(service)
    euro = await service.create_account(owner_id="carol", account_type="user", ledger=2)
    with pytest.raises(TransferFailedError) as caught:
        await service.create_transfer(request(book.alice, euro.id, 1))
    assert type(caught.value) is TransferFailedError
    assert caught.value.code == "accounts_must_have_the_same_ledger"
    assert caught.value.details["status"] == "accounts_must_have_the_same_ledger"


async def test_replaying_a_failed_transfer_id_raises_the_same_failure_without_the_engine(
    service: LedgerService,
) -> None:
    book = await funded_book(service, alice=10)
    transfer_id = tb.id()
    with pytest.raises(InsufficientBalanceError):
        await service.create_transfer(request(book.alice, book.bob, 20, transfer_id=transfer_id))
    before = service.batcher.stats.requests
    await deposit(service, book, book.alice, 100)  # it would pass now, but it already failed
    with pytest.raises(InsufficientBalanceError) as again:
        await service.create_transfer(request(book.alice, book.bob, 20, transfer_id=transfer_id))
    assert again.value.code == "exceeds_credits"
    assert service.batcher.stats.requests == before + 1  # only the deposit
    assert await kinds(service, transfer_id) == ["submitted", "failed"]


# -- two-phase -----------------------------------------------------------------------------------


async def test_create_pending_transfer_books_a_hold_with_its_timeout(
    service: LedgerService,
) -> None:
    book = await funded_book(service)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 25, timeout=60))
    transfer = await service.get_transfer(hold.id)
    assert transfer is not None
    assert transfer.flags & _TF.PENDING
    assert (transfer.timeout, transfer.amount) == (60, 25)
    assert await kinds(service, hold.id) == ["submitted", "pending"]


async def test_posting_a_hold_in_full(service: LedgerService) -> None:
    book = await funded_book(service)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 25))
    post = await service.post_pending_transfer(hold.id)
    assert post.ok
    transfer = await service.get_transfer(post.id)
    assert transfer is not None
    assert transfer.flags & _TF.POST_PENDING_TRANSFER
    assert (transfer.pending_id, transfer.amount) == (hold.id, 25)
    assert await kinds(service, hold.id) == ["submitted", "pending", "posted"]
    assert await kinds(service, post.id) == ["submitted", "posted"]
    assert (await service.get_balance(book.bob)).posted == 25


async def test_posting_part_of_a_hold_records_the_amount(service: LedgerService) -> None:
    book = await funded_book(service)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 25))
    post = await service.post_pending_transfer(str(hold.id), 10, event_id="capture-1")
    audit = await service.get_transfer_audit(hold.id)
    assert [e.kind for e in audit] == [EventKind.SUBMITTED, EventKind.PENDING, EventKind.POSTED]
    assert audit[-1].detail["amount"] == "10"
    transfer = await service.get_transfer(post.id)
    assert transfer is not None
    assert transfer.amount == 10
    assert [i.id for i in await service.get_transfers_by_event_id("capture-1")] == [post.id]


async def test_voiding_a_hold(service: LedgerService) -> None:
    book = await funded_book(service)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 25))
    void = await service.void_pending_transfer(hold.id)
    assert void.ok
    transfer = await service.get_transfer(void.id)
    assert transfer is not None
    assert transfer.flags & _TF.VOID_PENDING_TRANSFER
    assert await kinds(service, hold.id) == ["submitted", "pending", "voided"]
    assert await kinds(service, void.id) == ["submitted", "voided"]


async def test_a_hold_is_resolved_only_once(service: LedgerService) -> None:
    book = await funded_book(service)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 25))
    await service.void_pending_transfer(hold.id)
    with pytest.raises(TransferFailedError) as posted:
        await service.post_pending_transfer(hold.id)
    assert posted.value.code == "pending_transfer_already_voided"
    with pytest.raises(TransferFailedError) as voided:
        await service.void_pending_transfer(hold.id)
    assert voided.value.code == "pending_transfer_already_voided"
    assert await kinds(service, hold.id) == ["submitted", "pending", "voided"]


@one_store
async def test_resolving_an_unknown_or_overdrawn_hold_is_refused(service: LedgerService) -> None:
    book = await funded_book(service)
    with pytest.raises(TransferFailedError) as unknown:
        await service.post_pending_transfer(tb.id())
    assert unknown.value.code == "pending_transfer_not_found"
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 25))
    with pytest.raises(TransferFailedError) as too_much:
        await service.post_pending_transfer(hold.id, 26)
    assert too_much.value.code == "exceeds_pending_transfer_amount"
    with pytest.raises(ValidationError):
        await service.post_pending_transfer(0)
    with pytest.raises(ValidationError):
        await service.post_pending_transfer(hold.id, -1)


# -- batches -------------------------------------------------------------------------------------


async def test_create_transfers_returns_one_result_per_input_and_never_raises(
    service: LedgerService,
) -> None:
    book = await funded_book(service, alice=100)
    results = await service.create_transfers(
        [
            request(book.alice, book.bob, 30),
            request(book.alice, tb.id(), 1),
            request(book.alice, book.bob, 500),
            request(book.alice, book.bob, 20),
        ]
    )
    assert [r.status for r in results] == [
        "created",
        "credit_account_not_found",
        "exceeds_credits",
        "created",
    ]
    assert [r.ok for r in results] == [True, False, False, True]
    assert (await service.get_balance(book.bob)).posted == 50
    assert [await kinds(service, r.id) for r in results] == [
        ["submitted", "posted"],
        ["submitted", "failed"],
        ["submitted", "failed"],
        ["submitted", "posted"],
    ]


async def test_an_atomic_batch_is_all_or_nothing(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded_book(service, alice=100)
    results = await service.create_transfers(
        [request(book.alice, book.bob, 30), request(book.alice, book.bob, 500)], atomic=True
    )
    assert [r.status for r in results] == ["linked_event_failed", "exceeds_credits"]
    assert (await service.get_balance(book.bob)).posted == 0
    assert await ledger.client.lookup_transfers([r.id for r in results]) == []
    ok = await service.create_transfers(
        [request(book.alice, book.bob, 30), request(book.bob, book.alice, 10)], atomic=True
    )
    assert [r.status for r in ok] == ["created", "created"]
    chain = [await ledger.store.get_intent(r.id) for r in ok]
    assert [(i.chain_id, i.chain_index) for i in chain if i is not None] == [
        (ok[0].id, 0),
        (ok[0].id, 1),
    ]
    (first,) = await ledger.client.lookup_transfers([ok[0].id])
    assert first.flags & _TF.LINKED
    assert (await service.get_balance(book.bob)).posted == 20


async def test_an_atomic_batch_holds_at_most_one_request(service: LedgerService) -> None:
    book = await funded_book(service)
    with pytest.raises(ValidationError):
        await service.create_transfers(
            [request(book.alice, book.bob, 1)] * (BATCH_EVENTS_MAX + 1), atomic=True
        )


async def test_an_empty_batch_sends_nothing(service: LedgerService) -> None:
    before = service.batcher.stats.requests
    assert await service.create_transfers([]) == []
    assert await service.create_pending_transfers([], atomic=True) == []
    assert service.batcher.stats.requests == before


async def test_create_pending_transfers_books_holds_and_can_be_atomic(
    service: LedgerService,
) -> None:
    book = await funded_book(service, alice=100)
    holds = await service.create_pending_transfers(
        [request(book.alice, book.bob, 10, timeout=30), request(book.alice, book.bob, 20)]
    )
    assert [r.status for r in holds] == ["created", "created"]
    for hold in holds:
        assert await kinds(service, hold.id) == ["submitted", "pending"]
    assert (await service.get_balance(book.alice)).held == 30
    failed = await service.create_pending_transfers(
        [request(book.alice, book.bob, 10), request(book.alice, book.bob, 1_000)], atomic=True
    )
    assert [r.status for r in failed] == ["linked_event_failed", "exceeds_credits"]
    assert (await service.get_balance(book.alice)).held == 30


async def test_more_than_one_request_of_transfers_is_split_into_full_requests(
    service: LedgerService,
) -> None:
    book = await open_service_book(service)
    before = service.batcher.stats.requests
    count = BATCH_EVENTS_MAX + 3
    results = await service.create_transfers(
        [request(book.treasury, book.alice, 1, code=1)] * count
    )
    assert len(results) == count
    assert all(r.status == "created" for r in results)
    assert len({r.id for r in results}) == count
    assert service.batcher.stats.requests - before == 2
    assert service.batcher.stats.largest_request == BATCH_EVENTS_MAX
    assert (await service.get_balance(book.alice)).posted == count


# -- reads ---------------------------------------------------------------------------------------


@one_store
async def test_get_transfer_of_an_unknown_id_is_none(service: LedgerService) -> None:
    assert await service.get_transfer(tb.id()) is None
    assert await service.get_transfer_audit(tb.id()) == []


async def test_get_transfers_by_event_id_finds_every_transfer_of_an_event(
    service: LedgerService,
) -> None:
    book = await funded_book(service)
    results = await service.create_transfers(
        [
            request(book.alice, book.bob, 1, event_id="order-7"),
            request(book.alice, book.bob, 2, event_id="order-8"),
            request(book.bob, book.alice, 1, event_id="order-7"),
        ]
    )
    found = await service.get_transfers_by_event_id("order-7")
    assert [i.id for i in found] == [results[0].id, results[2].id]
    assert [i.amount for i in found] == [1, 1]
    assert await service.get_transfers_by_event_id("order-9") == []


@one_store
async def test_list_account_transfers_pages_forward_with_a_cursor(service: LedgerService) -> None:
    book = await funded_book(service)
    moved = [
        (await service.create_transfer(request(book.alice, book.bob, n))).id for n in (1, 2, 3, 4)
    ]
    expected = moved  # bob's transfers, oldest first
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = await service.list_account_transfers(book.bob, limit=3, cursor=cursor)
        pages += 1
        seen.extend(t.id for t in page.transfers)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected
    assert pages == 2
    # Alice's own deposit comes first in her history.
    alice_page = await service.list_account_transfers(hex(book.alice), limit=10)
    assert len(alice_page.transfers) == 5
    assert alice_page.next_cursor is None


@one_store
async def test_list_account_transfers_pages_newest_first_when_reversed(
    service: LedgerService,
) -> None:
    book = await funded_book(service)
    moved = [
        (await service.create_transfer(request(book.alice, book.bob, n))).id for n in (1, 2, 3)
    ]
    first = await service.list_account_transfers(book.bob, limit=2, reversed_=True)
    assert [t.id for t in first.transfers] == [moved[2], moved[1]]
    assert first.next_cursor is not None
    second = await service.list_account_transfers(
        book.bob, limit=2, cursor=first.next_cursor, reversed_=True
    )
    assert [t.id for t in second.transfers] == [moved[0]]
    assert second.next_cursor is None


@one_store
async def test_list_account_transfers_validates_its_arguments(service: LedgerService) -> None:
    book = await funded_book(service)
    with pytest.raises(ValidationError):
        await service.list_account_transfers(book.bob, limit=0)
    with pytest.raises(ValidationError):
        await service.list_account_transfers(book.bob, limit=BATCH_EVENTS_MAX + 1)
    with pytest.raises(ValidationError):
        await service.list_account_transfers(0)
    with pytest.raises(ValidationError):
        await service.list_account_transfers(book.bob, cursor=-1)
    empty = await service.list_account_transfers(tb.id())
    assert (empty.transfers, empty.next_cursor) == ([], None)


async def test_a_full_post_records_the_amount_actually_posted(service: LedgerService) -> None:
    book = await funded_book(service)
    posted: list[object] = []
    service.on("transfer_posted", lambda event: posted.append(event.data["amount"]))
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 25))
    await service.post_pending_transfer(hold.id)
    audit = await service.get_transfer_audit(hold.id)
    assert audit[-1].detail["amount"] == "25"
    assert posted == [25]
