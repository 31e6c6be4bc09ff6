"""The embedded journal's layout as its documentation states it, for tests that read or damage a
journal file byte by byte.

Written out here rather than imported from ``tbledger.embedded.journal``: the durability tests
check the file against the documented layout, not the code against itself.
"""

from __future__ import annotations

import struct

FILE_HEADER_SIZE = 48
RECORD_HEADER_SIZE = 48
OP_CREATE_ACCOUNTS, OP_CREATE_TRANSFERS, OP_PULSE_UNRESERVED, OP_PULSE = 1, 2, 3, 4


def record_spans(data: bytes) -> list[tuple[int, int, int]]:
    """(start, end, operation) of every complete record, from the documented layout."""
    spans = []
    pos = FILE_HEADER_SIZE
    while pos + RECORD_HEADER_SIZE <= len(data):
        body_size, operation = struct.unpack_from("<II", data, pos)
        end = pos + RECORD_HEADER_SIZE + body_size
        if end > len(data):
            break
        spans.append((pos, end, operation))
        pos = end
    return spans
