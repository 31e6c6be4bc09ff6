"""A day of mixed flows, random but seeded, then the books are checked from both sides.

Thousands of operations over 50 users and 10 merchants on USD and EUR (and the three obligation
ledgers): deposits, withdrawals, payments with fees, refunds, anchor holds (fulfilled, released,
timed out), escrow, settlements and their reversals, exchanges, freezes, replays, and time passing.
Refusals (insufficient funds, frozen accounts, over-refunds, short liquidity, expired holds) are
expected along the way; any other error fails the test. Afterwards:

* every ledger's debits equal its credits, posted and pending (the engine's counters);
* no user or merchant balance was ever negative (checked after every operation) or is now;
* every account's four counters equal an independent recomputation from the audit trail (the
  store's intents and their latest events, read straight from its tables);
* every hold ended posted, voided or expired.
"""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
import tigerbeetle as tb

from tbledger.errors import TransferFailedError, ValidationError
from tbledger.flows import (
    AnchorAuthorization,
    AnchorFulfillment,
    AnchorRelease,
    FlowResult,
    SpendEngine,
)
from tbledger.store import EventKind
from tbledger.store.tables import audit_events, transfers
from tests.flows.conftest import World
from tests.support.filters import query_filter

# The seed and the length of the day; override them to explore (the defaults keep this test
# well under a minute per store: every operation is a few store writes).
SEED = int(os.environ.get("TBLEDGER_FLOWS_DAY_SEED", "20240611"))
OPERATIONS = int(os.environ.get("TBLEDGER_FLOWS_DAY_OPERATIONS", "2000"))
USERS = 50
MERCHANTS = 10
LEDGERS = ("USD", "EUR")
OBLIGATIONS = ("grocery", "utility", "fuel")
TIMEOUTS_S = (30, 120, 600, 3_600)
RATES = {("USD", "EUR"): ("0.9", "0.915", "0.87"), ("EUR", "USD"): ("1.1", "1.0825", "1.13")}

# Operation kinds and how often each is drawn.
WEIGHTS = {
    "deposit": 10,
    "withdraw": 7,
    "pay": 24,
    "refund": 8,
    "authorize": 8,
    "fulfill": 5,
    "release": 3,
    "escrow_lock": 6,
    "escrow_release": 4,
    "escrow_void": 3,
    "settle": 3,
    "reverse": 2,
    "exchange": 6,
    "freeze": 2,
    "replay": 5,
    "tick": 4,
}

_F = tb.TransferFlags


@dataclass
class Day:
    """The scenario's memory of what exists, used only to choose the next operation."""

    world: World
    rng: random.Random
    users: dict[str, list[int]] = field(default_factory=dict)  # ledger -> accounts
    merchants: dict[str, list[int]] = field(default_factory=dict)
    payments: list[str] = field(default_factory=list)
    authorizations: list[AnchorAuthorization] = field(default_factory=list)
    contracts: list[str] = field(default_factory=list)
    settlements: list[int] = field(default_factory=list)
    done: list[tuple[Callable[[], Awaitable[FlowResult]], FlowResult]] = field(default_factory=list)
    frozen: set[int] = field(default_factory=set)
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    step: int = 0
    chosen: AnchorAuthorization | None = None  # the authorization the current step acts on

    @property
    def spend(self) -> SpendEngine:
        return self.world.spend

    def key(self) -> str:
        return f"op-{self.step}"

    def user(self, ledger: str) -> int:
        return self.rng.choice(self.users[ledger])

    def merchant(self, ledger: str) -> int:
        return self.rng.choice(self.merchants[ledger])

    def ledger(self) -> str:
        return self.rng.choice(LEDGERS)

    def minor(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    # One method per operation kind; each returns the call to make (for replays) or None.

    def op_deposit(self) -> Callable[[], Awaitable[FlowResult]]:
        ledger, key = self.ledger(), self.key()
        account, amount = self.user(ledger), self.minor(100, 50_000)
        return lambda: self.spend.deposit(
            account=account, amount=amount, ledger=ledger, idempotency_key=key
        )

    def op_withdraw(self) -> Callable[[], Awaitable[FlowResult]]:
        ledger, key = self.ledger(), self.key()
        account, amount = self.user(ledger), self.minor(100, 20_000)
        return lambda: self.spend.withdraw(
            account=account, amount=amount, ledger=ledger, idempotency_key=key
        )

    def op_pay(self) -> Callable[[], Awaitable[FlowResult]]:
        ledger, key = self.ledger(), self.key()
        payer, merchant = self.user(ledger), self.merchant(ledger)
        amount = self.minor(50, 15_000)
        fee = self.rng.choice((0, amount // 100, amount // 40))
        fee_payer = self.rng.choice(("payer", "merchant"))
        payment_id = f"pay-{self.step}"
        self.payments.append(payment_id)
        return lambda: self.spend.pay(
            payer=payer,
            merchant=merchant,
            amount=amount,
            ledger=ledger,
            fee=fee,
            fee_payer=fee_payer,
            idempotency_key=key,
            payment_id=payment_id,
        )

    def op_refund(self) -> Callable[[], Awaitable[FlowResult]] | None:
        if not self.payments:
            return None
        payment_id, key = self.rng.choice(self.payments), self.key()
        amount = None if self.rng.random() < 0.3 else self.minor(10, 8_000)
        return lambda: self.spend.refund(payment_id=payment_id, amount=amount, idempotency_key=key)

    def op_authorize(self) -> Callable[[], Awaitable[FlowResult]]:
        user, key = self.user("USD"), self.key()
        amount, timeout = self.minor(100, 10_000), self.rng.choice(TIMEOUTS_S)
        obligation = self.rng.choice(OBLIGATIONS)
        return lambda: self.spend.authorize_anchor(
            user=user, amount=amount, obligation=obligation, timeout_s=timeout, idempotency_key=key
        )

    def forget(self, auth: AnchorAuthorization | None) -> None:
        """An authorization that has ended is no longer chosen for fulfillment or release."""
        self.authorizations = [a for a in self.authorizations if a is not auth]

    def op_fulfill(self) -> Callable[[], Awaitable[FlowResult]] | None:
        if not self.authorizations:
            return None
        auth, key = self.rng.choice(self.authorizations), self.key()
        self.chosen = auth
        amount = None if self.rng.random() < 0.5 else self.minor(1, auth.amount)
        return lambda: self.spend.fulfill_anchor(
            authorization=auth, amount=amount, idempotency_key=key
        )

    def op_release(self) -> Callable[[], Awaitable[FlowResult]] | None:
        if not self.authorizations:
            return None
        auth, key = self.rng.choice(self.authorizations), self.key()
        self.chosen = auth
        return lambda: self.spend.release_anchor(authorization=auth, idempotency_key=key)

    def op_escrow_lock(self) -> Callable[[], Awaitable[FlowResult]]:
        user, key = self.user("USD"), self.key()
        contract_id = f"contract-{self.step}"
        self.contracts.append(contract_id)
        amount = self.minor(100, 8_000)
        return lambda: self.spend.escrow_lock(
            contract_id=contract_id, payer=user, amount=amount, ledger="USD", idempotency_key=key
        )

    def op_escrow_release(self) -> Callable[[], Awaitable[FlowResult]] | None:
        if not self.contracts:
            return None
        contract_id, merchant, key = (
            self.rng.choice(self.contracts),
            self.merchant("USD"),
            self.key(),
        )
        amount = None if self.rng.random() < 0.5 else self.minor(10, 5_000)
        return lambda: self.spend.escrow_release(
            contract_id=contract_id, merchant=merchant, amount=amount, idempotency_key=key
        )

    def op_escrow_void(self) -> Callable[[], Awaitable[FlowResult]] | None:
        if not self.contracts:
            return None
        contract_id, key = self.rng.choice(self.contracts), self.key()
        amount = None if self.rng.random() < 0.5 else self.minor(10, 5_000)
        return lambda: self.spend.escrow_void(
            contract_id=contract_id, amount=amount, idempotency_key=key
        )

    def op_settle(self) -> Callable[[], Awaitable[FlowResult]]:
        ledger, key = self.ledger(), self.key()
        merchant = self.merchant(ledger)
        return lambda: self.spend.settle_merchant(
            merchant=merchant, ledger=ledger, idempotency_key=key
        )

    def op_reverse(self) -> Callable[[], Awaitable[FlowResult]] | None:
        if not self.settlements:
            return None
        settlement_id = self.rng.choice(self.settlements)
        return lambda: self.spend.reverse_settlement(settlement_id=settlement_id)

    def op_exchange(self) -> Callable[[], Awaitable[FlowResult]]:
        source, target = self.rng.sample(LEDGERS, 2)
        index = self.rng.randrange(USERS)
        source_id, target_id = self.users[source][index], self.users[target][index]
        amount, rate = self.minor(100, 10_000), self.rng.choice(RATES[(source, target)])
        key = self.key()
        return lambda: self.spend.exchange(
            source=source_id,
            target=target_id,
            amount=amount,
            source_ledger=source,
            target_ledger=target,
            rate=rate,
            idempotency_key=key,
        )

    def op_replay(self) -> Callable[[], Awaitable[FlowResult]] | None:
        if not self.done:
            return None
        call, original = self.rng.choice(self.done)

        async def replay() -> FlowResult:
            again = await call()
            assert again.replayed, f"step {self.step}: a replay moved money"
            assert again.transfer_ids == original.transfer_ids
            return again

        return replay

    async def freeze_or_unfreeze(self) -> None:
        ledger = self.ledger()
        account = self.user(ledger) if self.rng.random() < 0.7 else self.merchant(ledger)
        if account in self.frozen:
            await self.world.unfreeze(account)
            self.frozen.discard(account)
        elif len(self.frozen) < 4:
            await self.world.freeze(account)
            self.frozen.add(account)

    async def tick(self) -> None:
        self.world.clock.advance(self.rng.randint(1, 90))
        self.outcomes["expired"] += await self.spend.expire_holds()

    async def run_one(self) -> None:
        kind = self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        self.chosen = None
        if kind == "freeze":
            await self.freeze_or_unfreeze()
            return
        if kind == "tick":
            await self.tick()
            return
        call = getattr(self, f"op_{kind}")()
        if call is None:
            return
        try:
            result = await call()
        except (TransferFailedError, ValidationError) as exc:
            # Expected refusals: funds, freezes, over-refunds, liquidity, expired holds, empty
            # escrows. Anything else is a failure of the test.
            self.outcomes[f"{kind}:{type(exc).__name__}"] += 1
            if getattr(exc, "code", "") == "pending_transfer_expired":
                self.forget(self.chosen)
            return
        self.outcomes[kind] += 1
        if isinstance(result, AnchorFulfillment | AnchorRelease):
            self.forget(self.chosen)
        if result.transfers and kind != "replay":
            self.done.append((call, result))
        if isinstance(result, AnchorAuthorization):
            self.authorizations.append(result)
        settlement_id = getattr(result, "settlement_id", None)
        if kind == "settle" and settlement_id is not None:
            self.settlements.append(settlement_id)

    async def check_no_holder_is_overdrawn(self) -> None:
        """Users and merchants never go negative: what the engine's flag guarantees, checked."""
        ids = [a for accounts in (*self.users.values(), *self.merchants.values()) for a in accounts]
        for account in await self.world.client.lookup_accounts(ids):
            spent = account.debits_posted + account.debits_pending
            assert account.credits_posted >= spent, f"step {self.step}: {account.id:#x} overdrawn"


async def open_day(world: World, rng: random.Random) -> Day:
    day = Day(world, rng)
    spend = world.spend
    await spend.ensure_system_accounts()
    for ledger in LEDGERS:
        day.users[ledger] = [
            (await spend.open_account(f"user-{n}", ledger=ledger)).id for n in range(USERS)
        ]
        day.merchants[ledger] = [
            (await spend.open_account(f"merchant-{n}", ledger=ledger, account_type="merchant")).id
            for n in range(MERCHANTS)
        ]
        for account in day.users[ledger]:
            await spend.deposit(account=account, amount=rng.randint(10_000, 200_000), ledger=ledger)
        await spend.fund_liquidity(amount=5_000_000, ledger=ledger)
    return day


async def end_of_day(day: Day) -> None:
    """Unfreeze everyone (voiding the freeze holds) and let every open hold time out."""
    for account in sorted(day.frozen):
        await day.world.unfreeze(account)
    day.frozen.clear()
    day.world.clock.advance(max(TIMEOUTS_S) + 1)
    day.outcomes["expired"] += await day.spend.expire_holds()


async def engine_accounts(world: World) -> list[tb.Account]:
    """Every account of the engine, ledger by ledger, paged by timestamp."""
    found: list[tb.Account] = []
    for ledger in world.spend.chart.ledgers:
        timestamp_min = 0
        while True:
            page = await world.client.query_accounts(
                query_filter(ledger=ledger.code, timestamp_min=timestamp_min, limit=8189)
            )
            found.extend(page)
            if len(page) < 8189:
                break
            timestamp_min = page[-1].timestamp + 1
    return found


async def audit_trail(world: World) -> tuple[list[Any], dict[int, tuple[EventKind, int | None]]]:
    """Every intent, the kind of its latest audit event and the amount the engine moved when the
    request only bounded it (a balancing transfer), straight from the store's tables."""
    async with world.store.engine.connect() as conn:
        intents = list((await conn.execute(sa.select(transfers))).all())
        latest_seq = (
            sa.select(audit_events.c.transfer_id, sa.func.max(audit_events.c.seq).label("seq"))
            .where(audit_events.c.transfer_id.is_not(None))
            .group_by(audit_events.c.transfer_id)
            .subquery()
        )
        rows = (
            await conn.execute(
                sa.select(
                    audit_events.c.transfer_id, audit_events.c.kind, audit_events.c.detail
                ).join(latest_seq, audit_events.c.seq == latest_seq.c.seq)
            )
        ).all()
    return intents, {
        int(row.transfer_id): (
            EventKind(row.kind),
            int(row.detail["amount"]) if "amount" in (row.detail or {}) else None,
        )
        for row in rows
    }


def recompute(
    intents: list[Any], latest: dict[int, tuple[EventKind, int | None]]
) -> dict[int, list[int]]:
    """Each account's [debits_pending, debits_posted, credits_pending, credits_posted], rebuilt
    from the audit trail alone: a plain transfer counts when its latest event is posted, a hold
    while it is pending, and a post (partial or whole) moves its hold's accounts."""
    counters: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    by_id = {int(row.id): row for row in intents}
    for row in intents:
        flags, (kind, moved) = int(row.flags), latest.get(int(row.id), (None, None))
        if flags & _F.POST_PENDING_TRANSFER:
            if kind is EventKind.POSTED:
                hold = by_id[int(row.pending_id)]
                amount = int(hold.amount) if int(row.amount) == tb.AMOUNT_MAX else int(row.amount)
                counters[int(hold.debit_account_id)][1] += amount
                counters[int(hold.credit_account_id)][3] += amount
        elif flags & _F.VOID_PENDING_TRANSFER:
            continue
        elif flags & _F.PENDING:
            if kind is EventKind.PENDING:
                counters[int(row.debit_account_id)][0] += int(row.amount)
                counters[int(row.credit_account_id)][2] += int(row.amount)
        elif kind is EventKind.POSTED:
            amount = int(row.amount) if moved is None else moved
            counters[int(row.debit_account_id)][1] += amount
            counters[int(row.credit_account_id)][3] += amount
    return counters


@pytest.mark.slow
async def test_a_day_of_mixed_flows_keeps_the_books(world: World) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    day = await open_day(world, rng)
    for step in range(OPERATIONS):
        day.step = step
        await day.run_one()
        await day.check_no_holder_is_overdrawn()
    await end_of_day(day)

    # Every kind of operation happened, and so did the expected refusals.
    for kind in WEIGHTS:
        if kind not in ("freeze", "tick"):
            assert day.outcomes[kind] > 0, (kind, dict(day.outcomes))
    assert day.outcomes["expired"] > 0
    for refusal in (
        "withdraw:InsufficientBalanceError",
        "refund:RefundExceedsPaymentError",
        "fulfill:TransferFailedError",
    ):
        assert day.outcomes[refusal] > 0, (refusal, dict(day.outcomes))

    accounts = await engine_accounts(world)
    # Every ledger's debits equal its credits, posted and pending.
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for a in accounts:
        t = totals[a.ledger]
        t[0] += a.debits_posted
        t[1] += a.credits_posted
        t[2] += a.debits_pending
        t[3] += a.credits_pending
    for ledger, (debits, credits, debits_pending, credits_pending) in totals.items():
        assert debits == credits, ledger
        assert debits_pending == credits_pending == 0, ledger  # every hold has ended
    usd, eur = totals[1], totals[2]
    assert usd[0] > 0 and eur[0] > 0

    # No user or merchant balance is negative.
    await day.check_no_holder_is_overdrawn()

    # Every balance equals an independent recomputation from the audit trail.
    intents, latest = await audit_trail(world)
    expected = recompute(intents, latest)
    for a in accounts:
        counters = [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]
        assert counters == expected.get(a.id, [0, 0, 0, 0]), f"{a.id:#x}"
    assert set(expected) <= {a.id for a in accounts}

    # Every hold ended as posted, voided or expired.
    holds = [row for row in intents if int(row.flags) & _F.PENDING]
    assert len(holds) > 100
    ended = {EventKind.POSTED, EventKind.VOIDED, EventKind.EXPIRED}
    kinds = {transfer_id: kind for transfer_id, (kind, _) in latest.items()}
    unresolved = [row for row in holds if kinds.get(int(row.id)) not in ended]
    # A hold refused by the engine never existed; only holds that were created must end.
    assert all(kinds.get(int(row.id)) is EventKind.FAILED for row in unresolved)
    assert {kinds[int(row.id)] for row in holds} >= ended

    elapsed = time.monotonic() - started
    print(f"{OPERATIONS} operations in {elapsed:.1f} s: {dict(sorted(day.outcomes.items()))}")
