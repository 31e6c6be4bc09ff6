"""The embedded engine's journal: a checksummed, fsynced log of every write it acknowledged.

The state machine is deterministic in its inputs, so the journal stores inputs, not state: each
record is one write (``create_accounts``, ``create_transfers`` or an expiry ``pulse``) with the
engine timestamp it ran at and its events in TigerBeetle's 128-byte wire layout. Opening a journal
replays it into a fresh state machine.

Layout::

    file header (48 B):  magic "TBLJRNL1" | version u32 | reserved u32 | cluster_id u128
                         | blake2b-128 of the preceding 32 bytes
    record header (48 B): body_size u32 | operation u32 | timestamp_ns u64
                         | blake2b-128 of the body | blake2b-128 of the preceding 32 bytes
    record body:          body_size bytes (events, 128 B each)

Operations: 1 create_accounts, 2 create_transfers, 4 pulse (3: a pulse from before pulses
reserved a batch of timestamps, replayed the old way).

A record is acknowledged only after ``os.write`` of the whole record and ``os.fsync`` returned.
Opening tells a torn tail from corruption this way: a process that dies mid-write leaves a prefix
of its last record, so a last record that is shorter than its header says, or a tail of zeros, is
torn and is cut off; a complete header or body whose checksum fails is corruption, and the journal
refuses to open rather than silently drop acknowledged writes.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from tbledger.embedded.state_machine import AccountEvent, TransferEvent
from tbledger.errors import JournalCorruptError, JournalError
from tbledger.limits import JOURNAL_RECORD_BYTES_MAX

__all__ = [
    "OP_CREATE_ACCOUNTS",
    "OP_CREATE_TRANSFERS",
    "OP_PULSE",
    "OP_PULSE_UNRESERVED",
    "Journal",
    "Record",
    "pack_accounts",
    "pack_transfers",
    "unpack_accounts",
    "unpack_transfers",
]

MAGIC: Final = b"TBLJRNL1"
VERSION: Final = 1
FILE_HEADER: Final = struct.Struct("<8sII16s")
RECORD_HEADER: Final = struct.Struct("<IIQ16s")
CHECKSUM_SIZE: Final = 16
FILE_HEADER_SIZE: Final = FILE_HEADER.size + CHECKSUM_SIZE
RECORD_HEADER_SIZE: Final = RECORD_HEADER.size + CHECKSUM_SIZE

OP_CREATE_ACCOUNTS: Final = 1
OP_CREATE_TRANSFERS: Final = 2
# A pulse as journaled before pulses reserved a batch of slots (see `StateMachine.pulse`); it is
# replayed as it ran, and never written any more.
OP_PULSE_UNRESERVED: Final = 3
OP_PULSE: Final = 4
_OPERATIONS: Final = frozenset(
    {OP_CREATE_ACCOUNTS, OP_CREATE_TRANSFERS, OP_PULSE_UNRESERVED, OP_PULSE}
)

# TigerBeetle's wire layouts: u128 fields as (low u64, high u64), little-endian, no padding. An
# Account and a Transfer have the same shape: six u128 fields, then u64, u32, u32, u32, u16, u16,
# u64 (for an account the third u32 is `reserved`, for a transfer it is `timeout`).
_EVENT: Final = struct.Struct("<QQQQQQQQQQQQQIIIHHQ")
_M64: Final = (1 << 64) - 1
if _EVENT.size != 128:  # pragma: no cover - layout guard
    raise JournalError("wire layout is not 128 bytes")

Event = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int]


def _checksum(data: bytes | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=CHECKSUM_SIZE).digest()


def pack_events(events: Sequence[Event]) -> bytes:
    """Accounts or transfers (as state-machine tuples) in TigerBeetle's 128-byte layout."""
    buf = bytearray(128 * len(events))
    pack_into = _EVENT.pack_into
    offset = 0
    for e in events:
        pack_into(
            buf,
            offset,
            e[0] & _M64, e[0] >> 64,
            e[1] & _M64, e[1] >> 64,
            e[2] & _M64, e[2] >> 64,
            e[3] & _M64, e[3] >> 64,
            e[4] & _M64, e[4] >> 64,
            e[5] & _M64, e[5] >> 64,
            e[6], e[7], e[8], e[9], e[10], e[11], e[12],
        )  # fmt: skip
        offset += 128
    return bytes(buf)


def unpack_events(body: bytes) -> list[Event]:
    """The inverse of `pack_events`."""
    return [
        (
            f[0] | f[1] << 64,
            f[2] | f[3] << 64,
            f[4] | f[5] << 64,
            f[6] | f[7] << 64,
            f[8] | f[9] << 64,
            f[10] | f[11] << 64,
            f[12],
            f[13],
            f[14],
            f[15],
            f[16],
            f[17],
            f[18],
        )
        for f in _EVENT.iter_unpack(body)
    ]


# The state machine's two event kinds share the layout.
pack_accounts: Callable[[Sequence[AccountEvent]], bytes] = pack_events
pack_transfers: Callable[[Sequence[TransferEvent]], bytes] = pack_events
unpack_accounts: Callable[[bytes], list[AccountEvent]] = unpack_events
unpack_transfers: Callable[[bytes], list[TransferEvent]] = unpack_events


@dataclass(frozen=True, slots=True)
class Record:
    """One acknowledged write: its operation, the engine timestamp it ran at, its packed events."""

    operation: int
    timestamp_ns: int
    body: bytes


def encode_record(operation: int, timestamp_ns: int, body: bytes) -> bytes:
    head = RECORD_HEADER.pack(len(body), operation, timestamp_ns, _checksum(body))
    return head + _checksum(head) + body


class Journal:
    """An append-only, fsynced record log in one file.

    `open` validates the whole file and returns the records to replay; `append` makes records
    durable before it returns. A torn tail is cut off on open (it was never acknowledged).
    """

    def __init__(self, path: str | os.PathLike[str], *, cluster_id: int, fsync: bool = True):
        self.path = os.fspath(path)
        self.cluster_id = cluster_id
        self._fsync = fsync
        self._fd: int | None = None
        self.torn_bytes_dropped = 0

    def open(self) -> Iterator[Record]:
        """Open (creating if absent) and yield every valid record, in order.

        Raises JournalCorruptError for damage other than a torn tail and JournalError for a
        journal of another cluster. The tail is truncated only after every record was read.
        """
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot open journal {self.path!r}: {exc}") from exc
        try:
            # One engine per journal: a second writer would interleave records.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise JournalError(f"journal {self.path!r} is in use by another engine") from exc
        self._fd = fd
        with open(fd, "rb", closefd=False) as f:
            data = f.read()
        if len(data) < FILE_HEADER_SIZE:
            # The header is written and fsynced before any record, so a prefix of our header (or
            # zeros) can only come from a crash during creation, before anything was acknowledged.
            # Anything else is someone else's file: refuse it rather than overwrite it.
            if data.strip(b"\x00") and not self._file_header().startswith(data):
                raise JournalError(f"{self.path!r} is not a tbledger journal")
            self._write_file_header()
            return
        self._check_file_header(data)
        pos = FILE_HEADER_SIZE
        end = len(data)
        while pos < end:
            record_end = self._record_end(data, pos)
            if record_end is None:
                self._truncate(pos, end)
                return
            _size, operation, timestamp_ns, _ = RECORD_HEADER.unpack_from(data, pos)
            yield Record(operation, timestamp_ns, data[pos + RECORD_HEADER_SIZE : record_end])
            pos = record_end

    def _record_end(self, data: bytes, pos: int) -> int | None:
        """The end offset of the valid record at `pos`, or None if `pos` starts a torn tail.

        Linear in the record's size: the rest of the file is looked at only when the record is
        not valid, to tell a zero-filled tail from corruption.
        """
        end = len(data)
        if end - pos < RECORD_HEADER_SIZE:
            return None  # a prefix of a header
        view = memoryview(data)
        head = view[pos : pos + RECORD_HEADER.size]
        if _checksum(head) != data[pos + RECORD_HEADER.size : pos + RECORD_HEADER_SIZE]:
            if data.count(0, pos, end) == end - pos:
                return None  # zeros to the end: space allocated but never written
            raise JournalCorruptError(
                f"journal {self.path!r}: record header checksum mismatch at offset {pos}"
            )
        size, operation, _, body_checksum = RECORD_HEADER.unpack(head)
        if size > JOURNAL_RECORD_BYTES_MAX or size % 128 or operation not in _OPERATIONS:
            raise JournalCorruptError(f"journal {self.path!r}: invalid record at offset {pos}")
        body_start = pos + RECORD_HEADER_SIZE
        if end - body_start < size:
            return None  # a prefix of a body
        if _checksum(view[body_start : body_start + size]) != body_checksum:
            raise JournalCorruptError(
                f"journal {self.path!r}: record body checksum mismatch at offset {pos}"
            )
        return int(body_start + size)

    def _check_file_header(self, data: bytes) -> None:
        head = data[: FILE_HEADER.size]
        if _checksum(head) != data[FILE_HEADER.size : FILE_HEADER_SIZE]:
            raise JournalCorruptError(f"journal {self.path!r}: file header checksum mismatch")
        magic, version, _, cluster = FILE_HEADER.unpack(head)
        if magic != MAGIC or version != VERSION:
            raise JournalError(f"{self.path!r} is not a tbledger journal (version {VERSION})")
        cluster_id = int.from_bytes(cluster, "little")
        if cluster_id != self.cluster_id:
            raise JournalError(
                f"journal {self.path!r} belongs to cluster {cluster_id}, not {self.cluster_id}"
            )

    def _file_header(self) -> bytes:
        head = FILE_HEADER.pack(MAGIC, VERSION, 0, self.cluster_id.to_bytes(16, "little"))
        return head + _checksum(head)

    def _write_file_header(self) -> None:
        fd = self._require_fd()
        os.ftruncate(fd, 0)
        os.pwrite(fd, self._file_header(), 0)
        self._sync(fd)
        os.lseek(fd, 0, os.SEEK_END)

    def _truncate(self, pos: int, end: int) -> None:
        fd = self._require_fd()
        self.torn_bytes_dropped = end - pos
        os.ftruncate(fd, pos)
        self._sync(fd)
        os.lseek(fd, 0, os.SEEK_END)

    def append(self, records: Sequence[bytes]) -> None:
        """Write encoded records and make them durable before returning."""
        fd = self._require_fd()
        data = records[0] if len(records) == 1 else b"".join(records)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        self._sync(fd)

    def _sync(self, fd: int) -> None:
        if self._fsync:
            os.fsync(fd)

    def _require_fd(self) -> int:
        if self._fd is None:
            raise JournalError("journal is not open")
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
