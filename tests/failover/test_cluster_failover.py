"""Failover of a real three-replica cluster under steady load: nothing lost, nothing applied twice.

A `LedgerService` (PostgreSQL store in a schema of its own, engine URL naming all three replicas)
runs steady load — several tasks each creating single transfers back to back, plus a task sending
small batches, plain and atomic — while the cluster loses its primary (two of three replicas keep
a quorum: after the view change transfers succeed again), then a second replica (no quorum: every
call answers within its deadline with a typed error, and the circuit breaker opens), and then gets
both back (the breaker closes through its half-open probe and transfers succeed). `recover()`
then settles the backlog, and the engine and the audit trail are compared transfer by transfer:
every acknowledged transfer is in the engine once, with its amount; every intent has exactly one
outcome; every call that ended with an unknown outcome is now either in the engine and recorded
as posted, or recorded as failed; debits equal credits on each ledger and every account's
balance is the sum of the transfers the engine holds for it.

Needs the server binary in ``TIGERBEETLE_BIN`` (the test starts, kills and restarts replicas
itself, so an existing cluster from ``TIGERBEETLE_ADDRESSES`` will not do) and PostgreSQL (see
tests/support/database.py); skips with the reason otherwise. Run with ``-s`` for a summary.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import tigerbeetle as tb

from tbledger.config import Settings
from tbledger.errors import (
    CircuitOpenError,
    OutcomeUnknownError,
    TransferFailedError,
)
from tbledger.ids import format_id, parse_id
from tbledger.limits import BATCH_EVENTS_MAX, STORE_PAGE_ROWS_MAX
from tbledger.resilience import CircuitState
from tbledger.service import LedgerService, TransferRequest, TransferResult
from tbledger.store import AuditEvent, EventKind, Store, StoreOptions
from tests.support.book import ServiceBook, open_service_book
from tests.support.database import SessionDatabase
from tests.support.tbcluster import Cluster, start_cluster, wait_answering

BINARY_ENV = "TIGERBEETLE_BIN"

# The service under test: a modest deadline, few retries, a breaker that opens after two
# consecutive engine faults and probes again after a second.
DEADLINE_S = 2.0
SERVICE_SETTINGS: dict[str, Any] = {
    "request_timeout_ms": int(DEADLINE_S * 1000),
    "retry_attempts_max": 3,
    "retry_delay_ms": 20,
    "retry_delay_max_ms": 200,
    "breaker_failure_threshold": 2,
    "breaker_reset_timeout_s": 1.0,
    "recovery_grace_s": 0.0,
}
# Store writes and event-loop scheduling on top of the engine deadline.
LATENCY_MARGIN_S = 1.0
# The longest a call may take while there is no quorum: the deadline covers the whole call
# (queueing behind a stuck request included), plus the margin.
CALL_BOUND_S = DEADLINE_S + LATENCY_MARGIN_S
# A call still running after this long is a hang (reported, and the test fails).
HANG_S = 30.0

WORKERS = 4
PAUSE_S = 0.02  # between one worker's calls
BATCH_EVERY_S = 0.4
BATCH_SIZE = 4
STEADY_S = 3.0
AFTER_VIEW_CHANGE_S = 3.0
OUTAGE_S = 8.0
AFTER_RECOVERY_S = 2.0
# How many acknowledged calls, started after an event, show that transfers succeed again.
ACKS_TO_CONFIRM = 20
CONFIRM_TIMEOUT_S = 60.0
RECOVERY_PASSES_MAX = 20

DEPOSIT, PAYMENT = 1, 2
LEDGERS = (1, 2)
USERS_PER_LEDGER = 3
FUNDING = 10**9

TYPED = (OutcomeUnknownError.__name__, CircuitOpenError.__name__)
NO_OUTCOME_KINDS = frozenset({EventKind.SUBMITTED, EventKind.OUTCOME_UNKNOWN})


def _reason() -> str | None:
    binary = os.environ.get(BINARY_ENV)
    if not binary:
        return (
            f"no TigerBeetle server binary: set {BINARY_ENV} to run the cluster failover test "
            "(it starts, kills and restarts three replicas itself)"
        )
    if not os.access(binary, os.X_OK):
        return f"{BINARY_ENV}={binary!r} is not an executable file"
    return None


_REASON = _reason()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real,
    pytest.mark.skipif(_REASON is not None, reason=_REASON or ""),
    pytest.mark.timeout(300),
]


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """Three fresh replicas on loopback; all killed and their files removed at the end."""
    with start_cluster(os.environ[BINARY_ENV], replica_count=3) as running:
        yield running


@pytest.fixture
def store_options(postgres_database: SessionDatabase) -> StoreOptions:
    """A fresh schema in this session's PostgreSQL database, used as the application role."""
    return postgres_database.store_options()


@pytest.fixture
async def service(
    cluster: Cluster, postgres_database: SessionDatabase, store_options: StoreOptions
) -> AsyncIterator[LedgerService]:
    await wait_answering(cluster)
    settings = Settings(
        engine_url=cluster.engine_url,
        database_url=postgres_database.url,
        database_schema=store_options.schema,
        database_role=store_options.role,
        **SERVICE_SETTINGS,
    )
    ledger = LedgerService(settings)
    await ledger.connect()
    try:
        yield ledger
    finally:
        await ledger.close()


# -- the load -------------------------------------------------------------------------------------


@dataclass
class Call:
    """One service call: what it asked, in which phase, how long it took and how it ended."""

    kind: str  # single | batch | atomic | setup | replay
    requests: list[TransferRequest]
    phase: str
    started: float
    elapsed: float = 0.0
    # ok | refused | OutcomeUnknownError | CircuitOpenError | hang | other:<type>
    outcome: str = ""
    results: list[TransferResult] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def ids(self) -> list[int]:
        return [parse_id(r.transfer_id) for r in self.requests if r.transfer_id is not None]

    @property
    def acknowledged(self) -> list[int]:
        """The transfer ids this call reported as created (or existing)."""
        return [r.id for r in self.results if r.ok] if self.outcome == "ok" else []


class Load:
    """Steady load on the service, every call recorded with its outcome and wall time."""

    def __init__(self, service: LedgerService, books: dict[int, ServiceBook]) -> None:
        self.service = service
        self.books = books
        self.calls: list[Call] = []
        self.phase = "setup"
        self.stop = asyncio.Event()
        self.hung: list[asyncio.Future[Any]] = []
        self._rng = random.Random(20_250_101)
        self._numbers = itertools.count()

    def request(self) -> TransferRequest:
        rng = self._rng
        ledger = rng.choice(LEDGERS)
        number = next(self._numbers)
        common: dict[str, Any] = {
            "ledger": ledger,
            "transfer_id": tb.id(),
            "idempotency_key": f"failover-{number}",
        }
        if rng.random() < 0.5:
            return TransferRequest(
                debit_account_id=self.books[ledger].treasury,
                credit_account_id=rng.choice(self.books[ledger].wallets),
                amount=rng.randint(1, 1_000),
                code=DEPOSIT,
                **common,
            )
        payer, payee = rng.sample(self.books[ledger].wallets, 2)
        return TransferRequest(
            debit_account_id=payer,
            credit_account_id=payee,
            amount=rng.randint(1, 100),
            code=PAYMENT,
            **common,
        )

    async def run(self, kind: str, requests: list[TransferRequest]) -> Call:
        call = Call(kind, requests, self.phase, time.monotonic())
        self.calls.append(call)
        if kind in ("single", "setup", "replay"):
            work: Any = self.service.create_transfer(requests[0])
        else:
            work = self.service.create_transfers(requests, atomic=kind == "atomic")
        task: asyncio.Future[Any] = asyncio.ensure_future(work)
        await asyncio.wait({task}, timeout=HANG_S)
        call.elapsed = time.monotonic() - call.started
        if not task.done():
            call.outcome = "hang"
            self.hung.append(task)
            return call
        try:
            result = task.result()
        except (OutcomeUnknownError, CircuitOpenError) as exc:
            call.outcome, call.error = type(exc).__name__, exc
        except TransferFailedError as exc:
            call.outcome, call.error = "refused", exc
        except Exception as exc:
            call.outcome, call.error = f"other:{type(exc).__name__}", exc
        else:
            call.results = [result] if isinstance(result, TransferResult) else list(result)
            call.outcome = "ok" if all(r.ok for r in call.results) else "refused"
        return call

    async def single_worker(self) -> None:
        while not self.stop.is_set():
            await self.run("single", [self.request()])
            await asyncio.sleep(PAUSE_S)

    async def batch_worker(self) -> None:
        atomic = False
        while not self.stop.is_set():
            await asyncio.sleep(BATCH_EVERY_S)
            kind = "atomic" if atomic else "batch"
            await self.run(kind, [self.request() for _ in range(BATCH_SIZE)])
            atomic = not atomic

    def acks_since(self, moment: float) -> int:
        return sum(1 for c in self.calls if c.started >= moment and c.outcome == "ok")

    async def wait_acks_since(self, moment: float, count: int, what: str) -> float:
        """Wait until `count` calls started after `moment` were acknowledged; the time taken."""
        deadline = time.monotonic() + CONFIRM_TIMEOUT_S
        while self.acks_since(moment) < count:
            if time.monotonic() > deadline:
                outcomes = Counter(c.outcome for c in self.calls if c.started >= moment)
                raise AssertionError(
                    f"{what}: only {self.acks_since(moment)} acknowledged calls within "
                    f"{CONFIRM_TIMEOUT_S} s (outcomes since: {dict(outcomes)})"
                )
            await asyncio.sleep(0.05)
        return time.monotonic() - moment


class BreakerWatch:
    """Polls the breaker's state and keeps every change, with the time and the load's phase."""

    def __init__(self, service: LedgerService, load: Load) -> None:
        self.service = service
        self.load = load
        self.changes: list[tuple[float, str, CircuitState]] = []

    async def run(self) -> None:
        last = None
        while True:
            state = self.service.breaker.state
            if state is not last:
                self.changes.append((time.monotonic(), self.load.phase, state))
                last = state
            await asyncio.sleep(0.002)

    def states_since(self, moment: float) -> list[CircuitState]:
        return [s for t, _, s in self.changes if t >= moment]


async def open_books(service: LedgerService) -> dict[int, ServiceBook]:
    """Per ledger: a treasury that issues money and users that pay each other."""
    return {
        ledger: await open_service_book(
            service,
            ledger=ledger,
            owners=[f"user-{ledger}-{k}" for k in range(USERS_PER_LEDGER)],
        )
        for ledger in LEDGERS
    }


async def fund(load: Load) -> None:
    """Give every user enough that payments are never refused for want of money."""
    for ledger in LEDGERS:
        for user in load.books[ledger].wallets:
            request = TransferRequest(
                debit_account_id=load.books[ledger].treasury,
                credit_account_id=user,
                amount=FUNDING,
                ledger=ledger,
                code=DEPOSIT,
                transfer_id=tb.id(),
            )
            call = await load.run("setup", [request])
            assert call.outcome == "ok", call


# -- cluster control without blocking the event loop ----------------------------------------------


async def kill(cluster: Cluster, index: int, sig: signal.Signals) -> float:
    """Stop replica `index` with `sig`; the moment it was signalled."""
    moment = time.monotonic()
    await asyncio.to_thread(cluster.stop, index, sig)
    return moment


async def restart(cluster: Cluster, indexes: list[int]) -> None:
    # Started from this (the test's) thread, so that each replica dies with it; waited for in
    # worker threads, so that the load keeps running meanwhile.
    for index in indexes:
        cluster.start(index, wait=False)
    await asyncio.gather(*(asyncio.to_thread(cluster.wait_listening, i) for i in indexes))


async def wait_primary(cluster: Cluster) -> int:
    return await asyncio.to_thread(cluster.wait_primary)


# -- verification ---------------------------------------------------------------------------------


async def settle_backlog(service: LedgerService) -> list[str]:
    """Run `recover()` until no intent is left without outcome; what each pass did."""
    passes: list[str] = []
    for _ in range(RECOVERY_PASSES_MAX):
        try:
            report = await service.recover(grace_s=0)
        except (OutcomeUnknownError, CircuitOpenError) as exc:
            passes.append(f"{type(exc).__name__}")
            await asyncio.sleep(1.0)
            continue
        passes.append(
            f"examined={report.examined} found={report.found_in_engine} "
            f"resubmitted={report.resubmitted} failed={report.failed}"
        )
        if not await service.store.intents_without_outcome(1):
            return passes
    raise AssertionError(f"the backlog did not empty in {RECOVERY_PASSES_MAX} passes: {passes}")


async def all_events(store: Store) -> dict[int, list[AuditEvent]]:
    """Every transfer's audit events, in order, read from the durable tail."""
    by_transfer: dict[int, list[AuditEvent]] = defaultdict(list)
    cursor = 0
    while True:
        batch = await store.events_since(cursor, STORE_PAGE_ROWS_MAX)
        for event in batch:
            cursor = event.seq
            if event.transfer_id is not None:
                by_transfer[event.transfer_id].append(event)
        if len(batch) < STORE_PAGE_ROWS_MAX:
            return by_transfer


async def lookup_transfers(client: tb.ClientAsync, ids: list[int]) -> list[tb.Transfer]:
    found: list[tb.Transfer] = []
    for start in range(0, len(ids), BATCH_EVENTS_MAX):
        found.extend(await client.lookup_transfers(ids[start : start + BATCH_EVENTS_MAX]))
    return found


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    in_engine: int = 0
    unknown_resolved: Counter[str] = field(default_factory=Counter)
    circuit_open_recorded: int = 0

    def check(self, condition: bool, problem: str) -> None:
        if not condition and len(self.problems) < 50:
            self.problems.append(problem)


async def verify(
    calls: list[Call], books: dict[int, ServiceBook], client: tb.ClientAsync, store: Store
) -> Verdict:
    verdict = Verdict()
    requests: dict[int, TransferRequest] = {}
    call_of: dict[int, Call] = {}
    for call in calls:
        if call.kind == "replay":
            continue
        for request in call.requests:
            transfer_id = parse_id(request.transfer_id or 0)
            verdict.check(transfer_id not in requests, f"id {transfer_id} used twice by the load")
            requests[transfer_id] = request
            call_of[transfer_id] = call
    ids = list(requests)
    found_list = await lookup_transfers(client, ids)
    found = {t.id: t for t in found_list}
    verdict.check(len(found) == len(found_list), "the engine returned an id twice")
    verdict.in_engine = len(found)
    events = await all_events(store)
    intents: dict[int, Any] = {}
    for start in range(0, len(ids), BATCH_EVENTS_MAX):
        intents.update(await store.get_intents(ids[start : start + BATCH_EVENTS_MAX]))
    acknowledged = {i for c in calls if c.kind != "replay" for i in c.acknowledged}

    for transfer_id, request in requests.items():
        verdict.checked += 1
        call = call_of[transfer_id]
        name = f"{format_id(transfer_id)} ({call.kind}, {call.phase}, {call.outcome})"
        transfer = found.get(transfer_id)
        history = events.get(transfer_id, [])
        outcomes = [e for e in history if e.kind not in NO_OUTCOME_KINDS]
        kinds = [str(e.kind) for e in history]
        if transfer is not None:
            verdict.check(
                (transfer.amount, transfer.debit_account_id, transfer.credit_account_id)
                == (request.amount, request.debit_account_id, request.credit_account_id)
                and (transfer.ledger, transfer.code) == (request.ledger, request.code),
                f"{name}: the engine holds other fields: {transfer}",
            )
        if transfer_id in intents:
            verdict.check(len(outcomes) == 1, f"{name}: {len(outcomes)} outcomes: {kinds}")
            if outcomes:
                posted = outcomes[0].kind is EventKind.POSTED
                verdict.check(
                    posted == (transfer is not None),
                    f"{name}: recorded {kinds}, in the engine: {transfer is not None}",
                )
        else:
            verdict.check(not history, f"{name}: events without an intent: {kinds}")
            verdict.check(transfer is None, f"{name}: in the engine without an intent")
        if transfer_id in acknowledged:
            verdict.check(transfer is not None, f"{name}: acknowledged, not in the engine")
            verdict.check(transfer_id in intents, f"{name}: acknowledged without an intent")
        elif call.outcome == OutcomeUnknownError.__name__:
            verdict.check(transfer_id in intents, f"{name}: unknown outcome without an intent")
            if outcomes:
                settled = "posted" if transfer is not None else f"failed:{outcomes[0].status}"
                verdict.unknown_resolved[settled] += 1
        elif call.outcome == CircuitOpenError.__name__:
            verdict.check(transfer is None, f"{name}: refused by the breaker, yet in the engine")
            if transfer_id in intents:
                verdict.circuit_open_recorded += 1
                verdict.check(
                    [e.status for e in outcomes] == ["circuit_open"],
                    f"{name}: refused by the breaker, recorded {kinds}",
                )
        else:
            verdict.check(False, f"{name}: unexpected call outcome {call.error!r}")

    # Money: debits equal credits per ledger, and each account's balance is exactly the sum of
    # the transfers the engine holds for it (no transfer the load does not know of, none twice).
    account_ids = [i for book in books.values() for i in book.accounts]
    accounts = {a.id: a for a in await client.lookup_accounts(account_ids)}
    verdict.check(len(accounts) == len(account_ids), "an account is missing in the engine")
    credits: Counter[int] = Counter()
    debits: Counter[int] = Counter()
    for transfer in found.values():
        credits[transfer.credit_account_id] += transfer.amount
        debits[transfer.debit_account_id] += transfer.amount
    for ledger in LEDGERS:
        on_ledger = [a for a in accounts.values() if a.ledger == ledger]
        total_debits = sum(a.debits_posted for a in on_ledger)
        total_credits = sum(a.credits_posted for a in on_ledger)
        verdict.check(
            total_debits == total_credits,
            f"ledger {ledger}: debits {total_debits} != credits {total_credits}",
        )
        verdict.check(
            all(a.debits_pending == a.credits_pending == 0 for a in on_ledger),
            f"ledger {ledger}: pending amounts left",
        )
    for account in accounts.values():
        verdict.check(
            (account.debits_posted, account.credits_posted)
            == (debits[account.id], credits[account.id]),
            f"account {format_id(account.id)}: engine posted "
            f"{account.debits_posted}/{account.credits_posted}, transfers sum to "
            f"{debits[account.id]}/{credits[account.id]}",
        )
    return verdict


# -- the test -------------------------------------------------------------------------------------


async def test_cluster_failover_keeps_every_transfer_exactly_once(
    cluster: Cluster, service: LedgerService, store_options: StoreOptions
) -> None:
    began = time.monotonic()
    books = await open_books(service)
    load = Load(service, books)
    await fund(load)
    watch = BreakerWatch(service, load)
    events: list[str] = []

    def note(what: str) -> None:
        events.append(f"{time.monotonic() - began:6.1f}s {what}")

    tasks = [asyncio.create_task(load.single_worker()) for _ in range(WORKERS)]
    tasks.append(asyncio.create_task(load.batch_worker()))
    watcher = asyncio.create_task(watch.run())
    try:
        # 1. Steady: every call acknowledged.
        load.phase = "steady"
        await asyncio.sleep(STEADY_S)

        # 2. The primary crashes; the two others keep a quorum and elect a new one.
        first = await wait_primary(cluster)
        load.phase = "one_down"
        first_killed_at = await kill(cluster, first, signal.SIGKILL)
        note(f"SIGKILL replica {first} (primary)")
        took = await load.wait_acks_since(first_killed_at, ACKS_TO_CONFIRM, "after the view change")
        note(f"{ACKS_TO_CONFIRM} calls acknowledged {took:.1f}s after the kill")
        view_changed_ok = time.monotonic()
        await asyncio.sleep(AFTER_VIEW_CHANGE_S)
        new_primary = await wait_primary(cluster)
        note(f"replica {new_primary} leads view {cluster.views()[new_primary][0]}")

        # 3. A second replica goes: no quorum. Calls fail fast with typed errors, never hang.
        load.phase = "no_quorum"
        second_killed_at = await kill(cluster, new_primary, signal.SIGTERM)
        note(f"SIGTERM replica {new_primary} (the new primary): no quorum")
        await asyncio.sleep(OUTAGE_S)

        # 4. Both come back; the breaker closes and transfers succeed again.
        load.phase = "restarting"
        restart_at = time.monotonic()
        await restart(cluster, [first, new_primary])
        note(f"restarted replicas {first} and {new_primary} (listening)")
        load.phase = "restored"
        took = await load.wait_acks_since(restart_at, ACKS_TO_CONFIRM, "after the restart")
        note(f"{ACKS_TO_CONFIRM} calls acknowledged {took:.1f}s after the restart")
        await asyncio.sleep(AFTER_RECOVERY_S)
    finally:
        load.stop.set()
        await asyncio.wait(tasks, timeout=HANG_S + 5)
        for task in tasks:
            task.cancel()
        watcher.cancel()
    note("load stopped")
    for task in tasks:
        if task.done() and not task.cancelled() and (failure := task.exception()) is not None:
            raise failure

    # 5. Settle what the outage left unknown (late answers may have settled some already).
    backlog = len(await service.store.intents_without_outcome(STORE_PAGE_ROWS_MAX))
    passes = await settle_backlog(service)
    note(f"backlog {backlog}; recover(): {len(passes)} pass(es): {'; '.join(passes)}")
    assert not await service.store.intents_without_outcome(1)

    # A caller retrying an unknown outcome with the same request gets the settled outcome back.
    unknown = [
        c for c in load.calls if c.kind == "single" and c.outcome == OutcomeUnknownError.__name__
    ]
    replays = []
    for call in unknown[:25]:
        replays.append(await load.run("replay", call.requests))
    await service.close()  # waits for late outcomes recorded in the background

    # 6. Compare the engine and the audit trail, transfer by transfer.
    client = tb.ClientAsync(cluster_id=cluster.cluster_id, replica_addresses=cluster.addresses)
    store = await Store.connect(service.settings.database_url, migrate=False, options=store_options)
    try:
        verdict = await verify(load.calls, books, client, store)
        replay_problems = []
        for replay in replays:
            (transfer_id,) = replay.ids
            history = await store.transfer_audit(transfer_id)
            outcomes = [e for e in history if e.kind not in NO_OUTCOME_KINDS]
            posted = bool(outcomes) and outcomes[0].kind is EventKind.POSTED
            expected = "ok" if posted else "refused"
            if replay.outcome != expected or (posted and not replay.results[0].replayed):
                replay_problems.append(f"{format_id(transfer_id)}: {replay.outcome} {replay}")
    finally:
        await store.close()
        await client.close()

    summary = summarize(
        load,
        watch,
        cluster,
        events,
        verdict,
        replays,
        phases={
            "the outage": (second_killed_at, restart_at),
        },
    )
    print(summary)

    # -- assertions -------------------------------------------------------------------------------
    calls = [c for c in load.calls if c.kind not in ("setup", "replay")]
    assert not load.hung, f"{len(load.hung)} calls hung for {HANG_S} s"
    others = [c for c in calls if c.outcome.startswith("other") or c.outcome == "refused"]
    assert not others, f"untyped errors or refusals: {[(c.outcome, c.error) for c in others[:5]]}"
    steady = [c for c in calls if c.phase == "steady"]
    assert steady and all(c.outcome == "ok" for c in steady), "a call failed in steady state"
    # Two of three replicas keep a quorum: once the new primary leads, every call that ended
    # before the second kill succeeded (calls still running at that kill belong to the outage).
    settled = [
        c
        for c in calls
        if view_changed_ok <= c.started and c.started + c.elapsed < second_killed_at
    ]
    assert settled and all(c.outcome == "ok" for c in settled), Counter(c.outcome for c in settled)
    # No quorum: nothing is acknowledged, every call ends with a typed error within its deadline.
    # (A call that started as the replica was signalled may still have been committed.)
    outage = [c for c in calls if second_killed_at + 0.1 <= c.started < restart_at]
    assert outage, "no call during the outage"
    assert all(c.outcome in TYPED for c in outage), Counter(c.outcome for c in outage)
    slowest = max(c.elapsed for c in calls if second_killed_at <= c.started < restart_at)
    assert slowest <= CALL_BOUND_S, (
        f"a call took {slowest:.2f}s during the outage (deadline {DEADLINE_S}s, bound "
        f"{CALL_BOUND_S}s)"
    )
    outage_states = watch.states_since(second_killed_at)
    assert CircuitState.OPEN in outage_states, f"the breaker never opened: {watch.changes}"
    assert CircuitState.HALF_OPEN in outage_states, f"the breaker never probed: {watch.changes}"
    assert any(c.outcome == CircuitOpenError.__name__ for c in outage)
    # Back: the breaker closed again and transfers succeed.
    after = watch.states_since(restart_at)
    assert service.breaker.state is CircuitState.CLOSED
    assert CircuitState.CLOSED in after or outage_states[-1] is CircuitState.CLOSED
    # Nothing lost, nothing twice, nothing left unknown.
    assert not verdict.problems, "\n".join(verdict.problems)
    assert not replay_problems, "\n".join(replay_problems)


def summarize(
    load: Load,
    watch: BreakerWatch,
    cluster: Cluster,
    events: list[str],
    verdict: Verdict,
    replays: list[Call],
    *,
    phases: dict[str, tuple[float, float]],
) -> str:
    calls = [c for c in load.calls if c.kind not in ("setup", "replay")]
    lines = ["", "== cluster failover =="]
    lines += [f"  {e}" for e in events]
    transfers = sum(len(c.requests) for c in calls)
    acked = sum(len(c.acknowledged) for c in calls)
    lines.append(
        f"  calls: {len(calls)} ({transfers} transfers); acknowledged calls: "
        f"{sum(1 for c in calls if c.outcome == 'ok')} ({acked} transfers)"
    )
    by_phase: dict[str, Counter[str]] = defaultdict(Counter)
    latency: dict[str, float] = defaultdict(float)
    for c in calls:
        by_phase[c.phase][c.outcome] += 1
        latency[c.phase] = max(latency[c.phase], c.elapsed)
    for phase, outcomes in by_phase.items():
        lines.append(f"  {phase:>10}: {dict(outcomes)}; max call latency {latency[phase]:.2f}s")
    errors = Counter(c.outcome for c in calls if c.outcome != "ok")
    lines.append(f"  typed errors by kind: {dict(errors)}")
    for name, (start, end) in phases.items():
        during = [c for c in calls if start <= c.started < end]
        if during:
            over = sum(1 for c in during if c.elapsed > DEADLINE_S + LATENCY_MARGIN_S)
            lines.append(
                f"  during {name}: {len(during)} calls, max latency "
                f"{max(c.elapsed for c in during):.2f}s (deadline {DEADLINE_S}s); "
                f"{over} over deadline + {LATENCY_MARGIN_S}s"
            )
            slowest = sorted(during, key=lambda c: c.elapsed, reverse=True)[:3]
            lines.append(
                "    slowest (start after it began, wall time, kind, outcome): "
                + "; ".join(
                    f"+{c.started - start:.2f}s {c.elapsed:.2f}s {c.kind} {c.outcome}"
                    for c in slowest
                )
            )
    origin = watch.changes[0][0] if watch.changes else 0.0
    transitions = " -> ".join(
        f"{state}@{t - origin:.1f}s({phase})" for t, phase, state in watch.changes
    )
    lines.append(f"  breaker: {transitions}")
    lines.append(
        "  replicas: " + ", ".join(f"{what} {index}" for what, index, _ in cluster.history[3:])
    )
    lines.append(
        f"  verified {verdict.checked} transfers: {verdict.in_engine} in the engine; unknown "
        f"outcomes settled as {dict(verdict.unknown_resolved)}; breaker refusals recorded "
        f"{verdict.circuit_open_recorded}; replays {Counter(r.outcome for r in replays)}; "
        f"problems {len(verdict.problems)}"
    )
    return "\n".join(lines)
