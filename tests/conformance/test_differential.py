"""Differential test: the twin against a real TigerBeetle 0.17.9, event by event.

The same random batches (a seeded `Workload`: valid and invalid accounts and transfers, pending
transfers and their posts and voids, balancing and closing transfers, linked chains that succeed,
fail mid-way or stay open, retries of existing objects, unknown accounts, burned ids, limit and
overflow failures, history accounts) go to the twin and to a real server, and the two must agree
on everything a client can observe:

* the status of every event;
* after every batch, the objects the batch names (`lookup_transfers`/`lookup_accounts` of its ids,
  every field but the timestamp, and whether each exists) and the accounts it touched (balances
  and flags);
* every few batches, `get_account_transfers`, `get_account_balances`, `query_accounts` and
  `query_transfers` with random filters (same objects in the same order);
* at the end, every account and transfer of the run, and the per-ledger money invariants.

Timestamps come from each engine's own clock, so they are compared only by their shape: a result
carries either the timestamp of the object with the event's id (`created`, `exists`) or the
event's slot (consecutive within a batch), read results are ordered by timestamp, a balance
carries its transfer's timestamp, and timestamp filter bounds are taken from each engine's own
objects (the k-th object's timestamp, ±1).

The real server is shared with the rest of the session, so every object has a fresh id
(`tigerbeetle.id()`), lives in ledgers drawn for this run, and every query is scoped by one of
those ledgers or by this run's `user_data_128` tag. Pending timeouts are 0 or an hour: expiry is
best-effort on a real cluster, and is covered elsewhere.

Knobs: `TBLEDGER_DIFF_EVENTS` (events in batches of 1..1000; default 20000; the 8189-event batches
come on top), `TBLEDGER_DIFF_SEED` (default: random; printed).
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import tigerbeetle as tb

from tbledger.embedded import ClientSync, ManualClock
from tests.conformance.randomized import (
    A_HISTORY,
    QUERY_LIMIT_MAX,
    TIMESTAMP_MAX,
    Workload,
    chain_of,
)
from tests.support.filters import account_filter, query_filter
from tests.support.tbserver import RealServer

EVENTS = int(os.environ.get("TBLEDGER_DIFF_EVENTS", "20000"))
FULL_BATCH = 8189
DISAGREEMENTS_SHOWN = 5

ACCOUNT_FIELDS = (
    "id",
    "debits_pending",
    "debits_posted",
    "credits_pending",
    "credits_posted",
    "user_data_128",
    "user_data_64",
    "user_data_32",
    "ledger",
    "code",
    "flags",
)
TRANSFER_FIELDS = (
    "id",
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
    "flags",
)
BALANCE_FIELDS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
ACCOUNT_READS = ("get_account_transfers", "get_account_balances")
QUERY_READS = ("query_accounts", "query_transfers")
AFF = tb.AccountFilterFlags
QFF = tb.QueryFilterFlags


def _fields(obj: Any, names: Sequence[str]) -> tuple[int, ...]:
    """The object without its timestamp, as plain ints (flags included)."""
    return tuple(int(getattr(obj, name)) for name in names)


def _chunks(items: Sequence[int], size: int = FULL_BATCH) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _unique(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(ids))


def timestamp_shapes(
    batch: Sequence[Any], results: Sequence[Any], stored: dict[int, Any]
) -> list[str]:
    """Each result timestamp in engine-independent form.

    "object": it is the timestamp of the stored object with the event's id (what `created` and
    `exists` report). "slot": it is the event's slot, T0+1+i, with one T0 for the whole batch.
    Anything else shows as "slot±k", its offset from that slot.
    """
    shapes: list[str] = []
    base: int | None = None
    for i, (event, result) in enumerate(zip(batch, results, strict=False)):
        obj = stored.get(event.id)
        if obj is not None and result.timestamp == obj.timestamp:
            shapes.append("object")
            continue
        offset = result.timestamp - i
        if base is None:
            base = offset
        shapes.append("slot" if offset == base else f"slot{offset - base:+d}")
    return shapes


def ordered_by_timestamp(objs: Sequence[Any], reversed_: bool) -> bool:
    pairs = itertools.pairwise(o.timestamp for o in objs)
    return all(a > b for a, b in pairs) if reversed_ else all(a < b for a, b in pairs)


@dataclass
class Disagreement:
    where: str
    what: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.where}] {self.what}\n{self.detail}"


@dataclass
class Report:
    seed: int
    events: int = 0
    batches: int = 0
    reads: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    disagreements: list[Disagreement] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [
            f"differential seed={self.seed}: {self.events} events in {self.batches} batches, "
            f"{self.reads} read comparisons, {len(self.disagreements)} disagreements, "
            f"{self.seconds:.1f}s",
            "statuses seen: "
            + ", ".join(f"{name}={n}" for name, n in sorted(self.statuses.items())),
        ]
        for d in self.disagreements[:DISAGREEMENTS_SHOWN]:
            lines.append(str(d))
        return "\n".join(lines)


class Differential:
    """Runs one workload against two engines and records every observable difference.

    `reference` is the real server (its results steer the workload), `candidate` the twin.
    """

    def __init__(
        self,
        reference: Any,
        candidate: Any,
        *,
        seed: int,
        events: int,
        full_batches: int,
        names: tuple[str, str] = ("real", "twin"),
    ) -> None:
        self.engines = ((names[0], reference), (names[1], candidate))
        self.rng = random.Random(seed)
        self.events_target = events
        self.full_batches = full_batches
        # Ledgers and a user_data_128 tag no one else on the shared server uses.
        base = 2_000_000_000 + (tb.id() % 250_000_000) * 8
        self.ledgers = [base + i for i in range(4)]
        self.tag = tb.id()
        self.workload = Workload(
            random.Random(seed + 1),
            ledgers=self.ledgers,
            tag=self.tag,
            ids=tb.id,
            timeouts=(0, 0, 3600),
            # Amounts aimed exactly at an account's limit are computed from the real balances.
            balance_of=lambda i: next(iter(reference.lookup_accounts([i])), None),
        )
        self.report = Report(seed=seed)

    # -- recording -----------------------------------------------------------------------------

    def disagree(self, what: str, detail: str) -> None:
        self.report.disagreements.append(Disagreement(f"batch {self.report.batches}", what, detail))

    def same(
        self, what: str, values: dict[str, Any], detail: Callable[[], str] = lambda: ""
    ) -> bool:
        """Record a disagreement unless both engines produced equal values."""
        (name_a, a), (name_b, b) = values.items()
        if a == b:
            return True
        self.disagree(what, f"{name_a}: {a!r}\n{name_b}: {b!r}\n{detail()}")
        return False

    def each(self, call: Callable[[Any], Any]) -> dict[str, Any]:
        return {name: call(client) for name, client in self.engines}

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> Report:
        started = time.monotonic()
        w = self.workload
        # Empty batches are legal: no results.
        self.create_accounts([])
        self.create_transfers([])
        # Enough accounts in every ledger for transfers to have somewhere to go.
        self.create_accounts(w.account_batch(kinds=["open"] * 200, imported=False))
        # Full batches (the largest request) spread over the run: transfers, and every third
        # one accounts.
        full = [
            (self.events_target * (k + 1) // (self.full_batches + 1), k % 3 == 1)
            for k in range(self.full_batches)
        ]
        varied = 0
        while varied < self.events_target:
            if full and varied >= full[0][0]:
                _, accounts = full.pop(0)
                if accounts:
                    self.create_accounts(w.account_batch(FULL_BATCH))
                else:
                    self.create_transfers(w.transfer_batch(FULL_BATCH))
                continue
            size = self.batch_size()
            # Every 10th batch is an imported one (whose timestamps are all rejected).
            imported = True if self.report.batches % 10 == 9 else None
            if self.rng.random() < 0.15:
                self.create_accounts(w.account_batch(size, imported=imported))
            else:
                self.create_transfers(w.transfer_batch(size, imported=imported))
            varied += size
            if self.report.batches % 3 == 0:
                self.compare_reads()
        self.compare_everything()
        self.report.seconds = time.monotonic() - started
        return self.report

    def batch_size(self) -> int:
        roll = self.rng.random()
        if roll < 0.5:
            return self.rng.randint(1, 20)
        if roll < 0.85:
            return self.rng.randint(21, 300)
        return self.rng.randint(301, 1000)

    # -- writes --------------------------------------------------------------------------------

    def create_accounts(self, batch: list[tb.Account]) -> None:
        results = self.each(lambda c: c.create_accounts(batch))
        real = self.compare_results("create_accounts", batch, results)
        self.workload.observe_accounts(batch, real)
        ids = _unique(a.id for a in batch)
        stored = self.compare_objects("lookup_accounts", ids, ACCOUNT_FIELDS)
        self.compare_timestamps("create_accounts", batch, results, stored)

    def create_transfers(self, batch: list[tb.Transfer]) -> None:
        results = self.each(lambda c: c.create_transfers(batch))
        real = self.compare_results("create_transfers", batch, results)
        self.workload.observe_transfers(batch, real)
        ids = _unique(t.id for t in batch)
        stored = self.compare_objects("lookup_transfers", ids, TRANSFER_FIELDS)
        self.compare_timestamps("create_transfers", batch, results, stored)
        touched: list[int] = []
        for t in batch:
            touched += (t.debit_account_id, t.credit_account_id)
            p = self.workload.transfers.get(t.pending_id)
            if p is not None:
                touched += (p.debit_account_id, p.credit_account_id)
        self.compare_objects("lookup_accounts", _unique(touched), ACCOUNT_FIELDS)

    def compare_results(
        self, op: str, batch: Sequence[Any], results: dict[str, list[Any]]
    ) -> list[Any]:
        """Compare statuses event by event; return the reference's results."""
        self.report.batches += 1
        self.report.events += len(batch)
        (name_a, a), (name_b, b) = results.items()
        if len(a) != len(batch) or len(b) != len(batch):
            self.disagree(
                f"{op}: result count", f"{len(batch)=} {name_a}={len(a)} {name_b}={len(b)}"
            )
        starts = chain_of(batch)
        for i, (ra, rb) in enumerate(zip(a, b, strict=False)):
            self.report.statuses[f"{op}.{ra.status.name}"] += 1
            if ra.status != rb.status:
                chain = [j for j, s in enumerate(starts) if s == starts[i]]
                context = "\n".join(
                    f"  [{j}] {batch[j]!r} -> "
                    f"{name_a}={a[j].status.name} {name_b}={b[j].status.name}"
                    for j in chain
                )
                self.disagree(
                    f"{op}: status of event {i}",
                    f"{name_a}: {ra.status.name}\n{name_b}: {rb.status.name}\n"
                    f"event: {batch[i]!r}\nits chain (or itself):\n{context}",
                )
        return a

    def compare_objects(
        self, op: str, ids: list[int], names: Sequence[str]
    ) -> dict[str, dict[int, Any]]:
        """Look `ids` up in both engines; compare which exist, in which order, and their fields.
        Return each engine's objects by id."""
        stored: dict[str, dict[int, Any]] = {}
        found: dict[str, list[tuple[int, ...]]] = {}
        for name, client in self.engines:
            objs = [o for chunk in _chunks(ids) for o in getattr(client, op)(list(chunk))]
            stored[name] = {o.id: o for o in objs}
            found[name] = [_fields(o, names) for o in objs]
        self.report.reads += 1
        (name_a, a), (name_b, b) = found.items()
        if a != b:
            by_id_a = {f[0]: f for f in a}
            by_id_b = {f[0]: f for f in b}
            for i in ids:
                if by_id_a.get(i) != by_id_b.get(i):
                    self.disagree(
                        f"{op}: object {i:#x}",
                        f"{name_a}: {by_id_a.get(i)}\n{name_b}: {by_id_b.get(i)}\nfields: {names}",
                    )
            if set(by_id_a.items()) == set(by_id_b.items()):
                self.disagree(f"{op}: order", f"{name_a}: {a}\n{name_b}: {b}")
        return stored

    def compare_timestamps(
        self,
        op: str,
        batch: Sequence[Any],
        results: dict[str, list[Any]],
        stored: dict[str, dict[int, Any]],
    ) -> None:
        shapes = {name: timestamp_shapes(batch, results[name], stored[name]) for name in results}
        (name_a, a), (name_b, b) = shapes.items()
        for i, (sa, sb) in enumerate(zip(a, b, strict=False)):
            if sa != sb:
                self.disagree(
                    f"{op}: result timestamp of event {i}",
                    f"{name_a}: {sa} {name_b}: {sb}\nevent: {batch[i]!r}\n"
                    f"status: {results[name_a][i].status.name}",
                )

    # -- reads ---------------------------------------------------------------------------------

    def compare_reads(self) -> None:
        """A handful of random read queries (valid and a few invalid filters)."""
        w, rng = self.workload, self.rng
        if not w.account_ids:
            return
        # Mostly the busy accounts (the first dozen of each ledger), which have transfers to
        # list; history accounts for get_account_balances; and any account at all.
        hot = [i for ids in w.by_ledger.values() for i in ids[:12]]
        history = [i for i in hot if int(w.accounts[i].flags) & A_HISTORY]
        accounts = [rng.choice(hot), rng.choice(hot), rng.choice(w.account_ids)]
        if history:
            accounts += [rng.choice(history), rng.choice(history)]
        for account_id in accounts:
            self.compare_account_reads(account_id)
        for _ in range(2):
            self.compare_query("query_accounts", ACCOUNT_FIELDS)
            self.compare_query("query_transfers", TRANSFER_FIELDS)
        if rng.random() < 0.3:
            self.compare_invalid_filters(rng.choice(accounts))

    def _window(self) -> tuple[str, int, int, int, int]:
        """A timestamp window as positions in the unbounded result: (kind, i, j, di, dj)."""
        rng = self.rng
        kind = rng.choice(("none", "none", "both", "min", "max"))
        i, j = rng.randrange(1 << 16), rng.randrange(1 << 16)
        return kind, i, j, rng.choice((0, 0, 1)), rng.choice((0, 0, 1))

    @staticmethod
    def _bounds(objs: Sequence[Any], window: tuple[str, int, int, int, int]) -> tuple[int, int]:
        """The window's (timestamp_min, timestamp_max) in one engine, from its own objects."""
        kind, i, j, di, dj = window
        ts = sorted(o.timestamp for o in objs)
        if kind == "none" or not ts:
            return 0, 0
        lo, hi = sorted((ts[i % len(ts)], ts[j % len(ts)]))
        lo, hi = lo + di, hi - dj  # ±1: the bound excludes that object
        if kind == "min":
            return lo, 0
        if kind == "max":
            return 0, max(hi, 1)
        return lo, max(hi, 1)

    def compare_account_reads(self, account_id: int) -> None:
        rng, tag = self.rng, self.tag
        flags = rng.choice((AFF.DEBITS, AFF.CREDITS, AFF.DEBITS | AFF.CREDITS))
        if rng.random() < 0.35:
            flags |= AFF.REVERSED
        reversed_ = bool(flags & AFF.REVERSED)
        scope = {
            "account_id": account_id,
            "user_data_128": rng.choice((0, 0, 0, tag, tag + 1)),
            "user_data_64": rng.choice((0, 0, 0, 1, 2)),
            "user_data_32": rng.choice((0, 0, 0, 7)),
            "code": rng.choice((0, 0, 0, 1, 2)),
        }
        unbounded = account_filter(
            **scope, timestamp_min=0, timestamp_max=0, limit=QUERY_LIMIT_MAX, flags=flags
        )
        full = self.each(lambda c: c.get_account_transfers(unbounded))
        self.report.reads += 1
        if not self.same(
            "get_account_transfers (unbounded)",
            {k: [_fields(t, TRANSFER_FIELDS) for t in v] for k, v in full.items()},
            lambda: repr(unbounded),
        ):
            return
        window = self._window()
        limit = rng.choice((1, 3, 10, QUERY_LIMIT_MAX, rng.randint(1, 60)))
        transfers: dict[str, list[tb.Transfer]] = {}
        balances: dict[str, list[tb.AccountBalance]] = {}
        filters: dict[str, tb.AccountFilter] = {}
        for name, client in self.engines:
            ts_min, ts_max = self._bounds(full[name], window)
            f = account_filter(
                **scope, timestamp_min=ts_min, timestamp_max=ts_max, limit=limit, flags=flags
            )
            filters[name] = f
            transfers[name] = client.get_account_transfers(f)
            balances[name] = client.get_account_balances(f)
            for kind, objs in (("transfers", transfers[name]), ("balances", balances[name])):
                if not ordered_by_timestamp(objs, reversed_):
                    self.disagree(f"get_account_{kind}: {name} out of order", repr(f))
            # A balance is the account's balance right after a transfer: same timestamps.
            if balances[name] and [b.timestamp for b in balances[name]] != [
                t.timestamp for t in transfers[name]
            ]:
                self.disagree(f"get_account_balances: {name} timestamps", repr(f))
        self.report.reads += 2
        self.same(
            "get_account_transfers",
            {k: [_fields(t, TRANSFER_FIELDS) for t in v] for k, v in transfers.items()},
            lambda: f"filters: {filters}",
        )
        self.same(
            "get_account_balances",
            {k: [_fields(b, BALANCE_FIELDS) for b in v] for k, v in balances.items()},
            lambda: f"filters: {filters}",
        )

    def compare_query(self, op: str, names: Sequence[str]) -> None:
        rng, tag = self.rng, self.tag
        # Scoped to this run: one of its ledgers or its user_data_128 tag.
        ledger = rng.choice((0, *self.ledgers))
        scope = {
            "user_data_128": tag if ledger == 0 else rng.choice((0, 0, tag, tag + 1)),
            "user_data_64": rng.choice((0, 0, 0, 1, 2, 3)),
            "user_data_32": rng.choice((0, 0, 0, 7, 8)),
            "ledger": ledger,
            "code": rng.choice((0, 0, 0, 1, 2, 3)),
        }
        flags = QFF.REVERSED if rng.random() < 0.35 else QFF.NONE
        unbounded = query_filter(
            **scope, timestamp_min=0, timestamp_max=0, limit=QUERY_LIMIT_MAX, flags=flags
        )
        full = self.each(lambda c: getattr(c, op)(unbounded))
        self.report.reads += 1
        if not self.same(
            f"{op} (unbounded)",
            {k: [_fields(o, names) for o in v] for k, v in full.items()},
            lambda: repr(unbounded),
        ):
            return
        window = self._window()
        limit = rng.choice((1, 5, 100, QUERY_LIMIT_MAX, rng.randint(1, 300)))
        got: dict[str, list[tuple[int, ...]]] = {}
        filters: dict[str, tb.QueryFilter] = {}
        for name, client in self.engines:
            ts_min, ts_max = self._bounds(full[name], window)
            f = query_filter(
                **scope, timestamp_min=ts_min, timestamp_max=ts_max, limit=limit, flags=flags
            )
            filters[name] = f
            objs = getattr(client, op)(f)
            if not ordered_by_timestamp(objs, bool(flags & QFF.REVERSED)):
                self.disagree(f"{op}: {name} out of order", repr(f))
            got[name] = [_fields(o, names) for o in objs]
        self.report.reads += 1
        self.same(op, got, lambda: f"filters: {filters}")

    def compare_invalid_filters(self, account_id: int) -> None:
        """Filters TigerBeetle rejects: every engine returns an empty list."""
        tag, ledger = self.tag, self.ledgers[0]
        account_filters = [
            account_filter(account_id=0, limit=10, flags=AFF.DEBITS | AFF.CREDITS),
            account_filter(account_id=account_id, limit=10, flags=AFF.NONE),
            account_filter(account_id=account_id, limit=10, flags=AFF.DEBITS | 8),
            account_filter(account_id=account_id, limit=0, flags=AFF.DEBITS),
            account_filter(
                account_id=account_id, timestamp_min=5, timestamp_max=4, limit=10, flags=AFF.CREDITS
            ),
            account_filter(
                account_id=account_id, timestamp_min=TIMESTAMP_MAX + 1, limit=10, flags=AFF.DEBITS
            ),
        ]
        query_filters = [
            query_filter(user_data_128=tag, ledger=ledger, limit=0, flags=QFF.NONE),
            query_filter(user_data_128=tag, ledger=ledger, limit=10, flags=QFF.REVERSED | 2),
            query_filter(user_data_128=tag, timestamp_min=9, timestamp_max=8, limit=10, flags=0),
            query_filter(user_data_128=tag, timestamp_max=TIMESTAMP_MAX + 1, limit=10, flags=0),
        ]
        calls = [(op, f) for f in account_filters for op in ACCOUNT_READS] + [
            (op, q) for q in query_filters for op in QUERY_READS
        ]
        for op, f in calls:
            self.report.reads += 1
            found = self.each(lambda c, op=op, f=f: [o.timestamp for o in getattr(c, op)(f)])
            self.same(
                f"{op} (invalid filter)",
                {name: len(objs) for name, objs in found.items()},
                lambda f=f: repr(f),
            )

    # -- the end -------------------------------------------------------------------------------

    def compare_everything(self) -> None:
        """Every account and transfer of the run, page by page, and the money invariants."""
        for ledger in self.ledgers:
            every: dict[str, dict[str, list[Any]]] = {}
            for op, names in zip(QUERY_READS, (ACCOUNT_FIELDS, TRANSFER_FIELDS), strict=True):
                every[op] = self.each(lambda c, op=op, ledger=ledger: self._all(c, op, ledger))
                self.report.reads += 1
                self.same(
                    f"{op} (all of ledger {ledger})",
                    {k: [_fields(o, names) for o in v] for k, v in every[op].items()},
                )
            for name, accounts in every["query_accounts"].items():
                for problem in money_problems(accounts):
                    self.disagree(f"invariant in {name}, ledger {ledger}", problem)

    @staticmethod
    def _all(client: Any, op: str, ledger: int) -> list[Any]:
        """Every object of `ledger`, paging on each engine's own timestamps."""
        out: list[Any] = []
        ts_min = 0
        while True:
            page = getattr(client, op)(
                query_filter(ledger=ledger, timestamp_min=ts_min, limit=QUERY_LIMIT_MAX)
            )
            out += page
            if len(page) < QUERY_LIMIT_MAX:
                return out
            ts_min = page[-1].timestamp + 1


def money_problems(accounts: Sequence[tb.Account]) -> list[str]:
    """Violations of TigerBeetle's money invariants among the accounts of one ledger."""
    problems = []
    if sum(a.debits_posted for a in accounts) != sum(a.credits_posted for a in accounts):
        problems.append("posted debits != posted credits")
    if sum(a.debits_pending for a in accounts) != sum(a.credits_pending for a in accounts):
        problems.append("pending debits != pending credits")
    for a in accounts:
        flags = int(a.flags)
        if flags & tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and (
            a.debits_pending + a.debits_posted > a.credits_posted
        ):
            problems.append(f"account {a.id:#x}: debits exceed credits")
        if flags & tb.AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS and (
            a.credits_pending + a.credits_posted > a.debits_posted
        ):
            problems.append(f"account {a.id:#x}: credits exceed debits")
    return problems


def _seed() -> int:
    value = os.environ.get("TBLEDGER_DIFF_SEED")
    return int(value) if value else random.randrange(1 << 32)


@pytest.mark.real
@pytest.mark.slow
def test_twin_agrees_with_real_tigerbeetle(tb_real_server: RealServer) -> None:
    seed = _seed()
    print(f"\ndifferential: seed={seed} (TBLEDGER_DIFF_SEED), events={EVENTS}")
    with (
        tb.ClientSync(
            cluster_id=tb_real_server.cluster_id, replica_addresses=tb_real_server.addresses
        ) as real,
        ClientSync(cluster_id=0) as twin,
    ):
        report = Differential(
            real, twin, seed=seed, events=EVENTS, full_batches=max(1, round(EVENTS / 7000))
        ).run()
    print(report.summary())
    assert not report.disagreements, (
        f"{len(report.disagreements)} disagreements with the real server "
        f"(seed={seed}); first: {report.disagreements[0]}"
    )


def test_differential_harness_on_two_twins() -> None:
    """The harness itself, without a server: two twins whose clocks differ by an hour must
    agree (timestamps are compared by shape only), and the workload must reach the statuses
    the differential test is meant to compare."""
    seed = 20_260_701
    with (
        ClientSync(cluster_id=0) as reference,
        ClientSync(cluster_id=0, clock=ManualClock(time.time_ns() - 3600 * 10**9)) as candidate,
    ):
        report = Differential(
            reference,
            candidate,
            seed=seed,
            events=10_000,
            full_batches=1,
            names=("twin_a", "twin_b"),
        ).run()
    print("\n" + report.summary())
    assert not report.disagreements, str(report.disagreements[0])
    seen = {name.split(".", 1)[1] for name in report.statuses}
    expected = {
        "CREATED",
        "EXISTS",
        "LINKED_EVENT_FAILED",
        "LINKED_EVENT_CHAIN_OPEN",
        "EXISTS_WITH_DIFFERENT_FLAGS",
        "EXISTS_WITH_DIFFERENT_AMOUNT",
        "ID_ALREADY_FAILED",
        "DEBIT_ACCOUNT_NOT_FOUND",
        "PENDING_TRANSFER_NOT_FOUND",
        "PENDING_TRANSFER_ALREADY_POSTED",
        "PENDING_TRANSFER_ALREADY_VOIDED",
        "EXCEEDS_PENDING_TRANSFER_AMOUNT",
        "PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT",
        "EXCEEDS_CREDITS",
        "EXCEEDS_DEBITS",
        "DEBIT_ACCOUNT_ALREADY_CLOSED",
        "CREDIT_ACCOUNT_ALREADY_CLOSED",
        "OVERFLOWS_DEBITS_POSTED",
        "IMPORTED_EVENT_EXPECTED",
        "IMPORTED_EVENT_NOT_EXPECTED",
        "IMPORTED_EVENT_TIMESTAMP_MUST_NOT_REGRESS",
        "FLAGS_ARE_MUTUALLY_EXCLUSIVE",
    }
    assert expected <= seen, f"the workload never produced {sorted(expected - seen)}"
