"""Crash durability of the embedded engine's journal: SIGKILL at any moment loses no acknowledged
write and never leaves half a batch.

Specified here, against a real process killed with SIGKILL (no chance to flush, close or unlock):

* every batch whose ``create_transfers`` call returned (was acknowledged) before the kill is
  present after reopening, every one of its transfers, with the ids the writer chose;
* no batch is partially present: the batch in flight at the kill is either wholly there (the kill
  came after the fsync but before the writer could report it) or wholly absent;
* nothing else is there: no transfer of a batch that was never started;
* the reopened state is consistent: per ledger, debits equal credits (posted and pending), posted
  balances are exactly what the surviving transfers add up to, and the state machine's own
  invariants hold;
* a journal survives repeated crashes: most kills continue the same journal, so we reopen after a
  crash after a reopen after a crash ..., and the journal keeps accepting writes;
* the journal lock dies with its process: the parent can open the journal right after the kill.

The writer is a child process running a small script (``CHILD_SCRIPT``) on the durable
``ClientSync``. Batch ``k`` carries ``user_data_64 = k`` on every transfer and transfer ids
``k * ID_STRIDE + 1 ..`` so the parent knows every id without trusting the child's memory. Before
each call the child prints ``BEGIN k n`` (so the parent knows the size of a batch that might be
in flight) and after the call returns ``ACK k n``, each line in one write, flushed at once.

SIGKILL lands between system calls, so it almost never tears a write in half; a power cut would.
To put torn tails under the same scrutiny, after some kills the parent also damages the tail the
way a crash in the middle of ``write`` would have: it cuts the in-flight batch's record (only when
that batch was never acknowledged), or appends a prefix of one more record, or appends zeros. The
reopen must cut exactly those bytes and nothing else.

The kill moments come from a seeded RNG. The seed is printed; rerun a failure with
``TBLEDGER_CRASH_SEED=<seed>``.
"""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tigerbeetle import QueryFilter, Transfer, TransferFlags

from tbledger.embedded import ClientSync
from tests.support.filters import query_filter
from tests.support.journal_layout import (
    FILE_HEADER_SIZE,
    OP_CREATE_TRANSFERS,
    RECORD_HEADER_SIZE,
    record_spans,
)

LEDGER = 700
ACCOUNTS = 16
ID_STRIDE = 10_000  # above the largest batch the child writes (2000), so ids never collide
KILLS = 24
KILLS_PER_JOURNAL = 6  # 4 fresh journals, 20 kills that continue a journal after a crash
QUERY_LIMIT = 8189
# More of the journal layout (tests/support/journal_layout.py), to simulate torn writes.
EVENT_SIZE = 128
USER_DATA_64_OFFSET = 96  # in a transfer event: six u128 fields come first

CHILD_SCRIPT = r'''
"""Crash-test writer: write transfer batches to a durable journal until killed."""
import random
import sys
import time

from tigerbeetle import Account, CreateAccountStatus, CreateTransferStatus, Transfer, TransferFlags

from tbledger.embedded import ClientSync

path, seed, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
LEDGER, ACCOUNTS, ID_STRIDE = 700, 16, 10_000
DEADLINE = time.monotonic() + 60  # a safety net only: the parent kills long before this
SIZES = [1, 1, 2, 3, 5, 8, 13, 21, 50, 100, 250, 600, 1000, 2000]


def report(line):
    # One write per line (short pipe writes are atomic), flushed at once: a kill can lose a
    # report but never leave half of one.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


client = ClientSync(cluster_id=0, path=path)
results = client.create_accounts(
    [Account(id=i, ledger=LEDGER, code=1) for i in range(1, ACCOUNTS + 1)]
)
ok = (CreateAccountStatus.CREATED, CreateAccountStatus.EXISTS)
if any(r.status not in ok for r in results):
    report(f"FAIL accounts {results}")
    sys.exit(3)
report(f"READY {k}")

open_pending = []  # (id, amount) of acknowledged pending transfers without a timeout
while time.monotonic() < DEADLINE:
    rng = random.Random(f"{seed}:{k}")
    n = rng.choice(SIZES)
    base = k * ID_STRIDE
    batch = []
    new_pending = []

    def transfer(flags=0, **kw):
        t = Transfer(
            id=base + len(batch) + 1, ledger=LEDGER, code=1, user_data_64=k, flags=flags, **kw
        )
        batch.append(t)
        return t

    def accounts():
        dr, cr = rng.sample(range(1, ACCOUNTS + 1), 2)
        return {"debit_account_id": dr, "credit_account_id": cr}

    while len(batch) < n:
        room = n - len(batch)
        r = rng.random()
        if r < 0.15 and room >= 2:
            # A linked chain: all or nothing inside the batch as well.
            length = min(room, rng.randint(2, 5))
            for i in range(length):
                flags = TransferFlags.LINKED if i < length - 1 else 0
                transfer(flags, amount=rng.randint(1, 1000), **accounts())
        elif r < 0.25 and room >= 2:
            # A pending transfer resolved later in the same batch, linked to its resolution.
            p = transfer(
                TransferFlags.PENDING | TransferFlags.LINKED,
                amount=rng.randint(1, 1000),
                **accounts(),
            )
            if rng.random() < 0.5:
                transfer(
                    TransferFlags.POST_PENDING_TRANSFER,
                    pending_id=p.id,
                    amount=rng.randint(1, p.amount),
                )
            else:
                transfer(TransferFlags.VOID_PENDING_TRANSFER, pending_id=p.id)
        elif r < 0.30:
            # Expires in a second: the engine journals the expiry pulse in a later call.
            transfer(TransferFlags.PENDING, amount=rng.randint(1, 1000), timeout=1, **accounts())
        elif r < 0.36:
            # Stays pending across batches (and crashes) until a later batch resolves it.
            p = transfer(TransferFlags.PENDING, amount=rng.randint(1, 1000), **accounts())
            new_pending.append((p.id, p.amount))
        elif r < 0.45 and open_pending:
            # Resolve a pending transfer of an earlier, acknowledged batch.
            pending_id, amount = open_pending.pop(rng.randrange(len(open_pending)))
            if rng.random() < 0.5:
                transfer(
                    TransferFlags.POST_PENDING_TRANSFER,
                    pending_id=pending_id,
                    amount=rng.randint(1, amount),
                )
            else:
                transfer(TransferFlags.VOID_PENDING_TRANSFER, pending_id=pending_id)
        else:
            transfer(amount=rng.randint(1, 1000), **accounts())

    report(f"BEGIN {k} {n}")
    results = client.create_transfers(batch)
    failed = [(i, r.status.name) for i, r in enumerate(results)
              if r.status != CreateTransferStatus.CREATED]
    if failed:
        report(f"FAIL {k} {failed[:5]}")
        sys.exit(3)
    report(f"ACK {k} {n}")
    open_pending.extend(new_pending)
    k += 1
'''


@dataclass
class JournalModel:
    """What the parent knows about one journal from the children's reports and its own checks."""

    path: Path
    planned: dict[int, int] = field(default_factory=dict)  # k -> size of the latest BEGIN k
    acked: set[int] = field(default_factory=set)
    accounts_created: bool = False
    next_k: int = 1


@dataclass
class Tally:
    kills: int = 0
    acked_batches_verified: int = 0
    inflight_present: int = 0
    inflight_absent: int = 0
    torn_tails_cut: int = 0
    damage: Counter[str] = field(default_factory=Counter)


def expected_ids(k: int, n: int) -> set[int]:
    return {k * ID_STRIDE + i for i in range(1, n + 1)}


def run_child_until_killed(
    script: Path, model: JournalModel, seed: int, rng: random.Random, stderr_path: Path
) -> list[list[str]]:
    """Start a writer on the model's journal, SIGKILL it at a random moment, return its lines."""
    lines: list[list[str]] = []
    ready = threading.Event()
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(model.path), str(seed), str(model.next_k)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.endswith("\n"):
                    break  # cut short by the kill: the report was never made
                words = line.split()
                lines.append(words)
                if words[:1] == ["READY"]:
                    ready.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            if rng.random() < 0.2:
                # Early: during interpreter start-up, journal replay (and its tail truncation) or
                # account creation.
                time.sleep(rng.uniform(0.0, 0.4))
            else:
                # While writing batches: anywhere in building, applying, writing or fsyncing one.
                deadline = time.monotonic() + 30
                while not ready.wait(0.02) and proc.poll() is None:
                    assert time.monotonic() < deadline, f"child never became ready: {stderr_path}"
                time.sleep(rng.uniform(0.01, 0.3))
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            reader.join(timeout=30)
    stderr_text = stderr_path.read_text(errors="replace")
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, stderr_text[-2000:])
    fails = [w for w in lines if w[:1] == ["FAIL"]]
    assert not fails, (fails, stderr_text[-2000:])
    return lines


def simulate_torn_write(
    model: JournalModel, inflight: int | None, rng: random.Random
) -> tuple[str, int | None]:
    """Maybe damage the journal's tail as a crash inside ``write`` would.

    Returns what was done and how many bytes the next open must cut (None: unknown, because the
    kill itself left a torn tail, which is then left exactly as the kill left it).
    """
    data = model.path.read_bytes() if model.path.exists() else b""
    spans = record_spans(data)
    if not spans:
        # A new journal (nothing to cut), or one whose only record the kill tore by itself.
        return "none", None if len(data) > FILE_HEADER_SIZE else 0
    start, end, operation = spans[-1]
    if end != len(data):
        return "none", None  # the kill tore a write by itself
    body = start + RECORD_HEADER_SIZE
    is_inflight_record = (
        inflight is not None
        and inflight not in model.acked
        and operation == OP_CREATE_TRANSFERS
        and end - body == EVENT_SIZE * model.planned[inflight]
        and struct.unpack_from("<Q", data, body + USER_DATA_64_OFFSET)[0] == inflight
    )
    r = rng.random()
    if is_inflight_record and r < 0.5:
        # The kill hit while the unacknowledged batch was being written: only a prefix landed.
        cut = rng.randrange(start + 1, end)
        with model.path.open("r+b") as f:
            f.truncate(cut)
        return "cut the in-flight record", cut - start
    if r < 0.25:
        # The kill hit while one more record was being written.
        prefix = data[start : start + rng.randrange(1, end - start)]
        with model.path.open("ab") as f:
            f.write(prefix)
        return "appended a record prefix", len(prefix)
    if r < 0.35:
        zeros = rng.randint(1, 8192)
        with model.path.open("ab") as f:
            f.write(bytes(zeros))
        return "appended zeros", zeros
    return "none", 0


def ledger_filter(timestamp_min: int = 0) -> QueryFilter:
    """A query for the test ledger (the official QueryFilter has no defaults)."""
    return query_filter(ledger=LEDGER, timestamp_min=timestamp_min, limit=QUERY_LIMIT)


def scan_transfers(client: ClientSync) -> list[Transfer]:
    """Every transfer of the test ledger, in timestamp order, page by page."""
    out: list[Transfer] = []
    timestamp_min = 0
    while True:
        page = client.query_transfers(ledger_filter(timestamp_min))
        out.extend(page)
        if len(page) < QUERY_LIMIT:
            return out
        timestamp_min = page[-1].timestamp + 1


def verify_after_crash(
    model: JournalModel, acked_now: set[int], torn_bytes: int | None, tally: Tally
) -> set[int]:
    """Reopen the journal in this process and check everything the module docstring promises.

    Returns the set of batches present.
    """
    with ClientSync(cluster_id=0, path=model.path) as client:
        assert client.replica.journal is not None
        dropped = client.replica.journal.torn_bytes_dropped
        if torn_bytes is not None:
            assert dropped == torn_bytes, "the open must cut exactly the torn tail"
        tally.torn_tails_cut += dropped > 0
        client.replica.sm.check_invariants()

        accounts = client.query_accounts(ledger_filter())
        if model.accounts_created:
            assert sorted(a.id for a in accounts) == list(range(1, ACCOUNTS + 1))
        model.accounts_created = len(accounts) == ACCOUNTS
        assert sum(a.debits_posted for a in accounts) == sum(a.credits_posted for a in accounts)
        assert sum(a.debits_pending for a in accounts) == sum(a.credits_pending for a in accounts)

        transfers = scan_transfers(client)
        ids_by_batch: dict[int, set[int]] = defaultdict(set)
        for t in transfers:
            ids_by_batch[t.user_data_64].add(t.id)

        # All or nothing per batch, and nothing that was never started.
        for k, ids in ids_by_batch.items():
            assert k in model.planned, f"batch {k} present but never begun"
            assert ids == expected_ids(k, model.planned[k]), (
                f"batch {k} is partial: {len(ids)} of {model.planned[k]} transfers present"
            )
        # Every acknowledged batch, from this child and every earlier one, is present.
        missing = sorted(model.acked - ids_by_batch.keys())
        assert not missing, f"acknowledged batches lost: {missing[:20]}"

        # The same, through point lookups of every id of the batches acknowledged just now.
        for k in sorted(acked_now):
            ids = sorted(expected_ids(k, model.planned[k]))
            found = client.lookup_transfers(ids)
            assert [t.id for t in found] == ids, f"acknowledged batch {k} incomplete by lookup"
            assert all(t.user_data_64 == k for t in found)

        # Posted balances are exactly what the surviving transfers post: a lost or replayed-twice
        # record would show here even where debits and credits still balance.
        debits: dict[int, int] = defaultdict(int)
        credits: dict[int, int] = defaultdict(int)
        not_posting = TransferFlags.PENDING | TransferFlags.VOID_PENDING_TRANSFER
        for t in transfers:
            if not t.flags & not_posting:
                debits[t.debit_account_id] += t.amount
                credits[t.credit_account_id] += t.amount
        for a in accounts:
            assert (a.debits_posted, a.credits_posted) == (debits[a.id], credits[a.id]), a.id

    return set(ids_by_batch)


def test_sigkill_at_random_moments_loses_no_acknowledged_batch_and_tears_none(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("TBLEDGER_CRASH_SEED", random.randrange(2**32)))
    print(f"crash test seed: {seed} (rerun with TBLEDGER_CRASH_SEED={seed})")
    rng = random.Random(seed)
    script = tmp_path / "crash_child.py"
    script.write_text(CHILD_SCRIPT)
    tally = Tally()
    started = time.monotonic()
    model = JournalModel(tmp_path / "unused.tbj")

    for kill in range(KILLS):
        if kill % KILLS_PER_JOURNAL == 0:
            model = JournalModel(tmp_path / f"ledger-{kill // KILLS_PER_JOURNAL}.tbj")
        lines = run_child_until_killed(script, model, seed, rng, tmp_path / f"child-{kill}.stderr")
        tally.kills += 1

        acked_now: set[int] = set()
        inflight: int | None = None
        for words in lines:
            if words[0] == "BEGIN":
                k, n = int(words[1]), int(words[2])
                model.planned[k] = n
                inflight = k
            elif words[0] == "ACK":
                k, n = int(words[1]), int(words[2])
                assert model.planned[k] == n
                acked_now.add(k)
                inflight = None
            elif words[0] == "READY":
                model.accounts_created = True
        model.acked |= acked_now

        damage, torn_bytes = simulate_torn_write(model, inflight, rng)
        tally.damage[damage] += 1
        present = verify_after_crash(model, acked_now, torn_bytes, tally)
        if damage == "cut the in-flight record":
            assert inflight not in present
        tally.acked_batches_verified += len(acked_now)
        if inflight is not None:
            if inflight in present:
                tally.inflight_present += 1
            else:
                tally.inflight_absent += 1
                # It was never acknowledged and is gone: the next child reuses its number.
                del model.planned[inflight]
        model.next_k = max(present, default=0) + 1

    elapsed = time.monotonic() - started
    print(
        f"SIGKILLs: {tally.kills}, acknowledged batches verified: {tally.acked_batches_verified}, "
        f"in-flight batches present/absent after the kill: "
        f"{tally.inflight_present}/{tally.inflight_absent}, torn tails cut on reopen: "
        f"{tally.torn_tails_cut}, simulated tail damage: {dict(tally.damage)}, {elapsed:.1f} s"
    )
    assert tally.kills >= 20
    # A run that never got past start-up would prove nothing: most children must have written.
    assert tally.acked_batches_verified >= 20, tally
