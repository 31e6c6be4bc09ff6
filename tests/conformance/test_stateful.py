"""Stateful property test of the twin: random batches, and TigerBeetle's invariants after each.

Hypothesis drives a `LedgerMachine` over an in-memory twin whose clock only moves when a rule
says so (`ManualClock`). Its rules submit random batches that mix valid and invalid events
(accounts with limit and history flags in a few ledgers; single-phase, pending, post (full,
partial, AMOUNT_MAX), void, balancing and closing transfers; linked chains, including ones that
fail; duplicate ids, unknown accounts, bad fields), read accounts back, and advance the clock past
pending timeouts.

Every check uses only what a client can observe: create results, `lookup_*`, `query_*`,
`get_account_*`. After each batch:

* there is one result per event; an id is stored iff it was stored before or an event of the
  batch was `created` (an `exists*` result names a stored object, except a duplicate inside a
  chain that the duplicate itself rolled back);
* a pending transfer is posted or voided at most once, and never at or after its expiry;
* replaying the batch's `created` transfers in order from the balances before it (a created event
  saw exactly the effects of the created events before it), each recorded amount is what
  TigerBeetle's rules make of the requested one (balancing clamps, post with AMOUNT_MAX or a
  partial amount, void), no transfer touches an account closed at that point, and no account
  passes its limit at any point;
* a batch that is one linked chain is all-or-nothing: when no member is `created`, no account
  balance or flag changed.

After every step (invariants):

* per ledger, Σ debits_posted = Σ credits_posted and Σ debits_pending = Σ credits_pending;
* no account is past its `debits_must_not_exceed_credits` / `credits_must_not_exceed_debits`
  bound;
* every balance is what the stored transfers imply: posted = single-phase transfers plus posts,
  pending = pending transfers neither posted, voided nor expired; an account is closed iff it was
  created closed or such a live pending transfer closes it.

The twin's own `check_invariants()` runs too, as a second opinion from the inside.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Collection, Sequence
from typing import Any

import tigerbeetle as tb
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tbledger.embedded import ClientSync, ManualClock
from tests.conformance.randomized import (
    A_CLOSED,
    A_HISTORY,
    ACCOUNT_EXISTS,
    ACCOUNT_KINDS,
    AMOUNT_MAX,
    AS,
    QUERY_LIMIT_MAX,
    T_CLOSING_CREDIT,
    T_CLOSING_DEBIT,
    T_PENDING,
    T_POST,
    T_VOID,
    TRANSFER_EXISTS,
    TRANSFER_KINDS,
    TS,
    Workload,
    chain_of,
)
from tests.support.filters import account_filter, query_filter

NS = 1_000_000_000
LEDGERS = (1, 2, 3)  # the last is the "whale" ledger, where amounts near 2^128 overflow
TAG = 1 << 100
START_NS = 1_750_000_000 * NS
# Every clock advance adds this odd offset, so that a pending transfer's expiry (its creation slot
# plus whole seconds) never lands within the few nanoseconds that separate two operations: a
# rule's "before" and "after" reads then never straddle an expiry.
ADVANCE_OFFSET_NS = 1_234_567

seeds = st.integers(0, 2**32 - 1)


def query_all(client: ClientSync, ledger: int) -> list[tb.Account]:
    return client.query_accounts(query_filter(ledger=ledger, limit=QUERY_LIMIT_MAX))


# An account's mutable state, as a list: balances and the closed bit.
DP, DPO, CP, CPO, CLOSED = range(5)
A_DMNEC = int(tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
A_CMNED = int(tb.AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
T_BALANCING_DEBIT = int(tb.TransferFlags.BALANCING_DEBIT)
T_BALANCING_CREDIT = int(tb.TransferFlags.BALANCING_CREDIT)


def balances(a: tb.Account) -> tuple[int, int, int, int, int]:
    return (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, int(a.flags))


def within_limits(flags: int, state: list[int]) -> bool:
    if flags & A_DMNEC and state[DP] + state[DPO] > state[CPO]:
        return False
    return not (flags & A_CMNED and state[CP] + state[CPO] > state[DPO])


class LedgerMachine(RuleBasedStateMachine):
    """One in-memory twin, a workload aimed at it, and what the twin's results said."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(START_NS)
        self.client = ClientSync(cluster_id=0, clock=self.clock)
        ids = itertools.count(1)
        self.workload = Workload(
            random.Random(0),
            ledgers=LEDGERS,
            tag=TAG,
            ids=lambda: next(ids),
            timeouts=(0, 0, 1, 2, 5, 60),
            balance_of=lambda i: next(iter(self.client.lookup_accounts([i])), None),
        )
        # What the results said, as the stored objects (from lookups) by id.
        self.accounts: dict[int, tb.Account] = {}
        self.transfers: dict[int, tb.Transfer] = {}
        self.resolved: set[int] = set()  # pending transfers posted or voided

    def teardown(self) -> None:
        self.client.close()

    # -- submitting and checking batches -------------------------------------------------------

    def submit_accounts(self, batch: list[tb.Account]) -> list[tb.CreateAccountResult]:
        results = self.client.create_accounts(batch)
        assert len(results) == len(batch)
        created = [a.id for a, r in zip(batch, results, strict=True) if r.status == AS.CREATED]
        assert not set(created) & self.accounts.keys(), "an existing account was created again"
        ids = list(dict.fromkeys(a.id for a in batch))
        stored = {a.id: a for a in self.client.lookup_accounts(ids)}
        self.check_presence(batch, results, stored, self.accounts.keys(), created, ACCOUNT_EXISTS)
        self.accounts.update((i, stored[i]) for i in created)
        self.workload.observe_accounts(batch, results)
        return results

    def submit_transfers(self, batch: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        # The balances the batch starts from: what the stored transfers imply once the pending
        # transfers whose timeout has passed are released (the batch releases them first).
        model = self.expected_state(self.clock())
        results = self.client.create_transfers(batch)
        assert len(results) == len(batch)
        created = [t.id for t, r in zip(batch, results, strict=True) if r.status == TS.CREATED]
        assert not set(created) & self.transfers.keys(), "an existing transfer was created again"
        ids = list(dict.fromkeys(t.id for t in batch))
        stored = {t.id: t for t in self.client.lookup_transfers(ids)}
        self.check_presence(batch, results, stored, self.transfers.keys(), created, TRANSFER_EXISTS)
        for t, r in zip(batch, results, strict=True):
            if r.status == TS.CREATED:
                self.replay(t, stored[t.id], r, model)
                self.transfers[t.id] = stored[t.id]
        self.workload.observe_transfers(batch, results)
        return results

    def replay(
        self,
        request: tb.Transfer,
        t: tb.Transfer,
        result: tb.CreateTransferResult,
        model: dict[int, list[int]],
    ) -> None:
        """Apply one created transfer `t` (as stored; `request` as sent) to `model`, checking
        the recorded amount and that no account is closed before or past its limit after."""
        flags = int(t.flags)
        dr, cr = model[t.debit_account_id], model[t.credit_account_id]
        if flags & (T_POST | T_VOID):
            p = self.transfers.get(t.pending_id)
            assert p is not None and int(p.flags) & T_PENDING, "resolved a non-pending id"
            # Resolved at most once, and only before it expires.
            assert t.pending_id not in self.resolved, f"{t.pending_id} resolved twice"
            self.resolved.add(t.pending_id)
            if p.timeout:
                assert result.timestamp < p.timestamp + p.timeout * NS, "resolved after expiry"
            assert (t.debit_account_id, t.credit_account_id) == (
                p.debit_account_id,
                p.credit_account_id,
            )
            dr[DP] -= p.amount
            cr[CP] -= p.amount
            if flags & T_POST:
                assert not dr[CLOSED] and not cr[CLOSED], "posted on a closed account"
                want = p.amount if request.amount == AMOUNT_MAX else request.amount
                assert t.amount == want <= p.amount, (request, t, p)
                dr[DPO] += t.amount
                cr[CPO] += t.amount
            else:
                assert t.amount == p.amount, (request, t, p)
                if int(p.flags) & T_CLOSING_DEBIT:
                    dr[CLOSED] = 0
                if int(p.flags) & T_CLOSING_CREDIT:
                    cr[CLOSED] = 0
            return
        assert not dr[CLOSED] and not cr[CLOSED], "a transfer on a closed account"
        want = request.amount
        if flags & T_BALANCING_DEBIT:
            want = min(want, max(0, dr[CPO] - dr[DPO] - dr[DP]))
        if flags & T_BALANCING_CREDIT:
            want = min(want, max(0, cr[DPO] - cr[CPO] - cr[CP]))
        assert t.amount == want, (request, t)
        if flags & T_PENDING:
            dr[DP] += t.amount
            cr[CP] += t.amount
            if flags & T_CLOSING_DEBIT:
                dr[CLOSED] = A_CLOSED
            if flags & T_CLOSING_CREDIT:
                cr[CLOSED] = A_CLOSED
        else:
            dr[DPO] += t.amount
            cr[CPO] += t.amount
        for account_id, state in ((t.debit_account_id, dr), (t.credit_account_id, cr)):
            assert within_limits(int(self.accounts[account_id].flags), state), (t, state)

    def expected_state(self, now: int) -> dict[int, list[int]]:
        """Every account's balances and closed bit as implied by the stored transfers at `now`:
        posted = single-phase transfers and posts; pending = pending transfers neither posted,
        voided nor expired; closed = created closed, or closed by such a live pending transfer."""
        state: dict[int, list[int]] = {
            i: [0, 0, 0, 0, int(a.flags) & A_CLOSED] for i, a in self.accounts.items()
        }
        for t in self.transfers.values():
            flags = int(t.flags)
            dr, cr = state[t.debit_account_id], state[t.credit_account_id]
            if flags & T_PENDING:
                expired = t.timeout and t.timestamp + t.timeout * NS <= now
                if t.id in self.resolved or expired:
                    continue
                dr[DP] += t.amount
                cr[CP] += t.amount
                if flags & T_CLOSING_DEBIT:
                    dr[CLOSED] = A_CLOSED
                if flags & T_CLOSING_CREDIT:
                    cr[CLOSED] = A_CLOSED
            elif not flags & T_VOID:  # single-phase or post (a post records the posted amount)
                dr[DPO] += t.amount
                cr[CPO] += t.amount
        return state

    @staticmethod
    def check_presence(
        batch: Sequence[Any],
        results: Sequence[Any],
        stored: dict[int, Any],
        known_before: Collection[int],
        created: list[int],
        exists_family: frozenset[int],
    ) -> None:
        """An id is stored iff it was before the batch or an event of the batch created it; a
        created event's result carries the stored object's timestamp."""
        created_set = set(created)
        for event in batch:
            expected = event.id in known_before or event.id in created_set
            assert (event.id in stored) == expected, f"id {event.id}: stored={not expected}"
        starts = chain_of(batch)
        for i, (event, result) in enumerate(zip(batch, results, strict=True)):
            if result.status in exists_family and event.id not in stored:
                # Only a duplicate of an earlier member of its own chain: that member was
                # created, then rolled back when the duplicate broke the chain.
                assert any(batch[j].id == event.id and starts[j] == starts[i] for j in range(i)), (
                    f"event {i}: {result.status.name} but id {event.id} is not stored"
                )
            if event.id in created_set and result.status.name == "CREATED":
                assert result.timestamp == stored[event.id].timestamp

    def snapshot(self) -> dict[int, tuple[int, int, int, int, int]]:
        return {a.id: balances(a) for a in self.client.lookup_accounts(list(self.accounts))}

    # -- rules ---------------------------------------------------------------------------------

    @initialize(seed=seeds)
    def open_accounts(self, seed: int) -> None:
        self.workload.rng.seed(seed)
        self.submit_accounts(
            self.workload.account_batch(
                kinds=["open"] * 15, open_chain_at_end=False, imported=False
            )
        )

    @rule(seed=seeds, kinds=st.lists(st.sampled_from(ACCOUNT_KINDS), min_size=1, max_size=10))
    def create_accounts(self, seed: int, kinds: list[str]) -> None:
        self.workload.rng.seed(seed)
        self.submit_accounts(self.workload.account_batch(kinds=kinds))

    @rule(seed=seeds, kinds=st.lists(st.sampled_from(TRANSFER_KINDS), min_size=1, max_size=16))
    def create_transfers(self, seed: int, kinds: list[str]) -> None:
        self.workload.rng.seed(seed)
        self.submit_transfers(self.workload.transfer_batch(kinds=kinds))

    @rule(seed=seeds, length=st.integers(2, 5), fail=st.booleans())
    def create_transfer_chain(self, seed: int, length: int, fail: bool) -> None:
        """A batch that is one linked chain moves money all-or-nothing."""
        self.workload.rng.seed(seed)
        batch = self.workload.transfer_chain_batch(length, fail=fail)
        before = self.snapshot()
        results = self.submit_transfers(batch)
        created = [r.status == TS.CREATED for r in results]
        assert all(created) or not any(created), [r.status.name for r in results]
        if not any(created):
            assert self.snapshot() == before, "a failed chain changed balances or flags"

    @rule(seed=seeds, length=st.integers(2, 4), fail=st.booleans())
    def create_account_chain(self, seed: int, length: int, fail: bool) -> None:
        """A batch that is one linked chain of accounts creates all of them or none."""
        self.workload.rng.seed(seed)
        results = self.submit_accounts(self.workload.account_chain_batch(length, fail=fail))
        created = [r.status == AS.CREATED for r in results]
        assert all(created) or not any(created), [r.status.name for r in results]

    @rule(seconds=st.sampled_from((0.5, 1, 2, 5, 61)))
    def advance_clock(self, seconds: float) -> None:
        """Let time pass, possibly past pending timeouts (expiry is checked by the invariants)."""
        self.clock.advance(seconds, ns=ADVANCE_OFFSET_NS)

    @rule(seed=seeds, reversed_=st.booleans())
    def read_account(self, seed: int, reversed_: bool) -> None:
        """An account's transfers are the stored transfers naming it, in timestamp order; its
        balance history has one entry per transfer, the last one its current posted balance."""
        if not self.accounts:
            return
        account = self.accounts[random.Random(seed).choice(sorted(self.accounts))]
        flags = tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS
        if reversed_:
            flags |= tb.AccountFilterFlags.REVERSED
        f = account_filter(account_id=account.id, limit=QUERY_LIMIT_MAX, flags=flags)
        expected = sorted(
            (
                t
                for t in self.transfers.values()
                if account.id in (t.debit_account_id, t.credit_account_id)
            ),
            key=lambda t: t.timestamp,
            reverse=reversed_,
        )
        assert self.client.get_account_transfers(f) == expected
        history = self.client.get_account_balances(f)
        if not int(account.flags) & A_HISTORY:
            assert history == []
            return
        assert [b.timestamp for b in history] == [t.timestamp for t in expected]
        if history:
            now = self.client.lookup_accounts([account.id])[0]
            last = history[0] if reversed_ else history[-1]
            # Posted balances change only through transfers (expiry moves pending amounts only).
            assert (last.debits_posted, last.credits_posted) == (
                now.debits_posted,
                now.credits_posted,
            )

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def money_is_conserved_per_ledger(self) -> None:
        for ledger in LEDGERS:
            accounts = query_all(self.client, ledger)
            assert {a.id for a in accounts} == {
                i for i, a in self.accounts.items() if a.ledger == ledger
            }
            assert sum(a.debits_posted for a in accounts) == sum(a.credits_posted for a in accounts)
            assert sum(a.debits_pending for a in accounts) == sum(
                a.credits_pending for a in accounts
            )

    @invariant()
    def limits_hold(self) -> None:
        for ledger in LEDGERS:
            for a in query_all(self.client, ledger):
                if a.flags & tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS:
                    assert a.debits_pending + a.debits_posted <= a.credits_posted, a
                if a.flags & tb.AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS:
                    assert a.credits_pending + a.credits_posted <= a.debits_posted, a

    @invariant()
    def balances_are_what_the_transfers_imply(self) -> None:
        # Read first: a read releases the pending transfers whose timeout has passed.
        actual = self.snapshot()
        expected = self.expected_state(self.clock())
        for i, (dp, dpo, cp, cpo, flags) in actual.items():
            # Only the balances and the closed bit change; the other flags stay as created.
            assert [dp, dpo, cp, cpo, flags & A_CLOSED] == expected[i], (i, actual[i], expected[i])
            assert flags & ~A_CLOSED == int(self.accounts[i].flags) & ~A_CLOSED

    @invariant()
    def twin_internal_invariants(self) -> None:
        self.client.replica.sm.check_invariants()


LedgerMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    # The same examples on every run (CI stability); nothing stored between runs.
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase
