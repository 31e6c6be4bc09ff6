"""Balance history, balances as of a time, activity and statements, on the twin and each store.

Every balance the service reports over time is the engine's own: the tests read the engine
behind the service's back (`get_account_balances`, `lookup_accounts`) and compare counter by
counter. The engine's clock is a `ManualClock`, so "between two transfers" is a real gap of
seconds the test chose.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import tigerbeetle as tb

from tbledger.errors import (
    AccountNotFoundError,
    HistoryNotKeptError,
    InvariantViolationError,
    LimitExceededError,
    ValidationError,
)
from tbledger.service import (
    BalancePoint,
    iso_time,
    timestamp_ns_of,
)
from tests.service.conftest import Ledger
from tests.service.helpers import DEPOSIT, deposit, one_store, request
from tests.support.book import ServiceBook, open_service_book

REFUND = 4


def _counters(point: BalancePoint) -> tuple[int, int, int, int]:
    b = point.balance
    return (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted)


async def _engine_history(ledger: Ledger, account_id: int) -> list[tb.AccountBalance]:
    flags = tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS
    return await ledger.client.get_account_balances(
        tb.AccountFilter(
            account_id=account_id,
            user_data_128=0,
            user_data_64=0,
            user_data_32=0,
            code=0,
            timestamp_min=0,
            timestamp_max=0,
            limit=8189,
            flags=flags,
        )
    )


async def _day(ledger: Ledger) -> tuple[ServiceBook, dict[str, int]]:
    """Alice's day, a second or more between steps: a deposit, a payment to Bob, a hold of 30
    posted in part (20), a hold of 5 voided. Returns the book and the transfers' ids."""
    service, clock = ledger.service, ledger.clock
    book = await open_service_book(service)
    clock.advance(10)
    ids = {"deposit": (await deposit(service, book, book.alice, 10_000)).id}
    clock.advance(10)
    ids["payment"] = (
        await service.create_transfer(
            request(book.alice, book.bob, 1250, event_id="order-1", metadata={"memo": "lunch"})
        )
    ).id
    clock.advance(10)
    ids["hold"] = (
        await service.create_pending_transfer(
            request(book.alice, book.bob, 3000, idempotency_key="auth-1")
        )
    ).id
    clock.advance(10)
    ids["capture"] = (await service.post_pending_transfer(ids["hold"], 2000)).id
    clock.advance(10)
    ids["hold2"] = (await service.create_pending_transfer(request(book.alice, book.bob, 500))).id
    clock.advance(10)
    ids["void"] = (await service.void_pending_transfer(ids["hold2"])).id
    clock.advance(10)
    return book, ids


# -- balance history ------------------------------------------------------------------------------


async def test_each_point_is_the_engines_balance_after_its_transfer(ledger: Ledger) -> None:
    book, ids = await _day(ledger)
    service = ledger.service
    history = await service.balance_history(book.alice)
    (account,) = await ledger.client.lookup_accounts([book.alice])

    opening, *points = history.points
    assert opening.transfer is None and opening.kind is None
    assert opening.timestamp_ns == account.timestamp
    assert _counters(opening) == (0, 0, 0, 0)

    engine = await _engine_history(ledger, book.alice)
    assert [p.timestamp_ns for p in points] == [b.timestamp for b in engine]
    for point, row in zip(points, engine, strict=True):
        assert _counters(point) == (
            row.debits_pending,
            row.debits_posted,
            row.credits_pending,
            row.credits_posted,
        )
        assert point.transfer is not None and point.transfer.timestamp == point.timestamp_ns
    assert [p.transfer.id for p in points if p.transfer] == [
        ids[k] for k in ("deposit", "payment", "hold", "capture", "hold2", "void")
    ]
    assert [p.kind for p in points] == ["single", "single", "pending", "post", "pending", "void"]
    assert [p.direction for p in points] == ["credit", "debit", "debit", "debit", "debit", "debit"]
    # Alice's wallet is credit-normal: what she holds, holds deducted (DESIGN §5).
    assert [(p.balance.posted, p.balance.available, p.balance.held) for p in points] == [
        (10_000, 10_000, 0),
        (8_750, 8_750, 0),
        (8_750, 5_750, 3_000),
        (6_750, 6_750, 0),
        (6_750, 6_250, 500),
        (6_750, 6_750, 0),
    ]
    last = points[-1].balance
    assert (last.debits_posted, last.credits_posted, last.debits_pending) == (
        account.debits_posted,
        account.credits_posted,
        account.debits_pending,
    )
    assert history.next_cursor is None


async def test_a_debit_normal_account_reads_on_its_own_side(ledger: Ledger) -> None:
    book = await open_service_book(ledger.service)
    await deposit(ledger.service, book, book.alice, 700)
    await deposit(ledger.service, book, book.bob, 300)
    history = await ledger.service.balance_history(book.treasury)
    assert history.normal_side.value == "debit"
    assert [p.balance.posted for p in history.points] == [0, 700, 1000]


@one_store
async def test_pages_put_together_are_the_whole_history(ledger: Ledger) -> None:
    book, _ = await _day(ledger)
    service = ledger.service
    whole = (await service.balance_history(book.alice)).points
    for reversed_ in (False, True):
        for limit in (1, 2, 3, 7):
            pages: list[BalancePoint] = []
            cursor = None
            for _ in range(20):
                page = await service.balance_history(
                    book.alice, limit=limit, cursor=cursor, reversed_=reversed_
                )
                assert len(page.points) <= limit
                pages.extend(page.points)
                cursor = page.next_cursor
                if cursor is None:
                    break
            expected = whole[::-1] if reversed_ else whole
            assert [p.timestamp_ns for p in pages] == [p.timestamp_ns for p in expected], (
                reversed_,
                limit,
            )


@one_store
async def test_a_window_is_start_included_end_excluded(ledger: Ledger) -> None:
    book, _ = await _day(ledger)
    whole = (await ledger.service.balance_history(book.alice)).points
    start, end = whole[2].timestamp_ns, whole[5].timestamp_ns
    window = await ledger.service.balance_history(book.alice, start=start, end=end)
    assert [p.timestamp_ns for p in window.points] == [p.timestamp_ns for p in whole[2:5]]
    # ISO times name the same instants, to the nanosecond.
    same = await ledger.service.balance_history(
        book.alice, start=iso_time(start), end=iso_time(end)
    )
    assert same.points == window.points
    empty = await ledger.service.balance_history(book.alice, start=end, end=start)
    assert empty.points == [] and empty.next_cursor is None


# -- balance as of a time -------------------------------------------------------------------------


async def test_as_of_between_transfers_is_the_earlier_point(ledger: Ledger) -> None:
    book, ids = await _day(ledger)
    service = ledger.service
    points = (await service.balance_history(book.alice)).points
    payment, hold = points[2], points[3]
    assert payment.transfer is not None and payment.transfer.id == ids["payment"]
    between = (payment.timestamp_ns + hold.timestamp_ns) // 2
    found = await service.balance_as_of(book.alice, as_of=between)
    assert found.existed and found.point == payment
    assert found.balance is not None and found.balance.posted == 8_750
    # At a transfer's own timestamp, that transfer counts; one nanosecond before, it does not.
    assert (await service.balance_as_of(book.alice, as_of=hold.timestamp_ns)).point == hold
    just_before = await service.balance_as_of(book.alice, as_of=hold.timestamp_ns - 1)
    assert just_before.point == payment
    # An ISO 8601 time, with an offset or without one (UTC), or an aware datetime.
    assert (await service.balance_as_of(book.alice, as_of=iso_time(between))).point == payment
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=between // 1000)
    assert (await service.balance_as_of(book.alice, as_of=moment)).point == payment
    # Long after the last transfer: the current balance.
    now = await service.balance_as_of(book.alice, as_of=ledger.clock() + 10**12)
    current = await service.get_balance(book.alice)
    assert now.balance is not None
    assert (now.balance.posted, now.balance.available) == (current.posted, current.available)


async def test_zero_before_the_first_transfer_and_nothing_before_creation(ledger: Ledger) -> None:
    book, _ = await _day(ledger)
    (account,) = await ledger.client.lookup_accounts([book.alice])
    opened = await ledger.service.balance_as_of(book.alice, as_of=account.timestamp)
    assert opened.existed and opened.posted == 0 and opened.point is not None
    assert opened.point.transfer is None and _counters(opened.point) == (0, 0, 0, 0)
    later = await ledger.service.balance_as_of(book.alice, as_of=account.timestamp + 5)
    assert later.existed and later.posted == 0
    before = await ledger.service.balance_as_of(book.alice, as_of=account.timestamp - 1)
    assert not before.existed and before.balance is None and before.posted == 0
    assert before.opened_at_ns == account.timestamp
    ancient = await ledger.service.balance_as_of(book.alice, as_of="2000-01-01T00:00:00+01:00")
    assert not ancient.existed
    assert ancient.as_of_ns == timestamp_ns_of("1999-12-31T23:00:00Z")


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1", 1),
        ("1970-01-01T00:00:01Z", 10**9),
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("1970-01-01T00:00:01.000000001Z", 1_000_000_001),
        ("1970-01-01T02:00:00+01:00", 3600 * 10**9),
        ("1970-01-02", 86_400 * 10**9),
        ("1970-01-01 00:00:02", 2 * 10**9),
    ],
)
def test_times_are_read_to_the_nanosecond(text: str, ns: int) -> None:
    assert timestamp_ns_of(text) == ns
    assert timestamp_ns_of(iso_time(ns)) == ns


@pytest.mark.parametrize(
    "bad",
    ["0", "1970-01-01T00:00:00Z", "yesterday", "2026-13-01", "1970-01-01T00:00:01.0000000001Z", -5],
)
def test_times_out_of_range_or_malformed_are_refused(bad: Any) -> None:
    with pytest.raises(ValidationError):
        timestamp_ns_of(bad)
    with pytest.raises(ValidationError):
        timestamp_ns_of(datetime(2026, 1, 1))  # naive: which zone?


# -- accounts without history ---------------------------------------------------------------------


@one_store
async def test_an_account_without_history_says_so(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    anchor = await service.create_account(owner_id=None, account_type="anchor", ledger=1)
    (engine,) = await ledger.client.lookup_accounts([anchor.id])
    assert not engine.flags & tb.AccountFlags.HISTORY
    moved = await service.create_transfer(request(book.treasury, anchor.id, 10, code=DEPOSIT))
    assert moved.timestamp is not None
    # Nor has the change stream recorded its balances (tests/service/test_changes.py).
    for read in (
        service.balance_history(anchor.id),
        service.balance_as_of(anchor.id, as_of=moved.timestamp),
        service.statement(anchor.id, start=1, end=moved.timestamp + 1),
    ):
        with pytest.raises(HistoryNotKeptError) as refused:
            await read
        assert refused.value.code == "history_not_kept"
    # Its activity needs no history.
    page = await service.account_activity(anchor.id)
    assert [e.transfer.amount for e in page.entries] == [10]
    with pytest.raises(AccountNotFoundError):
        await service.balance_history(0x77)


# -- activity -------------------------------------------------------------------------------------


async def test_activity_joins_the_store(ledger: Ledger) -> None:
    book, ids = await _day(ledger)
    page = await ledger.service.account_activity(book.alice)
    assert [e.transfer.id for e in page.entries] == [
        ids[k] for k in ("deposit", "payment", "hold", "capture", "hold2", "void")
    ]
    by_id = {e.transfer.id: e for e in page.entries}
    payment = by_id[ids["payment"]]
    assert payment.direction == "debit" and payment.counterparty_id == book.bob
    assert payment.counterparty is not None and payment.counterparty.owner_id == "bob"
    assert payment.intent is not None and payment.intent.event_id == "order-1"
    assert payment.status == "posted" and payment.description == "lunch"
    deposit_entry = by_id[ids["deposit"]]
    assert deposit_entry.direction == "credit" and deposit_entry.counterparty_id == book.treasury
    hold = by_id[ids["hold"]]
    assert (hold.kind, hold.status, hold.captured_amount) == ("pending", "posted", 2000)
    assert hold.intent is not None and hold.intent.idempotency_key == "auth-1"
    hold2 = by_id[ids["hold2"]]
    assert (hold2.status, hold2.captured_amount) == ("voided", None)
    assert by_id[ids["capture"]].kind == "post" and by_id[ids["void"]].kind == "void"


@one_store
async def test_activity_filters_and_pages(ledger: Ledger) -> None:
    service, clock = ledger.service, ledger.clock
    book = await open_service_book(service, owners=("alice", "bob", "carol"))
    await deposit(service, book, book.alice, 10_000)
    carol = book.users["carol"]
    legs = [request(book.alice, book.bob if i % 3 else carol, 10 + i) for i in range(12)]
    control = [{"flow": "payroll", "leg": "salary"} if i % 2 else {} for i in range(12)]
    await service.create_transfers(legs, control=control)
    clock.advance(1)
    await service.create_transfer(request(book.bob, book.alice, 5, code=REFUND))

    everything = (await service.account_activity(book.alice)).entries
    assert len(everything) == 14
    to_carol = await service.account_activity(book.alice, counterparty_id=carol)
    assert [e.transfer.amount for e in to_carol.entries] == [10, 13, 16, 19]
    payroll = await service.account_activity(book.alice, flow="payroll")
    assert [e.transfer.amount for e in payroll.entries] == [11, 13, 15, 17, 19, 21]
    assert {(e.flow, e.leg, e.description) for e in payroll.entries} == {
        ("payroll", "salary", "payroll: salary")
    }
    refunds = await service.account_activity(book.alice, code=REFUND)
    assert [(e.direction, e.transfer.amount) for e in refunds.entries] == [("credit", 5)]
    deposits = await service.account_activity(book.alice, code=DEPOSIT, status="posted")
    assert len(deposits.entries) == 1
    assert (await service.account_activity(book.alice, status="voided")).entries == []
    last = everything[-1].timestamp_ns
    assert [
        e.timestamp_ns for e in (await service.account_activity(book.alice, start=last)).entries
    ] == [last]

    # Filtered pages put together are the filtered whole, both ways.
    for reversed_ in (False, True):
        seen: list[int] = []
        cursor = None
        for _ in range(20):
            page = await service.account_activity(
                book.alice, flow="payroll", limit=4, cursor=cursor, reversed_=reversed_
            )
            assert len(page.entries) <= 4
            seen.extend(e.transfer.amount for e in page.entries)
            cursor = page.next_cursor
            if cursor is None:
                break
        expected = [11, 13, 15, 17, 19, 21]
        assert seen == (expected[::-1] if reversed_ else expected)

    with pytest.raises(ValidationError):
        await service.account_activity(book.alice, status="nonsense")
    with pytest.raises(ValidationError):
        await service.account_activity(book.alice, code=0)
    with pytest.raises(AccountNotFoundError):
        await service.account_activity(0x99)


@one_store
async def test_an_expired_hold_reads_expired(ledger: Ledger) -> None:
    service, clock = ledger.service, ledger.clock
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 40, timeout=5))
    clock.advance(6)
    assert await service.expire_holds() == 1
    (entry,) = (await service.account_activity(book.alice, status="expired")).entries
    assert entry.transfer.id == hold.id and entry.captured_amount is None
    # The expiry moved nothing posted; the engine keeps no point for it (no transfer), so the
    # history's last point still shows the hold, and the current balance does not.
    points = (await service.balance_history(book.alice)).points
    assert (points[-1].balance.posted, points[-1].balance.held) == (100, 40)
    assert (await service.get_balance(book.alice)).held == 0


# -- statements -----------------------------------------------------------------------------------


async def test_statement_opening_plus_lines_is_closing(ledger: Ledger) -> None:
    book, ids = await _day(ledger)
    service = ledger.service
    points = (await service.balance_history(book.alice)).points
    start, end = points[2].timestamp_ns, points[5].timestamp_ns  # payment .. before hold2
    statement = await service.statement(book.alice, start=start, end=end)
    assert statement.opening.posted == 10_000 and statement.closing.posted == 6_750
    assert [line.transfer.id for line in statement.lines] == [
        ids["payment"],
        ids["hold"],
        ids["capture"],
    ]
    assert [(line.change, line.balance) for line in statement.lines] == [
        (-1250, 8750),
        (0, 8750),
        (-2000, 6750),
    ]
    assert statement.opening.posted + sum(line.change for line in statement.lines) == (
        statement.closing.posted
    )
    assert (statement.total_in, statement.total_out) == (0, 3250)
    assert statement.lines[0].description == "lunch"
    assert statement.lines[0].counterparty is not None
    assert statement.lines[0].counterparty.id == book.bob

    # Consecutive periods chain: one's closing is the next one's opening.
    whole = await service.statement(book.alice, start=1, end=ledger.clock() + 1)
    first = await service.statement(book.alice, start=1, end=start)
    second = await service.statement(book.alice, start=start, end=ledger.clock() + 1)
    assert first.closing.posted == second.opening.posted == 10_000
    assert len(first.lines) + len(second.lines) == len(whole.lines) == 6
    assert whole.opening.posted == 0 and whole.closing.posted == 6_750
    # Before the account existed: no opening balance (zero), nothing in it.
    (account,) = await ledger.client.lookup_accounts([book.alice])
    empty = await service.statement(book.alice, start=1, end=account.timestamp)
    assert not empty.opening.existed and not empty.closing.existed and empty.lines == []
    with pytest.raises(ValidationError):
        await service.statement(book.alice, start=end, end=start)


@one_store
async def test_a_line_the_engine_contradicts_is_an_invariant_violation(ledger: Ledger) -> None:
    book, _ = await _day(ledger)
    real = ledger.client.get_account_balances

    async def skewed(filter_: tb.AccountFilter) -> list[tb.AccountBalance]:
        rows = await real(filter_)
        return [dataclasses.replace(r, credits_posted=r.credits_posted + 1) for r in rows]

    async with ledger.open_service(engine=_Patched(ledger.client, skewed)) as other:
        # Checked with explicit raises, so `python -O` keeps them.
        with pytest.raises(InvariantViolationError):
            await other.statement(book.alice, start=1, end=ledger.clock() + 1)


@one_store
async def test_a_statement_too_long_is_refused(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    book, _ = await _day(ledger)
    monkeypatch.setattr("tbledger.service._history.STATEMENT_LINES_MAX", 4)
    with pytest.raises(LimitExceededError):
        await ledger.service.statement(book.alice, start=1, end=ledger.clock() + 1)
    short = await ledger.service.statement(
        book.alice,
        start=1,
        end=(await ledger.service.balance_history(book.alice)).points[4].timestamp_ns,
    )
    assert len(short.lines) == 3


class _Patched:
    """The engine client with `get_account_balances` replaced."""

    def __init__(self, client: Any, balances: Any) -> None:
        self._client = client
        self.get_account_balances = balances

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
