"""Random ledger workloads for the conformance suite: batches that mix valid and invalid events.

`Workload` builds `create_accounts` and `create_transfers` batches out of named event *kinds*
(single-phase and pending transfers, posts and voids, balancing and closing transfers, linked
chains, retries of existing objects, burned ids, invalid fields, ...). It remembers what the engine
reported (created accounts and transfers, resolved pending transfers, burned and failed ids) only
to aim later events at interesting targets: a post of a real pending transfer, a retry of a
created transfer with one field changed, a transfer reusing a burned id. What it remembers is a
guide for generating events, never an expected result: the tests judge results by invariants
(stateful test) or by comparison with a real TigerBeetle (differential test).

Every random choice comes from the `random.Random` given to the workload, and every id from its
`ids` callable, so a seed and an id source reproduce a workload exactly.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import tigerbeetle as tb

AF = tb.AccountFlags
TF = tb.TransferFlags
AS = tb.CreateAccountStatus
TS = tb.CreateTransferStatus

# Flags as plain ints: IntFlag arithmetic is slow, and batches have up to 8189 events.
LINKED = 1  # the same bit for accounts and transfers
A_LIMITS = int(AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.CREDITS_MUST_NOT_EXCEED_DEBITS)
A_HISTORY = int(AF.HISTORY)
A_CLOSED = int(AF.CLOSED)
T_PENDING = int(TF.PENDING)
T_POST = int(TF.POST_PENDING_TRANSFER)
T_VOID = int(TF.VOID_PENDING_TRANSFER)
T_CLOSING_DEBIT = int(TF.CLOSING_DEBIT)
T_CLOSING_CREDIT = int(TF.CLOSING_CREDIT)

AMOUNT_MAX = tb.AMOUNT_MAX
U128_MAX = (1 << 128) - 1
TIMESTAMP_MAX = (1 << 63) - 1
QUERY_LIMIT_MAX = 8189

# Statuses that depend on mutable state; a transfer failing with one burns its id.
TRANSIENT = frozenset(
    {
        TS.DEBIT_ACCOUNT_NOT_FOUND,
        TS.CREDIT_ACCOUNT_NOT_FOUND,
        TS.PENDING_TRANSFER_NOT_FOUND,
        TS.EXCEEDS_CREDITS,
        TS.EXCEEDS_DEBITS,
        TS.DEBIT_ACCOUNT_ALREADY_CLOSED,
        TS.CREDIT_ACCOUNT_ALREADY_CLOSED,
    }
)
# `exists` and every `exists_with_different_*`: an object with the event's id is stored.
ACCOUNT_EXISTS = frozenset(s for s in AS if s.name.startswith("EXISTS"))
TRANSFER_EXISTS = frozenset(s for s in TS if s.name.startswith("EXISTS"))

ACCOUNT_KINDS = ("open", "closed", "exists", "exists_different", "invalid", "chain")
TRANSFER_KINDS = (
    "single",
    "pending",
    "post",
    "void",
    "resolve_again",
    "pending_then_resolve",
    "balancing",
    "sweep",
    "closing",
    "void_closing",
    "to_closed",
    "exceed_limit",
    "overflow",
    "exists",
    "exists_different",
    "unknown_account",
    "burned_id",
    "reuse_failed_id",
    "invalid",
    "invalid_post_void",
    "chain",
)

# How often each kind appears when a batch is drawn without an explicit list of kinds: mostly
# events that succeed, so that balances, pending transfers and closed accounts accumulate and the
# error paths have state to work on.
_ACCOUNT_WEIGHTS = {
    "open": 60,
    "closed": 2,
    "exists": 8,
    "exists_different": 8,
    "invalid": 12,
    "chain": 10,
}
_TRANSFER_WEIGHTS = {
    "single": 30,
    "pending": 14,
    "post": 9,
    "void": 5,
    "resolve_again": 3,
    "pending_then_resolve": 4,
    "balancing": 4,
    "sweep": 2,
    "closing": 2,
    "void_closing": 3,
    "to_closed": 2,
    "exceed_limit": 3,
    "overflow": 2,
    "exists": 4,
    "exists_different": 5,
    "unknown_account": 2,
    "burned_id": 2,
    "reuse_failed_id": 2,
    "invalid": 6,
    "invalid_post_void": 4,
    "chain": 8,
}

_OPEN_ACCOUNT_FLAGS = (
    (AF.NONE, 10),
    (AF.DEBITS_MUST_NOT_EXCEED_CREDITS, 3),
    (AF.CREDITS_MUST_NOT_EXCEED_DEBITS, 3),
    (AF.HISTORY, 3),
    (AF.HISTORY | AF.DEBITS_MUST_NOT_EXCEED_CREDITS, 1),
    (AF.HISTORY | AF.CREDITS_MUST_NOT_EXCEED_DEBITS, 1),
)
CODES = (1, 2, 3)
USER_DATA_64 = (0, 0, 1, 2, 3)
USER_DATA_32 = (0, 0, 7, 8)


def chain_of(events: Sequence[tb.Account] | Sequence[tb.Transfer]) -> list[int]:
    """For each event, the index of the first event of its linked chain (itself when unlinked).

    A chain starts at a linked event and ends at the first following event without `linked`.
    """
    starts: list[int] = []
    start = -1
    for i, e in enumerate(events):
        linked = int(e.flags) & LINKED
        if start < 0:
            start = i
        starts.append(start)
        if not linked:
            start = -1
    return starts


def _linked(events: Sequence[Any]) -> list[Any]:
    """The events as one chain: `linked` on every member but the last (cleared there)."""
    out = []
    for i, e in enumerate(events):
        flags = int(e.flags) | LINKED if i < len(events) - 1 else int(e.flags) & ~LINKED
        out.append(dataclasses.replace(e, flags=flags))
    return out


class Workload:
    """A generator of random batches over a few ledgers, steered by what the engine reported.

    `ledgers`: the ledgers to use; the last one is the "whale" ledger where amounts are close to
    2^128 so that overflow statuses occur. `tag`: the `user_data_128` most objects carry (a fresh
    value per run lets queries be scoped on a shared server). `timeouts`: the pending timeouts (in
    seconds) to draw from. `balance_of`: optionally, a way to read an account's current balance,
    used to aim amounts exactly at a limit (the limit itself, one below, one above).
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        ledgers: Sequence[int],
        tag: int,
        ids: Callable[[], int],
        timeouts: Sequence[int] = (0,),
        balance_of: Callable[[int], tb.Account | None] | None = None,
    ) -> None:
        self.rng = rng
        self.ledgers = list(ledgers)
        self.normal_ledgers = self.ledgers[:-1]
        self.whale_ledger = self.ledgers[-1]
        self.tag = tag
        self.ids = ids
        self.timeouts = list(timeouts)
        self.balance_of = balance_of
        # What the engine reported. Objects are kept as submitted; id lists allow random picks
        # in constant time (objects are never deleted).
        self.accounts: dict[int, tb.Account] = {}  # created accounts
        self.account_ids: list[int] = []
        self.by_ledger: dict[int, list[int]] = {ledger: [] for ledger in self.ledgers}
        self.closed: set[int] = set()  # accounts believed closed
        self.transfers: dict[int, tb.Transfer] = {}  # created transfers
        self.transfer_ids: list[int] = []
        self.pendings: dict[int, tb.Transfer] = {}  # created pending transfers
        self.pending_ids: list[int] = []
        self.unresolved: set[int] = set()  # pending, neither posted nor voided yet
        self.resolved: list[int] = []  # posted or voided
        self.closing_unresolved: dict[int, tb.Transfer] = {}
        self.non_pending: list[int] = []  # created transfers without the pending flag
        self.burned: list[int] = []  # transfer ids that failed transiently
        self.failed: list[int] = []  # transfer ids that failed otherwise (reusable)
        self.account_chains: list[list[tb.Account]] = []
        self.transfer_chains: list[list[tb.Transfer]] = []
        # Events generated so far in the batch being built (targets for in-batch duplicates),
        # and what they will likely do: results arrive only after the batch, so without these
        # a large batch would keep closing the same accounts and resolving the same pendings.
        self._batch_accounts: list[tb.Account] = []
        self._batch_transfers: list[tb.Transfer] = []  # without `linked`
        self._batch_pendings: list[tb.Transfer] = []
        self._batch_closed: set[int] = set()
        self._batch_resolved: set[int] = set()

    # -- observing results ---------------------------------------------------------------------

    def observe_accounts(
        self, batch: Sequence[tb.Account], results: Sequence[tb.CreateAccountResult]
    ) -> None:
        for a, r in zip(batch, results, strict=True):
            if r.status == AS.CREATED:
                self.accounts[a.id] = a
                self.account_ids.append(a.id)
                self.by_ledger.setdefault(a.ledger, []).append(a.id)
                if int(a.flags) & A_CLOSED:
                    self.closed.add(a.id)

    def observe_transfers(
        self, batch: Sequence[tb.Transfer], results: Sequence[tb.CreateTransferResult]
    ) -> None:
        for t, r in zip(batch, results, strict=True):
            status = r.status
            flags = int(t.flags)
            if status == TS.CREATED:
                self.transfers[t.id] = t
                self.transfer_ids.append(t.id)
                if flags & T_PENDING:
                    self.pendings[t.id] = t
                    self.pending_ids.append(t.id)
                    self.unresolved.add(t.id)
                    if flags & (T_CLOSING_DEBIT | T_CLOSING_CREDIT):
                        self.closing_unresolved[t.id] = t
                        if flags & T_CLOSING_DEBIT:
                            self.closed.add(t.debit_account_id)
                        if flags & T_CLOSING_CREDIT:
                            self.closed.add(t.credit_account_id)
                else:
                    self.non_pending.append(t.id)
                if flags & (T_POST | T_VOID):
                    self.resolved.append(t.pending_id)
                    self.unresolved.discard(t.pending_id)
                    p = self.closing_unresolved.pop(t.pending_id, None)
                    if p is not None and flags & T_VOID:
                        self.closed.discard(p.debit_account_id)
                        self.closed.discard(p.credit_account_id)
            elif status in TRANSIENT:
                self.burned.append(t.id)
            elif (
                status not in TRANSFER_EXISTS
                and status != TS.ID_ALREADY_FAILED
                and 0 < t.id < U128_MAX
                and t.id not in self.transfers
            ):
                self.failed.append(t.id)

    # -- batches -------------------------------------------------------------------------------

    def account_batch(
        self,
        size: int | None = None,
        *,
        kinds: Iterable[str] | None = None,
        open_chain_at_end: bool | None = None,
        imported: bool | None = None,
    ) -> list[tb.Account]:
        """A create_accounts batch: the given kinds in order, or `size` events of random kinds."""
        rng = self.rng
        self._batch_accounts = []
        batch: list[tb.Account] = []
        if kinds is not None:
            for kind in kinds:
                batch.extend(self.account_events(kind))
        else:
            assert size is not None
            names, weights = zip(*_ACCOUNT_WEIGHTS.items(), strict=True)
            while len(batch) < size:
                kind = rng.choices(names, weights)[0]
                events = self.account_events(kind)
                if len(events) > size - len(batch):
                    events = self.account_events("open")
                batch.extend(events)
        if imported is None:
            # Only once an account of ours exists: "must not regress" compares with the newest
            # account of the whole cluster, which must then exist in every engine.
            imported = bool(self.accounts) and rng.random() < 0.03
        if imported and batch:
            batch[:] = self._imported(batch, AF.IMPORTED)
        if open_chain_at_end is None:
            open_chain_at_end = rng.random() < 0.05
        if open_chain_at_end and batch:
            batch[-1] = dataclasses.replace(batch[-1], flags=int(batch[-1].flags) | AF.LINKED)
        return batch

    def transfer_batch(
        self,
        size: int | None = None,
        *,
        kinds: Iterable[str] | None = None,
        open_chain_at_end: bool | None = None,
        imported: bool | None = None,
    ) -> list[tb.Transfer]:
        """A create_transfers batch: the given kinds in order, or `size` events of random kinds."""
        rng = self.rng
        self._start_transfer_batch()
        batch: list[tb.Transfer] = []
        if kinds is not None:
            for kind in kinds:
                batch.extend(self.transfer_events(kind))
        else:
            assert size is not None
            names, weights = zip(*_TRANSFER_WEIGHTS.items(), strict=True)
            while len(batch) < size:
                kind = rng.choices(names, weights)[0]
                events = self.transfer_events(kind)
                if len(events) > size - len(batch):
                    events = self.transfer_events("single")
                batch.extend(events)
        if imported is None:
            # Only once a transfer of ours exists: the "must not regress" check compares with the
            # newest transfer of the whole cluster, which must then exist in every engine.
            imported = bool(self.transfers) and rng.random() < 0.03
        if imported and batch:
            batch[:] = self._imported(batch, TF.IMPORTED)
        if open_chain_at_end is None:
            open_chain_at_end = rng.random() < 0.05
        if open_chain_at_end and batch:
            batch[-1] = dataclasses.replace(batch[-1], flags=int(batch[-1].flags) | TF.LINKED)
        return batch

    def _start_transfer_batch(self) -> None:
        self._batch_transfers = []
        self._batch_pendings = []
        self._batch_closed = set()
        self._batch_resolved = set()

    def _imported(self, batch: list[Any], flag: int) -> list[Any]:
        """An imported batch (its first event is imported) whose timestamps all fail, the same
        way on every engine: out of range (0, 2^63), in the future (2^63 - 1), or older than
        existing objects (1). Some events stay non-imported (`imported_event_expected`)."""
        out = []
        for i, e in enumerate(batch):
            if i == 0 or self.rng.random() < 0.7:
                ts = self.rng.choice((0, 1, 1, 1 << 63, TIMESTAMP_MAX))
                out.append(dataclasses.replace(e, flags=int(e.flags) | flag, timestamp=ts))
            else:
                out.append(e)
        return out

    # -- accounts ------------------------------------------------------------------------------

    def new_account(self, ledger: int | None = None, flags: int | None = None) -> tb.Account:
        rng = self.rng
        if ledger is None:
            ledger = self.whale_ledger if rng.random() < 0.12 else rng.choice(self.normal_ledgers)
        if flags is None:
            choices, weights = zip(*_OPEN_ACCOUNT_FLAGS, strict=True)
            flags = int(rng.choices(choices, weights)[0])
        return tb.Account(
            id=self.ids(),
            user_data_128=self.tag if rng.random() < 0.8 else self.tag + 1,
            user_data_64=rng.choice(USER_DATA_64),
            user_data_32=rng.choice(USER_DATA_32),
            ledger=ledger,
            code=rng.choice(CODES),
            flags=flags,
        )

    def account_events(self, kind: str) -> list[tb.Account]:
        rng = self.rng
        if kind == "open":
            events = [self.new_account()]
        elif kind == "closed":
            events = [self.new_account(flags=AF.CLOSED | rng.choice((0, AF.HISTORY)))]
        elif kind == "exists":
            events = [self._account_retry()]
        elif kind == "exists_different":
            events = [self._account_retry_different()]
        elif kind == "invalid":
            events = [self._invalid_account()]
        elif kind == "chain":
            if self.account_chains and rng.random() < 0.2:
                events = [dataclasses.replace(a) for a in rng.choice(self.account_chains)]
            else:
                events = self.account_chain(rng.randint(2, 4))
        else:
            raise ValueError(f"unknown account kind {kind!r}")
        self._batch_accounts.extend(events)
        return events

    def account_chain(self, length: int, *, fail: bool | None = None) -> list[tb.Account]:
        """A linked chain of `length` new accounts; with `fail`, one member is invalid or a
        retry of an existing account (either breaks the chain)."""
        rng = self.rng
        failing = rng.randrange(length) if fail or (fail is None and rng.random() < 0.3) else -1
        members = []
        for i in range(length):
            if i == failing:
                existing = self._retry_target() if rng.random() < 0.3 else None
                members.append(
                    dataclasses.replace(existing) if existing else self._invalid_account()
                )
            else:
                members.append(self.new_account())
        chain = _linked(members)
        self.account_chains.append(chain)
        return chain

    def account_chain_batch(self, length: int, *, fail: bool) -> list[tb.Account]:
        """A batch that is exactly one linked chain of accounts."""
        self._batch_accounts = []
        return self.account_chain(length, fail=fail)

    def transfer_chain_batch(self, length: int, *, fail: bool) -> list[tb.Transfer]:
        """A batch that is exactly one linked chain of transfers."""
        self._start_transfer_batch()
        return self.chain(length, fail=fail)

    def _retry_target(self) -> tb.Account | None:
        """A created account or an earlier event of this batch, without `linked` (a retry of a
        linked event would start a new chain)."""
        rng = self.rng
        if self._batch_accounts and rng.random() < 0.25:
            for _ in range(4):
                a = rng.choice(self._batch_accounts)
                if not int(a.flags) & LINKED:
                    return a
        for _ in range(4 if self.account_ids else 0):
            a = self.accounts[rng.choice(self.account_ids)]
            if not int(a.flags) & LINKED:
                return a
        return None

    def _account_retry(self) -> tb.Account:
        target = self._retry_target()
        return self.new_account() if target is None else dataclasses.replace(target)

    def _account_retry_different(self) -> tb.Account:
        rng = self.rng
        target = self._retry_target()
        if target is None:
            return self._invalid_account()
        field = rng.choice(
            ("flags", "user_data_128", "user_data_64", "user_data_32", "ledger", "code", "balance")
        )
        if field == "flags":
            bit = rng.choice((AF.HISTORY, AF.DEBITS_MUST_NOT_EXCEED_CREDITS, AF.CLOSED))
            return dataclasses.replace(target, flags=int(target.flags) ^ bit)
        if field == "balance":
            # Balances are not compared: idempotency is checked before they are.
            return dataclasses.replace(target, debits_posted=rng.randint(1, 9))
        if field == "ledger":  # another of our ledgers, so that queries stay scoped
            return dataclasses.replace(
                target, ledger=rng.choice([lg for lg in self.ledgers if lg != target.ledger])
            )
        return dataclasses.replace(target, **{field: getattr(target, field) + 1})

    def _invalid_account(self) -> tb.Account:
        rng = self.rng
        a = self.new_account()
        defect = rng.choice(
            (
                "id_zero",
                "id_max",
                "ledger",
                "code",
                "both_limits",
                "debits_pending",
                "debits_posted",
                "credits_pending",
                "credits_posted",
                "timestamp",
                "reserved_flag",
                "imported",
            )
        )
        if defect == "id_zero":
            return dataclasses.replace(a, id=0)
        if defect == "id_max":
            return dataclasses.replace(a, id=U128_MAX)
        if defect in ("ledger", "code"):
            return dataclasses.replace(a, **{defect: 0})
        if defect == "both_limits":
            return dataclasses.replace(a, flags=A_LIMITS)
        if defect == "timestamp":
            return dataclasses.replace(a, timestamp=rng.randint(1, TIMESTAMP_MAX))
        if defect == "reserved_flag":
            return dataclasses.replace(a, flags=int(a.flags) | 1 << rng.randint(6, 15))
        if defect == "imported":
            return dataclasses.replace(a, flags=int(a.flags) | AF.IMPORTED, timestamp=1)
        return dataclasses.replace(a, **{defect: rng.randint(1, 100)})

    # -- transfers -----------------------------------------------------------------------------

    def _account_of(self, ledger: int, exclude: int = 0, *, hot: float = 0.6) -> int | None:
        """An account of `ledger`: with probability `hot` one of its first dozen (so balances
        accumulate), and mostly not one believed closed (closed accounts fail most transfers)."""
        ids = self.by_ledger.get(ledger) or []
        if not ids or (len(ids) == 1 and ids[0] == exclude):
            return None
        pick = None
        for _ in range(8):
            if self.rng.random() < hot:
                pick = ids[self.rng.randrange(min(len(ids), 12))]
            else:
                pick = self.rng.choice(ids)
            closed = pick in self.closed or pick in self._batch_closed
            if pick != exclude and (not closed or self.rng.random() < 0.1):
                return pick
        return pick if pick != exclude else None

    def _pair(self, ledger: int | None = None) -> tuple[int, int, int] | None:
        """(debit, credit, ledger): two different known accounts of one ledger."""
        rng = self.rng
        if ledger is None:
            usable = [lg for lg in self.normal_ledgers if len(self.by_ledger.get(lg, ())) >= 2]
            if len(self.by_ledger.get(self.whale_ledger, ())) >= 2 and rng.random() < 0.08:
                usable = [self.whale_ledger]
            if not usable:
                return None
            ledger = rng.choice(usable)
        dr = self._account_of(ledger)
        cr = None if dr is None else self._account_of(ledger, exclude=dr)
        if dr is None or cr is None:
            return None
        return dr, cr, ledger

    def _amount(self, ledger: int) -> int:
        rng = self.rng
        if ledger == self.whale_ledger:
            return rng.choice(
                (1, 100, 1 << 64, 1 << 126, 1 << 127, AMOUNT_MAX - (1 << 64), AMOUNT_MAX)
            )
        roll = rng.random()
        if roll < 0.05:
            return 0
        if roll < 0.75:
            return rng.randint(1, 100)
        if roll < 0.95:
            return rng.randint(100, 10_000)
        return rng.randint(10_000, 10**9)

    def new_transfer(self, flags: int = 0, pair: tuple[int, int, int] | None = None) -> tb.Transfer:
        """A well-formed transfer between two known accounts (or to an unknown one if there
        are none yet)."""
        rng = self.rng
        pair = pair or self._pair()
        if pair is None:
            return self._transfer_with_unknown_account(flags)
        dr, cr, ledger = pair
        return tb.Transfer(
            id=self.ids(),
            debit_account_id=dr,
            credit_account_id=cr,
            amount=self._amount(ledger),
            user_data_128=self.tag if rng.random() < 0.8 else self.tag + 1,
            user_data_64=rng.choice(USER_DATA_64),
            user_data_32=rng.choice(USER_DATA_32),
            timeout=rng.choice(self.timeouts) if flags & TF.PENDING else 0,
            ledger=ledger,
            code=rng.choice(CODES),
            flags=flags,
        )

    def _transfer_with_unknown_account(self, flags: int = 0) -> tb.Transfer:
        ledger = self.rng.choice(self.normal_ledgers)
        known = self._account_of(ledger)
        unknown = self.ids()
        dr, cr = (unknown, known or self.ids())
        if self.rng.random() < 0.5:
            dr, cr = cr, dr
        return tb.Transfer(
            id=self.ids(),
            debit_account_id=dr,
            credit_account_id=cr,
            amount=self.rng.randint(1, 50),
            user_data_128=self.tag,
            ledger=ledger,
            code=1,
            flags=flags,
            timeout=self.rng.choice(self.timeouts) if flags & TF.PENDING else 0,
        )

    def _pending_target(self, *, unresolved: bool = True) -> tb.Transfer | None:
        """A pending transfer to post or void: unresolved, any, or one created in this batch."""
        rng = self.rng
        roll = rng.random()
        in_batch = self._batch_pendings
        if in_batch and roll < 0.15:
            return rng.choice(in_batch)
        if not self.pending_ids:
            return rng.choice(in_batch) if in_batch else None
        p = self.pendings[rng.choice(self.pending_ids)]
        if unresolved and roll < 0.85:
            # Prefer recent pendings: the unresolved ones are mostly recent.
            recent = self.pending_ids[-500:]
            for _ in range(8):
                p = self.pendings[rng.choice(recent)]
                if p.id in self.unresolved and p.id not in self._batch_resolved:
                    break
        return p

    def resolution(self, p: tb.Transfer, *, post: bool) -> tb.Transfer:
        """A post or void of `p`: amount exact, partial, AMOUNT_MAX, 0 or too large; account,
        ledger and code fields inherited (0) or repeated; user data inherited or new."""
        rng = self.rng
        amount = p.amount
        if post:
            amount = rng.choice(
                (
                    AMOUNT_MAX,
                    AMOUNT_MAX,
                    p.amount,
                    p.amount,
                    rng.randint(0, p.amount) if p.amount < AMOUNT_MAX else 1,
                    0,
                    min(p.amount + 1, AMOUNT_MAX - 1),
                    AMOUNT_MAX - 1,
                )
            )
        else:
            amount = rng.choice((0, 0, p.amount, p.amount, max(p.amount - 1, 0), p.amount + 1))
            amount = min(amount, AMOUNT_MAX)
        inherit = rng.random() < 0.6
        self._batch_resolved.add(p.id)
        if not post:
            self._batch_closed.discard(p.debit_account_id)
            self._batch_closed.discard(p.credit_account_id)
        return tb.Transfer(
            id=self.ids(),
            debit_account_id=0 if inherit else p.debit_account_id,
            credit_account_id=0 if rng.random() < 0.6 else p.credit_account_id,
            amount=amount,
            pending_id=p.id,
            user_data_128=0 if rng.random() < 0.7 else self.tag,
            user_data_64=0 if rng.random() < 0.7 else rng.choice(USER_DATA_64),
            user_data_32=0 if rng.random() < 0.7 else rng.choice(USER_DATA_32),
            ledger=0 if inherit else p.ledger,
            code=0 if rng.random() < 0.6 else p.code,
            flags=TF.POST_PENDING_TRANSFER if post else TF.VOID_PENDING_TRANSFER,
        )

    def transfer_events(self, kind: str) -> list[tb.Transfer]:
        events = self._transfer_events(kind)
        if kind != "chain":  # a chain remembers its members as it builds them
            self._remember(events)
        return events

    def _remember(self, events: Sequence[tb.Transfer]) -> None:
        """Note events of the batch being built (unlinked, as targets of later events)."""
        for e in events:
            flags = int(e.flags)
            unlinked = dataclasses.replace(e, flags=flags & ~LINKED) if flags & LINKED else e
            self._batch_transfers.append(unlinked)
            if flags & T_PENDING:
                self._batch_pendings.append(unlinked)

    def _transfer_events(self, kind: str) -> list[tb.Transfer]:
        rng = self.rng
        if kind == "single":
            return [self.new_transfer()]
        if kind == "pending":
            return [self.new_transfer(TF.PENDING)]
        if kind in ("post", "void"):
            p = self._pending_target()
            if p is None:
                return [self.new_transfer(TF.PENDING)]
            return [self.resolution(p, post=kind == "post")]
        if kind == "resolve_again":
            if not self.resolved:
                return self._transfer_events("post")
            p = self.pendings[rng.choice(self.resolved)]
            return [self.resolution(p, post=rng.random() < 0.5)]
        if kind == "pending_then_resolve":
            p = self.new_transfer(TF.PENDING | rng.choice((0, 0, TF.BALANCING_DEBIT)))
            events = [p, self.resolution(p, post=rng.random() < 0.6)]
            if rng.random() < 0.3:
                events.append(self.resolution(p, post=rng.random() < 0.5))
            return _linked(events) if rng.random() < 0.3 else events
        if kind == "balancing":
            flags = rng.choice(
                (TF.BALANCING_DEBIT, TF.BALANCING_CREDIT, TF.BALANCING_DEBIT | TF.BALANCING_CREDIT)
            )
            t = self.new_transfer(flags | rng.choice((0, 0, TF.PENDING)))
            amount = rng.choice((AMOUNT_MAX, AMOUNT_MAX, t.amount, 0))
            return [dataclasses.replace(t, amount=amount)]
        if kind == "sweep":
            return self._sweep()
        if kind == "closing":
            closing = rng.choice(
                (TF.CLOSING_DEBIT, TF.CLOSING_CREDIT, TF.CLOSING_DEBIT | TF.CLOSING_CREDIT)
            )
            # Mostly accounts outside the busy dozen: a closed account fails most transfers.
            ledger = rng.choice(self.normal_ledgers)
            dr = self._account_of(ledger, hot=0.1)
            cr = dr and self._account_of(ledger, exclude=dr, hot=0.1)
            pair = (dr, cr, ledger) if dr and cr else None
            t = self.new_transfer(TF.PENDING | closing, pair)
            t = dataclasses.replace(t, amount=rng.choice((0, 0, 1, t.amount)))
            if closing & T_CLOSING_DEBIT:
                self._batch_closed.add(t.debit_account_id)
            if closing & T_CLOSING_CREDIT:
                self._batch_closed.add(t.credit_account_id)
            if pair is None or rng.random() < 0.5:
                return [t]
            # The recipe for closing an account: zero its balance with a balancing transfer,
            # then close it with a zero-amount pending closing transfer, atomically.
            sweep = self.new_transfer(TF.BALANCING_DEBIT, (pair[0], pair[1], pair[2]))
            return _linked([dataclasses.replace(sweep, amount=AMOUNT_MAX), t])
        if kind == "void_closing":
            if not self.closing_unresolved:
                return self._transfer_events("closing")
            p = self.closing_unresolved[rng.choice(list(self.closing_unresolved))]
            return [self.resolution(p, post=rng.random() < 0.2)]
        if kind == "to_closed":
            closed = sorted(self.closed)
            if not closed:
                return self._transfer_events("closing")
            account = self.accounts[rng.choice(closed)]
            other = self._account_of(account.ledger, exclude=account.id)
            if other is None:
                return [self.new_transfer()]
            dr, cr = (account.id, other) if rng.random() < 0.5 else (other, account.id)
            flags = rng.choice((0, TF.PENDING, TF.PENDING | TF.CLOSING_DEBIT))
            return [self.new_transfer(flags, (dr, cr, account.ledger))]
        if kind == "exceed_limit":
            return [self._exceed_limit()]
        if kind == "overflow":
            pair = self._pair(self.whale_ledger)
            if pair is None:
                return [self.new_transfer()]
            t = self.new_transfer(rng.choice((0, 0, TF.PENDING)), pair)
            return [dataclasses.replace(t, amount=rng.choice((AMOUNT_MAX, 1 << 127, 1)))]
        if kind == "exists":
            return [self._transfer_retry()]
        if kind == "exists_different":
            return [self._transfer_retry_different()]
        if kind == "unknown_account":
            return [self._transfer_with_unknown_account(rng.choice((0, TF.PENDING)))]
        if kind == "burned_id":
            if not self.burned:
                return [self._transfer_with_unknown_account()]
            # Even a perfectly valid transfer cannot reuse an id that failed transiently.
            return [dataclasses.replace(self.new_transfer(), id=rng.choice(self.burned))]
        if kind == "reuse_failed_id":
            if not self.failed:
                return [self._invalid_transfer()]
            # An id that failed validation is not burned: it may be used again.
            return [dataclasses.replace(self.new_transfer(), id=rng.choice(self.failed))]
        if kind == "invalid":
            return [self._invalid_transfer()]
        if kind == "invalid_post_void":
            return [self._invalid_post_void()]
        if kind == "chain":
            return self._chain()
        raise ValueError(f"unknown transfer kind {kind!r}")

    def _sweep(self) -> list[tb.Transfer]:
        """Fund an account, reserve part of the funds with a pending transfer, then sweep what
        is left with a balancing AMOUNT_MAX transfer (whose clamp must count the reservation)."""
        rng = self.rng
        ledger = rng.choice(self.normal_ledgers)
        a = self._account_of(ledger, hot=0.2)
        x = a and self._account_of(ledger, exclude=a)
        y = a and self._account_of(ledger, exclude=a)
        if not (a and x and y):
            return [self.new_transfer(TF.BALANCING_DEBIT)]
        funds, reserved = rng.randint(10, 1000), rng.randint(0, 1000)
        r = dataclasses.replace
        if rng.random() < 0.5:  # debit side: a's credits fund its debits
            return [
                r(self.new_transfer(0, (x, a, ledger)), amount=funds),
                r(self.new_transfer(TF.PENDING, (a, y, ledger)), amount=reserved),
                r(self.new_transfer(TF.BALANCING_DEBIT, (a, x, ledger)), amount=AMOUNT_MAX),
            ]
        return [
            r(self.new_transfer(0, (a, x, ledger)), amount=funds),
            r(self.new_transfer(TF.PENDING, (y, a, ledger)), amount=reserved),
            r(self.new_transfer(TF.BALANCING_CREDIT, (x, a, ledger)), amount=AMOUNT_MAX),
        ]

    def _exceed_limit(self) -> tb.Transfer:
        """A transfer out of (into) an account that limits debits (credits): at the limit, one
        past it or one short of it when balances can be read, else of a random size."""
        rng = self.rng
        limited = [
            a
            for a in (
                self.accounts.get(i)
                for i in self.by_ledger.get(rng.choice(self.normal_ledgers), [])[:40]
            )
            if a is not None and int(a.flags) & A_LIMITS
        ]
        if not limited:
            return self.new_transfer()
        a = rng.choice(limited)
        other = self._account_of(a.ledger, exclude=a.id)
        if other is None:
            return self.new_transfer()
        debits_limited = int(a.flags) & AF.DEBITS_MUST_NOT_EXCEED_CREDITS
        pair = (a.id, other, a.ledger) if debits_limited else (other, a.id, a.ledger)
        t = self.new_transfer(rng.choice((0, TF.PENDING)), pair)
        now = self.balance_of(a.id) if self.balance_of else None
        if now is None:
            return dataclasses.replace(t, amount=rng.choice((1, 50, 10_000, 10**12)))
        if debits_limited:
            room = now.credits_posted - now.debits_posted - now.debits_pending
        else:
            room = now.debits_posted - now.credits_posted - now.credits_pending
        return dataclasses.replace(t, amount=max(0, room + rng.choice((-1, 0, 0, 1))))

    def _transfer_retry(self) -> tb.Transfer:
        """A verbatim retry of a created transfer or of an earlier event of this batch."""
        rng = self.rng
        if self._batch_transfers and rng.random() < 0.25:
            return dataclasses.replace(rng.choice(self._batch_transfers))
        for _ in range(4 if self.transfer_ids else 0):
            t = self.transfers[rng.choice(self.transfer_ids)]
            if not int(t.flags) & LINKED:
                return dataclasses.replace(t)
        return self.new_transfer()

    def _transfer_retry_different(self) -> tb.Transfer:
        """A created transfer sent again with one field changed (the `exists_with_different_*`
        family, including the inherit and balancing rules that make some changes harmless)."""
        rng = self.rng
        picks = [rng.choice(self.transfer_ids) for _ in range(8)] if self.transfer_ids else []
        candidates = [t for t in map(self.transfers.get, picks) if t and not int(t.flags) & LINKED]
        if not candidates:
            return self._invalid_transfer()
        t = candidates[0]
        field = rng.choice(
            (
                "flags",
                "debit_account_id",
                "credit_account_id",
                "amount",
                "pending_id",
                "user_data_128",
                "user_data_64",
                "user_data_32",
                "timeout",
                "ledger",
                "code",
                "zero",
            )
        )
        if field == "flags":
            bit = rng.choice((TF.PENDING, TF.BALANCING_DEBIT, TF.BALANCING_CREDIT))
            return dataclasses.replace(t, flags=int(t.flags) ^ bit)
        if field == "amount":
            delta = rng.choice((1, -1)) if 0 < t.amount < AMOUNT_MAX else 0
            return dataclasses.replace(t, amount=rng.choice((t.amount + delta, AMOUNT_MAX, 0)))
        if field == "zero":
            # Zero means "inherit" in a post/void and must then match the pending transfer.
            name = rng.choice(("debit_account_id", "user_data_128", "ledger", "code", "amount"))
            return dataclasses.replace(t, **{name: 0})
        value = getattr(t, field)
        return dataclasses.replace(t, **{field: value + 1 if value < 1000 else value - 1})

    def _invalid_transfer(self) -> tb.Transfer:
        """A single-phase or pending transfer with exactly one defect."""
        rng = self.rng
        flags = rng.choice((0, 0, TF.PENDING))
        t = self.new_transfer(flags)
        defect = rng.choice(
            (
                "id_zero",
                "id_max",
                "debit_zero",
                "debit_max",
                "credit_zero",
                "credit_max",
                "same_accounts",
                "pending_id",
                "timeout",
                "closing_not_pending",
                "ledger_zero",
                "code_zero",
                "ledgers_differ",
                "wrong_ledger",
                "reserved_flag",
                "timestamp",
                "imported",
            )
        )
        r = dataclasses.replace
        if defect == "id_zero":
            return r(t, id=0)
        if defect == "id_max":
            return r(t, id=U128_MAX)
        if defect == "debit_zero":
            return r(t, debit_account_id=0)
        if defect == "debit_max":
            return r(t, debit_account_id=U128_MAX)
        if defect == "credit_zero":
            return r(t, credit_account_id=0)
        if defect == "credit_max":
            return r(t, credit_account_id=U128_MAX)
        if defect == "same_accounts":
            return r(t, credit_account_id=t.debit_account_id)
        if defect == "pending_id":
            return r(t, pending_id=rng.choice((t.id, self.ids())))
        if defect == "timeout":
            return r(t, flags=0, timeout=rng.randint(1, 3600))
        if defect == "closing_not_pending":
            return r(t, flags=TF.CLOSING_DEBIT, timeout=0)
        if defect == "ledger_zero":
            return r(t, ledger=0)
        if defect == "code_zero":
            return r(t, code=0)
        if defect == "ledgers_differ":
            others = [lg for lg in self.ledgers if lg != t.ledger and self.by_ledger.get(lg)]
            if others:
                return r(t, credit_account_id=self.by_ledger[rng.choice(others)][0])
            return r(t, ledger=0)
        if defect == "wrong_ledger":
            return r(t, ledger=rng.choice([lg for lg in self.ledgers if lg != t.ledger]))
        if defect == "reserved_flag":
            return r(t, flags=int(t.flags) | 1 << rng.randint(9, 15))
        if defect == "timestamp":
            return r(t, timestamp=rng.randint(1, TIMESTAMP_MAX))
        return r(t, flags=int(t.flags) | TF.IMPORTED, timestamp=1)

    def _invalid_post_void(self) -> tb.Transfer:
        """A post or void with exactly one defect (flags, pending id, fields that must match)."""
        rng = self.rng
        p = self._pending_target(unresolved=False)
        if p is None:
            p = self.new_transfer(TF.PENDING)
        t = self.resolution(p, post=rng.random() < 0.5)
        r = dataclasses.replace
        defect = rng.choice(
            (
                "both",
                "with_pending",
                "with_balancing",
                "with_closing",
                "pending_id_zero",
                "pending_id_max",
                "pending_id_self",
                "timeout",
                "pending_not_found",
                "not_pending",
                "debit",
                "credit",
                "ledger",
                "code",
            )
        )
        if defect == "both":
            return r(t, flags=TF.POST_PENDING_TRANSFER | TF.VOID_PENDING_TRANSFER)
        if defect == "with_pending":
            return r(t, flags=int(t.flags) | TF.PENDING)
        if defect == "with_balancing":
            return r(t, flags=int(t.flags) | rng.choice((TF.BALANCING_DEBIT, TF.BALANCING_CREDIT)))
        if defect == "with_closing":
            return r(t, flags=int(t.flags) | rng.choice((TF.CLOSING_DEBIT, TF.CLOSING_CREDIT)))
        if defect == "pending_id_zero":
            return r(t, pending_id=0)
        if defect == "pending_id_max":
            return r(t, pending_id=U128_MAX)
        if defect == "pending_id_self":
            return r(t, pending_id=t.id)
        if defect == "timeout":
            return r(t, timeout=rng.randint(1, 100))
        if defect == "pending_not_found":
            return r(t, pending_id=self.ids())
        if defect == "not_pending":
            if self.non_pending:
                return r(t, pending_id=rng.choice(self.non_pending))
            return r(t, pending_id=self.ids())
        if defect in ("debit", "credit"):
            name = f"{defect}_account_id"
            other = self._account_of(p.ledger, exclude=getattr(p, name))
            return r(t, **{name: other or self.ids()})
        if defect == "ledger":
            return r(t, ledger=rng.choice([lg for lg in self.ledgers if lg != p.ledger]))
        return r(t, code=p.code % len(CODES) + 1)

    def _chain(self) -> list[tb.Transfer]:
        """A linked chain: new, or (sometimes) an earlier chain retried verbatim."""
        rng = self.rng
        if self.transfer_chains and rng.random() < 0.15:
            return [dataclasses.replace(t) for t in rng.choice(self.transfer_chains)]
        return self.chain(rng.randint(2, 5))

    def chain(self, length: int, *, fail: bool | None = None) -> list[tb.Transfer]:
        """A linked chain of `length` transfers of mixed kinds; with `fail`, one member is meant
        to fail (invalid, unknown account, a retry); any member may also fail on its own."""
        rng = self.rng
        members: list[tb.Transfer] = []
        failing = rng.randrange(length) if fail or (fail is None and rng.random() < 0.3) else -1
        while len(members) < length:
            if len(members) == failing:
                kind = rng.choice(("invalid", "invalid_post_void", "unknown_account", "exists"))
            else:
                kind = rng.choice(
                    ("single", "single", "pending", "post", "void", "balancing")
                    + (("closing",) if rng.random() < 0.2 else ())
                )
            # Members see earlier members (a post may target a pending transfer of the chain).
            events = self._transfer_events(kind)[: length - len(members)]
            for e in events:
                members.append(dataclasses.replace(e, flags=int(e.flags) & ~LINKED))
            self._remember(events)
        chain = _linked(members)
        self.transfer_chains.append(chain)
        return chain
