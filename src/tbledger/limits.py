"""Every limit tbledger enforces, in one place, each with the reason it has that value.

A limit that is reached raises a clear error naming it; nothing is silently truncated. Values that
mirror TigerBeetle are TigerBeetle's own defaults for a production (non ``--development``) cluster.
"""

from __future__ import annotations

from typing import Final

# Why: TigerBeetle's message is 1 MiB; minus the 256-byte header and a multi-batch trailer padded to
# one 128-byte element, 1,048,192 / 128 = 8189 events fit in one request.
BATCH_EVENTS_MAX: Final = 8189

# Why: the reply holds at most 8189 128-byte results, so a query's `limit` cannot exceed it; the
# official client raises TooMuchDataError above it rather than truncating.
QUERY_LIMIT_MAX: Final = 8189

# Why: ids, amounts and balances are unsigned 128-bit integers in TigerBeetle.
U128_MAX: Final = (1 << 128) - 1
U64_MAX: Final = (1 << 64) - 1
U32_MAX: Final = (1 << 32) - 1
U16_MAX: Final = (1 << 16) - 1

# Why: TigerBeetle reserves the top bit of a timestamp; valid timestamps are in [1, 2^63 - 1].
TIMESTAMP_MAX: Final = (1 << 63) - 1

# Why: the official client accepts at most six replica addresses (a cluster has at most six
# voting replicas).
REPLICA_ADDRESSES_MAX: Final = 6

# Why: a journal record larger than one full batch of 128-byte events plus its header means the
# file is corrupt; bounding it keeps a damaged length field from allocating gigabytes on open.
JOURNAL_RECORD_BYTES_MAX: Final = 64 + 128 * BATCH_EVENTS_MAX

# Why: expiry releases at most one create_transfers batch worth of pending transfers per pulse,
# as TigerBeetle does, so a backlog of expiries cannot stall one request unboundedly.
EXPIRY_PULSE_EVENTS_MAX: Final = BATCH_EVENTS_MAX
