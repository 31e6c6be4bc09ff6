"""The embedded engine's journal, specified through the public client.

``tbledger.embedded.ClientSync(cluster_id=..., path=...)`` journals every write it acknowledges and
replays the journal when it is opened again. Specified here:

* Reopening restores everything: accounts, transfers, balances and balance history, pending
  transfers and how they were resolved, failed and burned ids, expiry deadlines, and the
  timestamps themselves; new timestamps continue strictly after the journaled ones even when the
  clock is behind.
* An expiry is a write: the pulse that expires pending transfers is journaled, so an expiry
  survives a reopen even with a clock that says it has not happened yet.
* A torn tail is not an error: a file that ends inside its last record (inside the header or the
  body), or ends in zero bytes, opens without that record; the file is cut back to the last
  complete record, and writes appended afterwards survive the next reopen.
* Anything else is corruption and the journal is refused whole, untouched, with
  ``JournalCorruptError``: a bit flip in an earlier record's header or body, in the file header,
  or in the last record if that record is complete (complete means damaged, not torn).
* A journal of another cluster, or one that another engine has open, is refused with
  ``JournalError``.

The journal layout (``src/tbledger/embedded/journal.py``) is used only to find where records start
and end: a 48-byte file header, then records of a 48-byte header (``body_size`` u32, ``operation``
u32, ...) and ``body_size`` bytes of 128-byte events.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tigerbeetle import (
    Account,
    AccountFilter,
    AccountFilterFlags,
    AccountFlags,
    CreateAccountStatus,
    CreateTransferStatus,
    QueryFilter,
    Transfer,
    TransferFlags,
)

from tbledger.embedded import ClientSync, ManualClock
from tbledger.errors import JournalCorruptError, JournalError
from tests.support import filters
from tests.support.journal_layout import (
    FILE_HEADER_SIZE,
    OP_CREATE_ACCOUNTS,
    OP_CREATE_TRANSFERS,
    OP_PULSE,
    RECORD_HEADER_SIZE,
    record_spans,
)

S = 1_000_000_000  # nanoseconds per second
T0 = 1_700_000_000 * S  # a fixed engine clock reading for ManualClock tests
LEDGER = 1
CODE = 10
CREATED = CreateTransferStatus.CREATED


# -- helpers ---------------------------------------------------------------------------------


def account(id_: int, flags: AccountFlags = AccountFlags.NONE, ledger: int = LEDGER) -> Account:
    return Account(id=id_, ledger=ledger, code=CODE, flags=flags)


def transfer(
    id_: int, dr: int = 0, cr: int = 0, amount: int = 0, *, ledger: int = LEDGER, **kw: Any
) -> Transfer:
    return Transfer(
        id=id_,
        debit_account_id=dr,
        credit_account_id=cr,
        amount=amount,
        ledger=ledger,
        code=CODE,
        **kw,
    )


def statuses(results: list[Any]) -> list[Any]:
    return [r.status for r in results]


def query(ledger: int = 0, limit: int = 8189) -> QueryFilter:
    return filters.query_filter(ledger=ledger, limit=limit)


def account_filter(account_id: int) -> AccountFilter:
    return filters.account_filter(
        account_id=account_id, flags=AccountFilterFlags.DEBITS | AccountFilterFlags.CREDITS
    )


def snapshot(client: ClientSync, history_account: int | None = None) -> dict[str, list[Any]]:
    """Everything a client can observe: all accounts and transfers, one account's history."""
    snap: dict[str, list[Any]] = {
        "accounts": client.query_accounts(query()),
        "transfers": client.query_transfers(query()),
    }
    if history_account is not None:
        snap["balances"] = client.get_account_balances(account_filter(history_account))
        snap["account_transfers"] = client.get_account_transfers(account_filter(history_account))
    return snap


def balances(client: ClientSync, id_: int) -> tuple[int, int, int, int]:
    (a,) = client.lookup_accounts([id_])
    return a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted


def present_ids(client: ClientSync, ids: list[int]) -> list[int]:
    return [t.id for t in client.lookup_transfers(ids)]


def flip_bit(data: bytes, offset: int, bit: int = 0) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 1 << bit
    return bytes(damaged)


# -- a journal with three records, shared by the torn-tail and corruption tests ---------------

EARLY_IDS = [1, 2, 3]  # the second record: a transfer batch that is not the last record
LAST_IDS = [101, 102]  # the last record


def write_three_record_journal(path: Path, last_batch_size: int = len(LAST_IDS)) -> bytes:
    """accounts | transfers 1..3 | transfers 101.. ; returns the file's bytes."""
    with ClientSync(cluster_id=0, path=path) as client:
        client.create_accounts([account(1), account(2)])
        assert (
            statuses(client.create_transfers([transfer(i, 1, 2, i) for i in EARLY_IDS]))
            == [CREATED] * 3
        )
        last = [transfer(100 + i, 2, 1, 1) for i in range(1, last_batch_size + 1)]
        assert statuses(client.create_transfers(last)) == [CREATED] * last_batch_size
    data = path.read_bytes()
    assert [op for _, _, op in record_spans(data)] == [
        OP_CREATE_ACCOUNTS,
        OP_CREATE_TRANSFERS,
        OP_CREATE_TRANSFERS,
    ]
    return data


@pytest.fixture(scope="module")
def three_records(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_three_record_journal(tmp_path_factory.mktemp("journal") / "three.tbj")


# -- reopen restores state -------------------------------------------------------------------


def test_reopen_restores_accounts_transfers_balances_and_history(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tbj"
    with ClientSync(cluster_id=0, path=path) as client:
        assert (
            statuses(
                client.create_accounts(
                    [
                        account(1),
                        account(2),
                        account(3, AccountFlags.HISTORY),
                        account(4, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
                        account(10, ledger=2),
                        account(11, ledger=2),
                    ]
                )
            )
            == [CreateAccountStatus.CREATED] * 6
        )
        first = client.create_transfers(
            [
                transfer(1, 1, 2, 100),
                transfer(2, 2, 3, 50),
                # A chain that fails at its second link: the first is rolled back, and the
                # second's transient failure burns its id all the same.
                transfer(3, 1, 3, 5, flags=TransferFlags.LINKED),
                transfer(4, 4, 1, 5),
                transfer(5, 4, 1, 1),  # exceeds credits: a transient failure, burns id 5
                transfer(6, 1, 3, 30, flags=TransferFlags.PENDING),
                transfer(7, 2, 1, 20, flags=TransferFlags.PENDING),
                transfer(8, 1, 2, 40, flags=TransferFlags.PENDING, timeout=3600),
                transfer(12, 10, 11, 7, ledger=2),
            ]
        )
        assert statuses(first) == [
            CREATED,
            CREATED,
            CreateTransferStatus.LINKED_EVENT_FAILED,
            CreateTransferStatus.EXCEEDS_CREDITS,
            CreateTransferStatus.EXCEEDS_CREDITS,
            CREATED,
            CREATED,
            CREATED,
            CREATED,
        ]
        second = client.create_transfers(
            [
                transfer(9, amount=10, pending_id=6, flags=TransferFlags.POST_PENDING_TRANSFER),
                transfer(10, pending_id=7, flags=TransferFlags.VOID_PENDING_TRANSFER),
            ]
        )
        assert statuses(second) == [CREATED, CREATED]
        before = snapshot(client, history_account=3)
        assert len(before["balances"]) == 3

    with ClientSync(cluster_id=0, path=path) as client:
        # Every observable object, with its timestamp, exactly as before.
        assert snapshot(client, history_account=3) == before
        client.replica.sm.check_invariants()
        assert balances(client, 1) == (40, 110, 0, 0)  # 8 still pending; 6 posted 10 of 30
        assert balances(client, 3) == (0, 0, 0, 60)

        # The outcomes of failed events were replayed too, not just the successes.
        again = client.create_transfers(
            [
                transfer(3, 1, 3, 5),  # only rolled back (linked_event_failed): id still free
                transfer(4, 4, 1, 5),  # transient failure inside the chain: burned
                transfer(5, 4, 1, 1),  # transient failure: burned
                transfer(13, amount=5, pending_id=6, flags=TransferFlags.POST_PENDING_TRANSFER),
                transfer(14, pending_id=7, flags=TransferFlags.VOID_PENDING_TRANSFER),
                transfer(15, pending_id=8, flags=TransferFlags.POST_PENDING_TRANSFER, amount=40),
            ]
        )
        assert statuses(again) == [
            CREATED,
            CreateTransferStatus.ID_ALREADY_FAILED,
            CreateTransferStatus.ID_ALREADY_FAILED,
            CreateTransferStatus.PENDING_TRANSFER_ALREADY_POSTED,
            CreateTransferStatus.PENDING_TRANSFER_ALREADY_VOIDED,
            CREATED,  # 8 was still pending after the reopen
        ]


def test_writes_after_a_reopen_survive_the_next_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tbj"
    with ClientSync(cluster_id=0, path=path) as client:
        client.create_accounts([account(1), account(2)])
        client.create_transfers([transfer(1, 1, 2, 5)])
    for generation in range(2, 6):
        with ClientSync(cluster_id=0, path=path) as client:
            assert present_ids(client, list(range(1, generation))) == list(range(1, generation))
            assert statuses(client.create_transfers([transfer(generation, 1, 2, 5)])) == [CREATED]
    with ClientSync(cluster_id=0, path=path) as client:
        assert balances(client, 1) == (0, 25, 0, 0)


def test_timestamps_continue_strictly_increasing_after_reopen_even_with_a_clock_behind(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.tbj"
    # A clock that never moves: the engine must still hand out strictly increasing timestamps.
    with ClientSync(cluster_id=0, path=path, clock=ManualClock(T0)) as client:
        client.create_accounts([account(1), account(2)])
        client.create_transfers([transfer(i, 1, 2, 1) for i in range(1, 4)])
        client.lookup_accounts([1])  # reads advance the clock too, without being journaled
        client.create_transfers([transfer(4, 1, 2, 1)])
        before = snapshot(client)

    # Reopen an hour in the past (a clock stepped back, another machine): nothing may be issued
    # at or before a journaled timestamp.
    with ClientSync(cluster_id=0, path=path, clock=ManualClock(T0 - 3600 * S)) as client:
        assert snapshot(client) == before
        client.create_accounts([account(3)])
        client.create_transfers([transfer(i, 1, 3, 1) for i in range(5, 8)])
        after = snapshot(client)

    with ClientSync(cluster_id=0, path=path) as client:
        assert snapshot(client) == after  # timestamps come from the journal, not the new clock

    stamps = sorted(
        [a.timestamp for a in after["accounts"]] + [t.timestamp for t in after["transfers"]]
    )
    assert len(set(stamps)) == len(stamps)
    by_id = {t.id: t.timestamp for t in after["transfers"]}
    assert [by_id[i] for i in range(1, 8)] == sorted(by_id[i] for i in range(1, 8))
    (new_account,) = [a for a in after["accounts"] if a.id == 3]
    assert new_account.timestamp > by_id[4]


# -- pending transfers and expiry across reopen ----------------------------------------------


def test_a_pending_transfer_expires_on_schedule_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tbj"
    with ClientSync(cluster_id=0, path=path, clock=ManualClock(T0)) as client:
        client.create_accounts([account(1), account(2)])
        assert (
            statuses(
                client.create_transfers(
                    [
                        transfer(1, 1, 2, 100, flags=TransferFlags.PENDING, timeout=10),
                        transfer(2, 1, 2, 20, flags=TransferFlags.PENDING, timeout=10),
                        transfer(3, 1, 2, 3, flags=TransferFlags.PENDING),  # never expires
                    ]
                )
            )
            == [CREATED] * 3
        )

    # Half way to the deadline: still pending, and still postable.
    clock = ManualClock(T0 + 5 * S)
    with ClientSync(cluster_id=0, path=path, clock=clock) as client:
        assert balances(client, 1) == (123, 0, 0, 0)
        posted = client.create_transfers(
            [transfer(11, pending_id=2, amount=20, flags=TransferFlags.POST_PENDING_TRANSFER)]
        )
        assert statuses(posted) == [CREATED]
        size_before_expiry = path.stat().st_size
        clock.advance(6)
        # The first operation past the deadline releases transfer 1; the pulse is a write.
        assert balances(client, 1) == (3, 20, 0, 0)
        data = path.read_bytes()
        assert len(data) == size_before_expiry + RECORD_HEADER_SIZE
        assert record_spans(data)[-1][2] == OP_PULSE
        late = client.create_transfers(
            [transfer(12, pending_id=1, flags=TransferFlags.VOID_PENDING_TRANSFER)]
        )
        assert statuses(late) == [CreateTransferStatus.PENDING_TRANSFER_EXPIRED]


def test_an_expiry_is_journaled_and_survives_reopen_with_a_clock_behind_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tbj"
    clock = ManualClock(T0)
    with ClientSync(cluster_id=0, path=path, clock=clock) as client:
        client.create_accounts([account(1), account(2)])
        client.create_transfers([transfer(1, 1, 2, 100, flags=TransferFlags.PENDING, timeout=1)])
        clock.advance(2)
        assert balances(client, 1) == (0, 0, 0, 0)  # expired by this read's pulse

    # With the clock back at T0 the transfer would not be due yet: only the journaled pulse can
    # say it expired.
    with ClientSync(cluster_id=0, path=path, clock=ManualClock(T0)) as client:
        assert balances(client, 1) == (0, 0, 0, 0)
        assert balances(client, 2) == (0, 0, 0, 0)
        post = client.create_transfers(
            [transfer(2, pending_id=1, amount=100, flags=TransferFlags.POST_PENDING_TRANSFER)]
        )
        assert statuses(post) == [CreateTransferStatus.PENDING_TRANSFER_EXPIRED]
        client.replica.sm.check_invariants()


def test_a_pending_transfer_not_yet_expired_at_close_expires_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tbj"
    with ClientSync(cluster_id=0, path=path, clock=ManualClock(T0)) as client:
        client.create_accounts([account(1), account(2)])
        client.create_transfers([transfer(1, 1, 2, 100, flags=TransferFlags.PENDING, timeout=60)])

    # Reopened long after the deadline: the replayed deadline is honoured on first use.
    with ClientSync(cluster_id=0, path=path, clock=ManualClock(T0 + 3600 * S)) as client:
        assert balances(client, 1) == (0, 0, 0, 0)
        void = client.create_transfers(
            [transfer(2, pending_id=1, flags=TransferFlags.VOID_PENDING_TRANSFER)]
        )
        assert statuses(void) == [CreateTransferStatus.PENDING_TRANSFER_EXPIRED]


def test_an_expiry_backlog_larger_than_one_pulse_replays_pulse_by_pulse(tmp_path: Path) -> None:
    # One pulse releases at most 8189 transfers; each pulse is its own journaled write, so the
    # replay releases exactly what the live engine had released, and the rest follow later.
    path = tmp_path / "ledger.tbj"
    clock = ManualClock(T0)
    with ClientSync(cluster_id=0, path=path, clock=clock) as client:
        client.create_accounts([account(1), account(2)])
        for first, count in ((1, 8189), (8190, 11)):
            pending = [
                transfer(i, 1, 2, 1, flags=TransferFlags.PENDING, timeout=1)
                for i in range(first, first + count)
            ]
            assert statuses(client.create_transfers(pending)) == [CREATED] * count
        clock.advance(2)
        assert balances(client, 1) == (11, 0, 0, 0)  # the first pulse: a full batch of expiries
        pulses = [op for _, _, op in record_spans(path.read_bytes())].count(OP_PULSE)
        assert pulses == 1

    # Engine time never goes back: it resumes from the journal, already past the remaining
    # deadlines, even though this clock is two seconds behind them.
    with ClientSync(cluster_id=0, path=path, clock=ManualClock(T0)) as client:
        assert client.replica.sm.next_expiry_ns() is not None  # replayed: the 11 still pending
        assert balances(client, 1) == (0, 0, 0, 0)  # the second pulse
    assert [op for _, _, op in record_spans(path.read_bytes())].count(OP_PULSE) == 2

    with ClientSync(cluster_id=0, path=path, clock=ManualClock(T0)) as client:
        assert client.replica.sm.next_expiry_ns() is None
        assert balances(client, 1) == (0, 0, 0, 0)
        client.replica.sm.check_invariants()


# -- torn tails --------------------------------------------------------------------------------


def reopen_after_tear(path: Path, data: bytes, cut: int) -> None:
    """Write `data[:cut]` (a tear inside the last record) and check the whole torn-tail contract."""
    last_start = record_spans(data)[-1][0]
    assert last_start < cut < len(data)
    path.write_bytes(data[:cut])
    with ClientSync(cluster_id=0, path=path) as client:
        assert present_ids(client, EARLY_IDS) == EARLY_IDS, cut
        assert present_ids(client, LAST_IDS) == [], cut  # never half a batch
        assert path.stat().st_size == last_start, cut  # cut back to the last complete record
        # The torn batch's ids were never used: creating them again (differently) succeeds.
        redo = client.create_transfers([transfer(i, 1, 2, 7) for i in LAST_IDS])
        assert statuses(redo) == [CREATED] * len(LAST_IDS), cut
    with ClientSync(cluster_id=0, path=path) as client:
        assert [t.amount for t in client.lookup_transfers(EARLY_IDS + LAST_IDS)] == [
            1,
            2,
            3,
            7,
            7,
        ], cut
        assert balances(client, 1) == (0, 20, 0, 0), cut  # 1 + 2 + 3, then 7 + 7


def test_a_tear_at_every_byte_inside_the_last_record_drops_just_that_record(
    tmp_path: Path, three_records: bytes
) -> None:
    last_start, last_end, _ = record_spans(three_records)[-1]
    path = tmp_path / "torn.tbj"
    # Every offset: 1..47 are inside the record header, 48.. inside the body.
    for cut in range(last_start + 1, last_end):
        reopen_after_tear(path, three_records, cut)


def test_a_tear_inside_a_full_size_last_record_drops_just_that_record(tmp_path: Path) -> None:
    data = write_three_record_journal(tmp_path / "big.tbj", last_batch_size=2000)
    last_start, last_end, _ = record_spans(data)[-1]
    body = last_start + RECORD_HEADER_SIZE
    cuts = {
        *range(last_start + 1, body + 2),  # every offset in the header, and just past it
        *range(body + 127, last_end, 128 * 97),  # event boundaries across the body
        *range(body + 1000, last_end, 25_013),
        last_end - 1,
    }
    last_ids = [100 + i for i in range(1, 2001)]
    path = tmp_path / "torn.tbj"
    for cut in sorted(cuts):
        path.write_bytes(data[:cut])
        with ClientSync(cluster_id=0, path=path) as client:
            assert present_ids(client, EARLY_IDS) == EARLY_IDS, cut
            assert present_ids(client, last_ids) == [], cut
            assert path.stat().st_size == last_start, cut


def test_a_tear_between_a_pulse_and_its_batch_keeps_the_pulse(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tbj"
    clock = ManualClock(T0)
    with ClientSync(cluster_id=0, path=path, clock=clock) as client:
        client.create_accounts([account(1), account(2)])
        client.create_transfers([transfer(1, 1, 2, 100, flags=TransferFlags.PENDING, timeout=1)])
        clock.advance(2)
        # One call, two records written together: the expiry pulse, then the batch.
        client.create_transfers([transfer(2, 1, 2, 5)])
    data = path.read_bytes()
    (pulse, batch) = record_spans(data)[-2:]
    assert (pulse[2], batch[2]) == (OP_PULSE, OP_CREATE_TRANSFERS)

    path.write_bytes(data[: batch[0] + RECORD_HEADER_SIZE + 64])
    with ClientSync(cluster_id=0, path=path, clock=ManualClock(T0)) as client:
        assert present_ids(client, [1, 2]) == [1]
        assert balances(client, 1) == (0, 0, 0, 0)  # the complete pulse record was kept
        assert path.stat().st_size == batch[0]


@pytest.mark.parametrize("zeros", [1, 47, 48, 175, 4096])
def test_zero_bytes_after_the_last_record_are_dropped(
    tmp_path: Path, three_records: bytes, zeros: int
) -> None:
    # Space a file system allocated for a write that never landed reads back as zeros.
    path = tmp_path / "zeros.tbj"
    path.write_bytes(three_records + bytes(zeros))
    with ClientSync(cluster_id=0, path=path) as client:
        assert present_ids(client, EARLY_IDS + LAST_IDS) == EARLY_IDS + LAST_IDS
        assert path.stat().st_size == len(three_records)
        client.create_transfers([transfer(200, 1, 2, 1)])
    with ClientSync(cluster_id=0, path=path) as client:
        assert present_ids(client, [*LAST_IDS, 200]) == [*LAST_IDS, 200]


def test_a_last_record_that_reads_back_as_zeros_is_dropped(
    tmp_path: Path, three_records: bytes
) -> None:
    # Allocated but never written: the whole last record reads back as zeros. A tail of zeros is
    # dropped however long it is.
    last_start = record_spans(three_records)[-1][0]
    path = tmp_path / "zeros.tbj"
    path.write_bytes(three_records[:last_start] + bytes(len(three_records) - last_start))
    with ClientSync(cluster_id=0, path=path) as client:
        assert present_ids(client, EARLY_IDS + LAST_IDS) == EARLY_IDS
        assert path.stat().st_size == last_start


@pytest.mark.parametrize("length", [0, 1, 8, 47])
def test_a_file_cut_inside_its_header_opens_as_a_new_journal(
    tmp_path: Path, three_records: bytes, length: int
) -> None:
    # The file header is written and fsynced before any record: a shorter file is a crash during
    # creation, before anything could have been acknowledged.
    path = tmp_path / "new.tbj"
    path.write_bytes(three_records[:length])
    with ClientSync(cluster_id=0, path=path) as client:
        assert client.query_accounts(query()) == []
        client.create_accounts([account(1)])
    with ClientSync(cluster_id=0, path=path) as client:
        assert [a.id for a in client.lookup_accounts([1])] == [1]


# -- corruption is refused ---------------------------------------------------------------------


def assert_refused_as_corrupt(path: Path, data: bytes) -> None:
    """Opening `data` raises JournalCorruptError, changes no byte, and holds no lock after."""
    path.write_bytes(data)
    for _ in range(2):  # a second try fails the same way: the refused open left no lock behind
        with pytest.raises(JournalCorruptError):
            ClientSync(cluster_id=0, path=path)
    assert path.read_bytes() == data


def test_a_bit_flip_in_an_earlier_record_header_is_refused(
    tmp_path: Path, three_records: bytes
) -> None:
    start, _, _ = record_spans(three_records)[1]
    path = tmp_path / "bad.tbj"
    # Every byte of the header: size, operation, timestamp, body checksum, header checksum.
    for offset in range(start, start + RECORD_HEADER_SIZE):
        assert_refused_as_corrupt(path, flip_bit(three_records, offset, offset % 8))


def test_a_bit_flip_in_an_earlier_record_body_is_refused(
    tmp_path: Path, three_records: bytes
) -> None:
    start, end, _ = record_spans(three_records)[1]
    path = tmp_path / "bad.tbj"
    for offset in (start + RECORD_HEADER_SIZE, start + RECORD_HEADER_SIZE + 77, end - 1):
        for bit in (0, 7):
            assert_refused_as_corrupt(path, flip_bit(three_records, offset, bit))


def test_a_bit_flip_in_the_first_record_is_refused(tmp_path: Path, three_records: bytes) -> None:
    start, end, _ = record_spans(three_records)[0]
    path = tmp_path / "bad.tbj"
    for offset in (start, start + 20, start + RECORD_HEADER_SIZE + 3, end - 1):
        assert_refused_as_corrupt(path, flip_bit(three_records, offset))


def test_a_bit_flip_in_the_file_header_is_refused(tmp_path: Path, three_records: bytes) -> None:
    path = tmp_path / "bad.tbj"
    # Every byte: magic, version, reserved, cluster id, checksum.
    for offset in range(FILE_HEADER_SIZE):
        assert_refused_as_corrupt(path, flip_bit(three_records, offset, (offset * 3) % 8))


def test_a_bit_flip_in_the_last_complete_record_is_corruption_not_a_tear(
    tmp_path: Path, three_records: bytes
) -> None:
    # The record is all there, so no write was cut short: its checksum failing is damage, and
    # dropping it would silently lose an acknowledged batch.
    start, end, _ = record_spans(three_records)[-1]
    path = tmp_path / "bad.tbj"
    for offset in (start + RECORD_HEADER_SIZE, start + RECORD_HEADER_SIZE + 64, end - 1):
        assert_refused_as_corrupt(path, flip_bit(three_records, offset, 5))
    for offset in (start, start + 4, start + 8, start + 16, start + 32, start + 47):
        assert_refused_as_corrupt(path, flip_bit(three_records, offset, 1))


def test_zeros_over_an_earlier_record_are_corruption(tmp_path: Path, three_records: bytes) -> None:
    # Zeros are a torn tail only at the end of the file; with a record after them they are damage.
    start, end, _ = record_spans(three_records)[1]
    zeroed = three_records[:start] + bytes(end - start) + three_records[end:]
    assert_refused_as_corrupt(tmp_path / "bad.tbj", zeroed)


def test_garbage_after_the_last_record_is_corruption(tmp_path: Path, three_records: bytes) -> None:
    # A full header's worth of non-zero bytes that do not check out is not a prefix of a record.
    assert_refused_as_corrupt(tmp_path / "bad.tbj", three_records + b"\xa5" * RECORD_HEADER_SIZE)


def test_a_refused_journal_opens_again_once_repaired(tmp_path: Path, three_records: bytes) -> None:
    path = tmp_path / "ledger.tbj"
    start, _, _ = record_spans(three_records)[1]
    assert_refused_as_corrupt(path, flip_bit(three_records, start + RECORD_HEADER_SIZE + 1))
    path.write_bytes(three_records)
    with ClientSync(cluster_id=0, path=path) as client:
        assert present_ids(client, EARLY_IDS + LAST_IDS) == EARLY_IDS + LAST_IDS


# -- identity and exclusive use ----------------------------------------------------------------


def test_a_journal_of_another_cluster_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tbj"
    with ClientSync(cluster_id=7, path=path) as client:
        client.create_accounts([account(1)])
    data = path.read_bytes()
    with pytest.raises(JournalError) as refused:
        ClientSync(cluster_id=0, path=path)
    # Not damage, a mix-up: the file is fine and stays as it was.
    assert not isinstance(refused.value, JournalCorruptError)
    assert path.read_bytes() == data
    with ClientSync(cluster_id=7, path=path) as client:
        assert [a.id for a in client.lookup_accounts([1])] == [1]


def test_a_journal_in_use_is_refused_to_a_second_engine(tmp_path: Path) -> None:
    path = tmp_path / "ledger.tbj"
    with ClientSync(cluster_id=0, path=path) as first:
        first.create_accounts([account(1)])
        with pytest.raises(JournalError):
            ClientSync(cluster_id=0, path=path)
        # The refused second engine disturbed nothing: the first keeps working.
        assert statuses(first.create_accounts([account(2)])) == [CreateAccountStatus.CREATED]
    with ClientSync(cluster_id=0, path=path) as second:
        assert [a.id for a in second.lookup_accounts([1, 2])] == [1, 2]


def test_a_journal_in_use_by_another_process_is_refused_until_that_process_dies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.tbj"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from tbledger.embedded import ClientSync\n"
            "client = ClientSync(cluster_id=0, path=sys.argv[1])\n"
            "print('open', flush=True)\n"
            "time.sleep(60)\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(JournalError):
            ClientSync(cluster_id=0, path=path)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # The lock goes with the process, however it ended.
    with ClientSync(cluster_id=0, path=path) as client:
        assert client.query_accounts(query()) == []


# -- a file that is not a journal; a journal that has grown large -----------------------------


def test_a_short_file_that_is_not_a_journal_is_refused_not_overwritten(tmp_path: Path) -> None:
    # A file shorter than the header is a crash during creation only if it is a prefix of a
    # journal header (or zeros; see the test above). Anything else is a damaged header or
    # someone else's file (a mistyped path): like a longer file with a bad header it is refused,
    # not overwritten with a fresh journal.
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my notes, not a journal\n")
    with pytest.raises(JournalError):
        ClientSync(cluster_id=0, path=path).close()
    assert path.read_bytes() == b"my notes, not a journal\n"


def test_opening_a_journal_takes_time_linear_in_its_records(tmp_path: Path) -> None:
    # 50,000 one-transfer batches (8.8 MB): replaying them takes about a second. An `open` that
    # looks at the rest of the file for every record (as the first version did, to detect a tail
    # of zeros) copies ~220 GB here, half a minute, growing with the square of the journal: a
    # long-lived ledger would never open again. The budget is generous for a linear open and far
    # too small for a quadratic one.
    path = tmp_path / "many.tbj"
    with ClientSync(cluster_id=0, path=path, fsync=False) as client:
        client.create_accounts([account(1), account(2)])
        for i in range(1, 50_001):
            client.create_transfers([transfer(i, 1, 2, 1)])
    budget_s = 10.0
    script = (
        "import sys, time\n"
        "from tbledger.embedded import ClientSync\n"
        "start = time.perf_counter()\n"
        "client = ClientSync(cluster_id=0, path=sys.argv[1])\n"
        "print(time.perf_counter() - start)\n"
    )
    started = time.monotonic()
    try:
        out = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            capture_output=True,
            text=True,
            timeout=budget_s + 5,  # interpreter start-up, then the budget; killed past it
            check=True,
        ).stdout
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"opening a journal of 50,000 records took over {budget_s:.0f} s "
            f"(killed after {time.monotonic() - started:.0f} s)"
        )
    assert float(out) < budget_s
    assert os.path.getsize(path) > 50_000 * (RECORD_HEADER_SIZE + 128)
