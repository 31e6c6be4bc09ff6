"""Crash safety of the ledger service: SIGKILL anywhere in the write protocol loses nothing
acknowledged, applies nothing twice, and leaves nothing that `recover()` cannot settle.

DESIGN §3 ("write last, read first"): a write persists its intent, submits it to the engine, then
records the outcome. This acceptance test runs `LedgerService` in a child process on the durable
embedded engine (``embedded://<tmp>/ledger.tbj``) and a PostgreSQL store (a schema of its own, as
the application role), kills it with SIGKILL at random moments, again and again on the same
journal and database, and after each kill opens a service on them in this process and checks:

(a) every transfer the child saw acknowledged as created exists in the engine exactly once, and
    the engine's balances are exactly what its transfers add up to (nothing applied twice, per
    ledger debits equal credits) and, after recovery, exactly what the audit trail says happened;
(b) every transfer acknowledged as refused is not in the engine;
(c) after ``recover(grace_s=0)`` every intent has an outcome (`intents_without_outcome` is empty);
(d) each transfer id has one intent row, every engine transfer has one (with the same fields) and
    one recorded outcome, and nothing in the engine or the store was made up: every id is one
    the child may have submitted;
(e) the audit trail's latest event of every acknowledged transfer agrees with what the child was
    told (posted, pending, posted or voided later, voided, failed with the same status).

Before recovery the same checks hold for everything acknowledged; what was in flight at the kill
(persisted but not submitted, or applied but not recorded) is then the recovery backlog, counted
per kill. Recovery runs after two kills of three; after the third the next child settles the
backlog itself, because on restart it first repeats the attempt the kill interrupted with the same
ids and fields — a replay that must return the original outcomes.

The child (``CHILD_SCRIPT``) runs attempts ``k = start, start+1, ...``; attempt ``k`` is one to
three calls chosen by ``Random(f"{seed}:{k}")`` alone — single transfers (some with idempotency
keys), holds then posted in full, in part or voided, atomic chains, non-atomic batches, and
transfers the engine refuses for want of funds — with transfer ids ``TAG << 64 | k << 8 | step``,
so the parent knows every id the child may have submitted. The child prints ``BEGIN k``, then one
``ACK <id> <status> <kind> <replayed>`` line per transfer as each call returns, then ``DONE k``.
With ``TBLEDGER_CRASH_JITTER_MS`` set its engine is a `tests.support.engines.JitteredEngine`,
which sleeps a random few ms before each ``create_transfers`` reaches the engine (persisted, not
yet submitted) and after it answers (applied, outcome not yet recorded), to widen both windows.
The kill moments and jitter come from a seeded RNG; the seed is printed, rerun with
``TBLEDGER_SERVICE_CRASH_SEED``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
import tigerbeetle as tb

from tbledger.ids import parse_id
from tbledger.limits import BATCH_EVENTS_MAX, STORE_PAGE_ROWS_MAX
from tbledger.model import NO_OUTCOME_KINDS
from tbledger.service import LedgerService, RecoveryReport
from tbledger.store import DEFAULT_APP_ROLE, EventKind, Store, StoreOptions, upgrade
from tbledger.store.tables import audit_events, transfers
from tests.support.database import (
    SessionDatabase,
    create_test_database,
    drop_test_database,
    postgres_server,
)
from tests.support.filters import query_filter

# The checkout, so that the child can import the test support package.
REPO_ROOT = Path(__file__).resolve().parents[2]
LEDGER = 4242
CODE = 17
TAG = 0x5AFE  # transfer ids: TAG << 64 | attempt << 8 | step
ACCOUNT_BASE = 0x5AFE_0000_0000
USERS_N = 6
TREASURY = ACCOUNT_BASE
USERS = [ACCOUNT_BASE + i for i in range(1, USERS_N + 1)]
AMOUNT_MAX = tb.AMOUNT_MAX
KILLS = 24
RECOVER_EVERY = 3  # the verifier skips recovery after every third kill: the child settles it
REQUEST_TIMEOUT_MS = 10_000
OK_STATUSES = frozenset({"created", "exists"})
_F = tb.TransferFlags
# Outcome events a transfer gets after its own outcome: a hold's resolution or expiry.
_RESOLUTION_DETAIL_KEYS = frozenset({"by", "reported_by", "engine_now"})

CHILD_SCRIPT = r'''
"""Crash-test client: write transfers through LedgerService until killed."""
import asyncio
import os
import random
import sys

from tbledger.engine import connect
from tbledger.errors import (
    CircuitOpenError,
    IdempotencyConflictError,
    NotConnectedError,
    OutcomeUnknownError,
    TigerBeetleError,
)
from tbledger.ids import format_id
from tbledger.service import LedgerService, TransferRequest
from tbledger.store import DEFAULT_APP_ROLE, Store, StoreOptions

sys.path.insert(0, REPO_ROOT)  # the checkout, for the test support package
from tests.support.engines import JitteredEngine

journal, database_url, schema = sys.argv[1], sys.argv[2], sys.argv[3]
seed, start_k = int(sys.argv[4]), int(sys.argv[5])
JITTER_S = float(os.environ.get("TBLEDGER_CRASH_JITTER_MS", "0")) / 1000
TREASURY = ACCOUNT_BASE
USERS = [ACCOUNT_BASE + i for i in range(1, USERS_N + 1)]
# Faults, not outcomes: the child stops and the parent fails the test.
FAULTS = (CircuitOpenError, IdempotencyConflictError, NotConnectedError, OutcomeUnknownError)


def report(line):
    # One write per line, flushed at once: a kill can lose a report but never tear one.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def transfer_id(k, step):
    return (TAG << 64) | (k << 8) | step


async def single(call, tid, kind):
    """One transfer through the single-call API, which raises when the engine refuses it."""
    try:
        result = await call
    except FAULTS:
        raise
    except TigerBeetleError as exc:
        report(f"ACK {format_id(tid)} {exc.code} {kind} 0")
        return
    report(f"ACK {result.id_hex} {result.status} {kind} {int(result.replayed)}")


async def batch(service, requests, *, atomic):
    results = await service.create_transfers(requests, atomic=atomic)
    for result in results:
        report(f"ACK {result.id_hex} {result.status} plain {int(result.replayed)}")


async def attempt(service, k):
    """Attempt k: its calls, ids and fields follow from (seed, k) alone, never from outcomes,
    so a restarted child repeats an interrupted attempt exactly."""
    rng = random.Random(f"{seed}:{k}")
    step = 0

    def next_id():
        nonlocal step
        step += 1
        return transfer_id(k, step)

    def request(debit, credit, amount, *, pending=False, key=False):
        tid = next_id()
        return TransferRequest(
            transfer_id=tid,
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            ledger=LEDGER,
            code=CODE,
            user_data_64=k,
            pending=pending,
            idempotency_key=f"crash-{seed}-{tid:x}" if key else None,
            metadata={"attempt": k},
        )

    for _ in range(rng.randint(1, 3)):
        r = rng.random()
        a, b = rng.sample(USERS, 2)
        if r < 0.15:
            # Issue money: the treasury pays a user.
            req = request(TREASURY, a, rng.randint(500, 3000), key=rng.random() < 0.3)
            await single(service.create_transfer(req), req.transfer_id, "plain")
        elif r < 0.40:
            # A payment between users; refused when the payer has too little.
            req = request(a, b, rng.randint(1, 2500), key=rng.random() < 0.3)
            await single(service.create_transfer(req), req.transfer_id, "plain")
        elif r < 0.58:
            # A hold, then posted in full, in part, or voided.
            amount = rng.randint(1, 2000)
            req = request(a, b, amount, pending=True)
            await single(service.create_pending_transfer(req), req.transfer_id, "pending")
            choice = rng.random()
            rid = next_id()
            if choice < 0.4:
                call = service.post_pending_transfer(req.transfer_id, transfer_id=rid)
                kind = "post"
            elif choice < 0.7:
                part = rng.randint(1, amount)
                call = service.post_pending_transfer(req.transfer_id, part, transfer_id=rid)
                kind = "post"
            else:
                call = service.void_pending_transfer(req.transfer_id, transfer_id=rid)
                kind = "void"
            await single(call, rid, kind)
        elif r < 0.78:
            # An atomic chain: all or nothing.
            requests = []
            if rng.random() < 0.3:
                requests.append(request(TREASURY, a, rng.randint(100, 1500)))
            for _ in range(rng.randint(2, 3)):
                x, y = rng.sample(USERS, 2)
                requests.append(request(x, y, rng.randint(1, 1500)))
            await batch(service, requests, atomic=True)
        elif r < 0.90:
            # Independent transfers in one call.
            requests = []
            for _ in range(rng.randint(2, 3)):
                x, y = rng.sample(USERS, 2)
                requests.append(request(x, y, rng.randint(1, 1500)))
            await batch(service, requests, atomic=False)
        else:
            # Always refused: far more than anyone holds.
            req = request(a, b, 10**12)
            await single(service.create_transfer(req), req.transfer_id, "plain")


async def engine_with_wide_windows():
    """The journal's engine behind a wrapper that sleeps a random few ms before each transfer
    request reaches it and after it answers (test harness only)."""
    jitter = random.Random(f"jitter:{seed}:{start_k}")
    engine = await connect(f"embedded://{journal}")
    return JitteredEngine(engine, jitter_s=JITTER_S, rng=jitter)


async def main():
    store = await Store.connect(
        database_url, options=StoreOptions(schema=schema, role=DEFAULT_APP_ROLE)
    )
    if JITTER_S > 0:
        engine = {"engine": await engine_with_wide_windows()}
    else:
        engine = {"engine_url": f"embedded://{journal}"}
    service = LedgerService(**engine, store=store, request_timeout_ms=REQUEST_TIMEOUT_MS)
    await service.connect()
    # Fixed ids: creating them again after a restart is a no-op (or completes half a creation).
    await service.create_account(
        owner_id=None, account_type="treasury", ledger=LEDGER, account_id=TREASURY,
        name="crash:treasury",
    )
    for i, user in enumerate(USERS):
        await service.create_account(
            owner_id=f"crash-user-{i}", account_type="user", ledger=LEDGER, account_id=user
        )
    report("READY")
    k = start_k
    while True:
        report(f"BEGIN {k}")
        await attempt(service, k)
        report(f"DONE {k}")
        k += 1


try:
    asyncio.run(main())
except BaseException as exc:
    report(f"FAIL {type(exc).__name__}: {exc}")
    raise
'''


def child_source() -> str:
    constants = (
        f"LEDGER = {LEDGER}\nCODE = {CODE}\nTAG = {TAG}\nACCOUNT_BASE = {ACCOUNT_BASE}\n"
        f"USERS_N = {USERS_N}\nREQUEST_TIMEOUT_MS = {REQUEST_TIMEOUT_MS}\n"
        f"REPO_ROOT = {str(REPO_ROOT)!r}\n"
    )
    return constants + CHILD_SCRIPT


# -- what the parent knows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ack:
    status: str
    kind: str  # plain, pending, post or void

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES


@dataclass
class Model:
    """Everything the children told the parent, over all kills."""

    acked: dict[int, Ack] = field(default_factory=dict)
    start_k: int = 1  # the attempt the next child starts with (an interrupted one is repeated)
    max_begun: int = 0
    ready: bool = False


@dataclass
class Tally:
    kills: int = 0
    ack_lines: int = 0
    replayed: int = 0
    early_kills: int = 0
    recoveries: int = 0
    backlog_applied: int = 0  # in flight at a kill, found applied by the engine before recovery
    backlog_not_applied: int = 0  # in flight at a kill, not in the engine before recovery
    recovered: RecoveryReport = field(default_factory=RecoveryReport)


def transfer_attempt(transfer_id: int) -> int:
    assert transfer_id >> 64 == TAG, f"{transfer_id:#x} is not an id the child makes"
    return (transfer_id >> 8) & ((1 << 56) - 1)


# -- the child -----------------------------------------------------------------------------------


def run_child_until_killed(
    script: Path,
    args: list[str],
    *,
    jitter_ms: int,
    early: bool,
    delay_s: float,
    stderr_path: Path,
) -> list[list[str]]:
    """Start the child, SIGKILL it at the chosen moment, return every line it reported."""
    lines: list[list[str]] = []
    ready = threading.Event()
    env = dict(os.environ, TBLEDGER_CRASH_JITTER_MS=str(jitter_ms))
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.endswith("\n"):
                    break  # cut short by the kill: never reported
                words = line.split()
                lines.append(words)
                if words[:1] in (["READY"], ["FAIL"]):
                    ready.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            if early:
                # During start-up: connecting, the child's own recovery, creating the accounts.
                time.sleep(delay_s)
            else:
                deadline = time.monotonic() + 30
                while not ready.wait(0.01) and proc.poll() is None:
                    assert time.monotonic() < deadline, f"child never became ready: {stderr_path}"
                time.sleep(delay_s)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            reader.join(timeout=30)
    stderr_text = stderr_path.read_text(errors="replace")
    fails = [" ".join(w) for w in lines if w[:1] == ["FAIL"]]
    assert not fails, (fails, stderr_text[-3000:])
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, stderr_text[-3000:])
    return lines


def absorb(model: Model, tally: Tally, lines: list[list[str]]) -> int:
    """Take a killed child's reports into the model; return how many ACK lines it printed."""
    last_begun: int | None = None
    last_done: int | None = None
    acks = 0
    for words in lines:
        match words[0]:
            case "READY":
                model.ready = True
            case "BEGIN":
                last_begun = int(words[1])
                model.max_begun = max(model.max_begun, last_begun)
            case "DONE":
                last_done = int(words[1])
            case "ACK":
                transfer_id = parse_id(words[1])
                ack = Ack(status=words[2], kind=words[3])
                acks += 1
                tally.replayed += words[4] == "1"
                assert transfer_attempt(transfer_id) == last_begun, words
                previous = model.acked.get(transfer_id)
                if previous is not None:
                    # A repeated attempt: the replay must report the original outcome.
                    assert previous.kind == ack.kind, (words, previous)
                    assert previous.ok == ack.ok, (words, previous)
                    if not ack.ok:
                        assert previous.status == ack.status, (words, previous)
                else:
                    model.acked[transfer_id] = ack
            case other:
                raise AssertionError(f"unexpected child output: {other} {words}")
    if last_begun is not None:
        model.start_k = last_begun + 1 if last_done == last_begun else last_begun
    return acks


# -- the verifier ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    seq: int
    kind: EventKind
    status: str | None
    detail: dict[str, Any]

    @property
    def is_own_outcome(self) -> bool:
        """An outcome of the transfer itself (not of a later resolution of a hold)."""
        return self.kind not in NO_OUTCOME_KINDS and not (
            _RESOLUTION_DETAIL_KEYS & self.detail.keys()
        )


@dataclass
class Snapshot:
    engine: dict[int, tb.Transfer]
    accounts: dict[int, tb.Account]
    intents: dict[int, dict[str, Any]]
    duplicate_intent_ids: list[int]
    events: dict[int, list[Event]]
    latest_by_store: dict[int, Event]  # Store.current_status of every acknowledged id

    def own_outcomes(self, transfer_id: int) -> list[Event]:
        return [e for e in self.events.get(transfer_id, []) if e.is_own_outcome]

    def latest(self, transfer_id: int) -> Event | None:
        events = self.events.get(transfer_id)
        return events[-1] if events else None


async def scan_engine_transfers(engine: Any) -> dict[int, tb.Transfer]:
    out: dict[int, tb.Transfer] = {}
    timestamp_min = 0
    while True:
        page = await engine.query_transfers(
            query_filter(ledger=LEDGER, timestamp_min=timestamp_min, limit=BATCH_EVENTS_MAX)
        )
        for t in page:
            assert t.id not in out, f"the engine returned {t.id:#x} twice"
            out[t.id] = t
        if len(page) < BATCH_EVENTS_MAX:
            return out
        timestamp_min = page[-1].timestamp + 1


async def take_snapshot(service: LedgerService, model: Model) -> Snapshot:
    store = service.store
    engine = service.engine
    found = await scan_engine_transfers(engine)
    accounts = {a.id: a for a in await engine.lookup_accounts([TREASURY, *USERS])}
    async with store.engine.connect() as conn:
        intent_rows = (await conn.execute(sa.select(transfers))).all()
        duplicates = (
            await conn.execute(
                sa.select(transfers.c.id).group_by(transfers.c.id).having(sa.func.count() > 1)
            )
        ).all()
        event_rows = (
            await conn.execute(
                sa.select(audit_events)
                .where(audit_events.c.transfer_id.is_not(None))
                .order_by(audit_events.c.seq)
            )
        ).all()
    intents = {row._mapping["id"]: dict(row._mapping) for row in intent_rows}
    events: dict[int, list[Event]] = defaultdict(list)
    for row in event_rows:
        m = row._mapping
        events[m["transfer_id"]].append(
            Event(int(m["seq"]), EventKind(m["kind"]), m["status"], dict(m["detail"] or {}))
        )
    latest_by_store: dict[int, Event] = {}
    acked = list(model.acked)
    for start in range(0, len(acked), STORE_PAGE_ROWS_MAX):
        current = await store.current_status(acked[start : start + STORE_PAGE_ROWS_MAX])
        for transfer_id, e in current.items():
            latest_by_store[transfer_id] = Event(e.seq, e.kind, e.status, dict(e.detail))
    return Snapshot(
        engine=found,
        accounts=accounts,
        intents=intents,
        duplicate_intent_ids=[row[0] for row in duplicates],
        events=dict(events),
        latest_by_store=latest_by_store,
    )


def is_resolution(flags: int) -> bool:
    return bool(flags & (_F.POST_PENDING_TRANSFER | _F.VOID_PENDING_TRANSFER))


def check_ids_and_intents(model: Model, snap: Snapshot) -> None:
    """(d): one intent row per id, one per engine transfer with its fields; no made-up ids."""
    assert not snap.duplicate_intent_ids, snap.duplicate_intent_ids
    for transfer_id in snap.intents:
        assert transfer_attempt(transfer_id) <= model.max_begun, f"{transfer_id:#x}"
    for transfer_id, t in snap.engine.items():
        intent = snap.intents.get(transfer_id)
        assert intent is not None, f"engine transfer {transfer_id:#x} has no intent"
        assert int(t.flags) == intent["flags"], transfer_id
        assert t.pending_id == intent["pending_id"], transfer_id
        assert t.user_data_64 == transfer_attempt(transfer_id), transfer_id
        if is_resolution(intent["flags"]):
            pending = snap.engine[t.pending_id]
            expected = pending.amount if intent["amount"] == AMOUNT_MAX else intent["amount"]
            if intent["flags"] & _F.VOID_PENDING_TRANSFER:
                expected = pending.amount
            assert t.amount == expected, transfer_id
            assert (t.debit_account_id, t.credit_account_id) == (
                pending.debit_account_id,
                pending.credit_account_id,
            )
        else:
            assert (t.debit_account_id, t.credit_account_id, t.amount, t.ledger, t.code) == (
                intent["debit_account_id"],
                intent["credit_account_id"],
                intent["amount"],
                intent["ledger"],
                intent["code"],
            ), transfer_id


def check_outcomes(snap: Snapshot, *, recovered: bool) -> tuple[int, int]:
    """Every intent has at most one outcome of its own (exactly one after recovery), and it
    agrees with the engine. Returns the backlog: (applied by the engine, not applied)."""
    applied = not_applied = 0
    for transfer_id in snap.intents:
        own = snap.own_outcomes(transfer_id)
        assert len(own) <= 1, f"{transfer_id:#x} has {len(own)} outcomes: {own}"
        if own:
            in_engine = own[0].kind is not EventKind.FAILED
            assert in_engine == (transfer_id in snap.engine), (hex(transfer_id), own)
            if in_engine:
                assert own[0].status in OK_STATUSES, (hex(transfer_id), own)
        else:
            assert not recovered, f"{transfer_id:#x} has no outcome after recovery"
            if transfer_id in snap.engine:
                applied += 1
            else:
                not_applied += 1
    return applied, not_applied


EXPECTED_KIND = {
    "plain": EventKind.POSTED,
    "pending": EventKind.PENDING,
    "post": EventKind.POSTED,
    "void": EventKind.VOIDED,
}


def resolutions_in_engine(snap: Snapshot) -> dict[int, EventKind]:
    """Holds resolved in the engine: pending id -> POSTED or VOIDED."""
    out = {}
    for t in snap.engine.values():
        if t.flags & _F.POST_PENDING_TRANSFER:
            out[t.pending_id] = EventKind.POSTED
        elif t.flags & _F.VOID_PENDING_TRANSFER:
            out[t.pending_id] = EventKind.VOIDED
    return out


async def check_acked(service: LedgerService, model: Model, snap: Snapshot) -> None:
    """(a), (b), (e) for every transfer any child saw acknowledged."""
    ok_ids = [i for i, ack in model.acked.items() if ack.ok]
    looked_up: Counter[int] = Counter()
    for start in range(0, len(ok_ids), BATCH_EVENTS_MAX):
        chunk = ok_ids[start : start + BATCH_EVENTS_MAX]
        looked_up.update(t.id for t in await service.engine.lookup_transfers(chunk))
    resolved = resolutions_in_engine(snap)
    for transfer_id, ack in model.acked.items():
        name = f"{transfer_id:#x} acked {ack}"
        assert transfer_id in snap.intents, name
        own = snap.own_outcomes(transfer_id)
        assert len(own) == 1, (name, own)
        latest = snap.latest(transfer_id)
        assert latest is not None
        assert snap.latest_by_store.get(transfer_id) == latest, (name, latest)
        if ack.ok:
            assert looked_up[transfer_id] == 1, (name, looked_up[transfer_id])
            assert transfer_id in snap.engine, name
            assert own[0].kind is EXPECTED_KIND[ack.kind], (name, own)
            expected_latest = EXPECTED_KIND[ack.kind]
            if ack.kind == "pending":
                expected_latest = resolved.get(transfer_id, EventKind.PENDING)
                # A hold resolved by an acknowledged post or void is recorded as resolved even
                # before recovery; one resolved in flight at the kill may still read pending.
                acked_resolution = any(
                    model.acked.get(t.id, Ack("", "")).ok
                    for t in snap.engine.values()
                    if t.pending_id == transfer_id
                )
                if transfer_id in resolved and not acked_resolution:
                    assert latest.kind in (EventKind.PENDING, expected_latest), (name, latest)
                    continue
            assert latest.kind is expected_latest, (name, latest)
        else:
            assert transfer_id not in snap.engine, name
            assert (own[0].kind, own[0].status) == (EventKind.FAILED, ack.status), (name, own)
            assert (latest.kind, latest.status) == (EventKind.FAILED, ack.status), (name, latest)


def check_balances(snap: Snapshot, *, recovered: bool) -> None:
    """Balances are what the engine's transfers add up to, and (after recovery) what the audit
    trail says happened; per ledger, debits equal credits."""
    if not snap.accounts:
        return
    assert sum(a.debits_posted for a in snap.accounts.values()) == sum(
        a.credits_posted for a in snap.accounts.values()
    )
    assert sum(a.debits_pending for a in snap.accounts.values()) == sum(
        a.credits_pending for a in snap.accounts.values()
    )

    def counters(
        moves: list[tuple[int, int, int, bool]],
    ) -> dict[int, tuple[int, int, int, int]]:
        out: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for debit, credit, amount, pending in moves:
            out[debit][0 if pending else 1] += amount
            out[credit][2 if pending else 3] += amount
        return {k: (v[0], v[1], v[2], v[3]) for k, v in out.items()}

    def actual(a: tb.Account) -> tuple[int, int, int, int]:
        return (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)

    # From the engine's transfers.
    resolved = resolutions_in_engine(snap)
    moves = []
    for t in snap.engine.values():
        if t.flags & _F.VOID_PENDING_TRANSFER:
            continue
        pending = bool(t.flags & _F.PENDING)
        if pending and t.id in resolved:
            continue
        moves.append((t.debit_account_id, t.credit_account_id, t.amount, pending))
    expected = counters(moves)
    for account_id, account in snap.accounts.items():
        assert actual(account) == expected.get(account_id, (0, 0, 0, 0)), (
            f"account {account_id:#x}: engine counters differ from its transfers"
        )
    if not recovered:
        return

    # From the audit trail: the intents whose recorded outcome says the engine took them.
    taken = {
        i: intent
        for i, intent in snap.intents.items()
        if snap.own_outcomes(i)[0].kind is not EventKind.FAILED
    }
    resolved_by_audit = {
        intent["pending_id"] for intent in taken.values() if is_resolution(intent["flags"])
    }
    moves = []
    for intent in taken.values():
        flags = intent["flags"]
        if flags & _F.VOID_PENDING_TRANSFER:
            continue
        if flags & _F.POST_PENDING_TRANSFER:
            hold = snap.intents[intent["pending_id"]]
            amount = hold["amount"] if intent["amount"] == AMOUNT_MAX else intent["amount"]
            moves.append((hold["debit_account_id"], hold["credit_account_id"], amount, False))
            continue
        pending = bool(flags & _F.PENDING)
        if pending and intent["id"] in resolved_by_audit:
            continue
        moves.append(
            (intent["debit_account_id"], intent["credit_account_id"], intent["amount"], pending)
        )
    expected = counters(moves)
    for account_id, account in snap.accounts.items():
        assert actual(account) == expected.get(account_id, (0, 0, 0, 0)), (
            f"account {account_id:#x}: engine counters differ from the audit trail"
        )
    # Holds: the latest event of each says what the engine did with it.
    for transfer_id, intent in taken.items():
        if intent["flags"] & _F.PENDING:
            latest = snap.latest(transfer_id)
            assert latest is not None
            assert latest.kind is resolved.get(transfer_id, EventKind.PENDING), (
                hex(transfer_id),
                latest,
            )


@dataclass(frozen=True)
class Place:
    journal: Path
    database_url: str
    schema: str


async def child_sessions_gone(database_url: str, timeout_s: float = 30.0) -> None:
    """Wait until the killed child's PostgreSQL sessions have ended.

    A session outlives its client: a COMMIT the child sent just before the SIGKILL is still
    carried out by its server process, and becomes visible a moment after the child is gone.
    Looking before that would miss an intent that recovery is then blamed for leaving behind.
    The database is this module's own, so every other session in it is the child's.
    """
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            others = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if others == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{others} sessions still open {timeout_s} s after the kill")
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def verify(place: Place, model: Model, tally: Tally, *, recover: bool) -> str:
    """Open a service on the child's journal and schema, check, maybe recover, check again."""
    await child_sessions_gone(place.database_url)
    store = await Store.connect(
        place.database_url, options=StoreOptions(schema=place.schema, role=DEFAULT_APP_ROLE)
    )
    service = LedgerService(
        engine_url=f"embedded://{place.journal}", store=store, request_timeout_ms=REQUEST_TIMEOUT_MS
    )
    try:
        await service.connect(recover=False)
        before = await take_snapshot(service, model)
        check_ids_and_intents(model, before)
        applied, not_applied = check_outcomes(before, recovered=False)
        await check_acked(service, model, before)
        check_balances(before, recovered=False)
        tally.backlog_applied += applied
        tally.backlog_not_applied += not_applied
        summary = f"backlog {applied} applied + {not_applied} not applied"
        if not recover:
            return summary + ", left to the next child"
        report = await service.recover(grace_s=0)
        tally.recoveries += 1
        for name in ("examined", "found_in_engine", "resubmitted", "failed"):
            setattr(tally.recovered, name, getattr(tally.recovered, name) + getattr(report, name))
        assert report.examined == applied + not_applied, (report, applied, not_applied)
        assert (report.found_in_engine, report.resubmitted) == (applied, not_applied), report
        left = await store.intents_without_outcome(
            STORE_PAGE_ROWS_MAX, created_before=datetime.now(UTC)
        )
        assert left == [], f"{len(left)} intents without outcome after recovery"
        after = await take_snapshot(service, model)
        check_ids_and_intents(model, after)
        check_outcomes(after, recovered=True)
        await check_acked(service, model, after)
        check_balances(after, recovered=True)
        outcomes = Counter(
            after.own_outcomes(i)[0].status for i in before.intents if not before.own_outcomes(i)
        )
        return (
            f"{summary}; recovery examined {report.examined}: {report.found_in_engine} found in "
            f"the engine, {report.resubmitted} resubmitted ({report.failed} refused)"
            + (f", outcomes {dict(outcomes)}" if outcomes else "")
        )
    finally:
        await service.close()
        await store.close()


# -- the test --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crash_database() -> Iterator[SessionDatabase]:
    """A PostgreSQL database of this module's own (or a skip saying why there is none)."""
    with postgres_server() as server:
        if isinstance(server, str):
            pytest.skip(server)
        database = create_test_database(server)
        try:
            yield database
        finally:
            drop_test_database(server, database)


def test_sigkill_in_the_write_protocol_loses_nothing_acknowledged_and_recover_settles_all(
    tmp_path: Path, crash_database: SessionDatabase
) -> None:
    seed = int(os.environ.get("TBLEDGER_SERVICE_CRASH_SEED", random.randrange(2**32)))
    print(f"\nservice crash test seed: {seed} (rerun with TBLEDGER_SERVICE_CRASH_SEED={seed})")
    rng = random.Random(seed)
    place = Place(
        journal=tmp_path / "ledger.tbj",
        database_url=crash_database.url,
        schema=f"{crash_database.prefix}_crash",
    )
    asyncio.run(upgrade(place.database_url, schema=place.schema))
    script = tmp_path / "service_crash_child.py"
    script.write_text(child_source())
    model = Model()
    tally = Tally()
    started = time.monotonic()

    for kill in range(KILLS):
        early = rng.random() < 0.15
        delay_s = rng.uniform(0.2, 1.5) if early else rng.uniform(0.0, 0.4)
        jitter_ms = rng.choice([0, 3, 8])
        start_k = model.start_k
        child_started = time.monotonic()
        lines = run_child_until_killed(
            script,
            [str(place.journal), place.database_url, place.schema, str(seed), str(start_k)],
            jitter_ms=jitter_ms,
            early=early,
            delay_s=delay_s,
            stderr_path=tmp_path / f"child-{kill}.stderr",
        )
        tally.kills += 1
        tally.early_kills += early
        acks = absorb(model, tally, lines)
        tally.ack_lines += acks
        recover = kill % RECOVER_EVERY != RECOVER_EVERY - 2 or kill == KILLS - 1
        verify_started = time.monotonic()
        summary = asyncio.run(verify(place, model, tally, recover=recover))
        print(
            f"kill {kill + 1:2d}: attempts {start_k}..{model.start_k}, {acks} acked "
            f"({len(model.acked)} distinct so far){' early' if early else ''}, "
            f"jitter {jitter_ms} ms; {summary} "
            f"[child {verify_started - child_started:.1f} s, "
            f"verify {time.monotonic() - verify_started:.1f} s]"
        )

    elapsed = time.monotonic() - started
    r = tally.recovered
    print(
        f"SIGKILLs: {tally.kills} ({tally.early_kills} during start-up), acknowledged transfers "
        f"verified: {len(model.acked)} distinct ({tally.ack_lines} ACK lines, {tally.replayed} "
        f"replays), in flight at a kill: {tally.backlog_applied} applied + "
        f"{tally.backlog_not_applied} not applied; {tally.recoveries} recoveries examined "
        f"{r.examined}: {r.found_in_engine} found in the engine, {r.resubmitted} resubmitted "
        f"({r.failed} refused); {elapsed:.1f} s"
    )
    assert tally.kills >= 20
    # A run that never got past start-up would prove nothing.
    assert len(model.acked) >= 50, tally
    assert sum(not a.ok for a in model.acked.values()) > 0, "no refusal was ever acknowledged"
    # A run whose kills never landed inside the protocol would not test recovery.
    assert tally.backlog_applied + tally.backlog_not_applied > 0, tally
