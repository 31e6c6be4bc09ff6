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

# Why: `tigerbeetle amqp` publishes at most one get_change_events reply per batch: 1,048,192 /
# 384 (a change event is a transfer and two accounts) = 2729 events. The twin's publisher keeps
# the same batch bound, so a batch and its confirms stay as large as TigerBeetle's.
CDC_PUBLISH_EVENTS_MAX: Final = 2729

# Why: the publisher's idle wait between polls, as `tigerbeetle amqp`'s default (1 s); bounded so
# a misconfigured interval cannot make the publisher spin or go silent for long.
CDC_PUBLISH_IDLE_INTERVAL_S: Final = 1.0
CDC_PUBLISH_IDLE_INTERVAL_S_MIN: Final = 0.01
CDC_PUBLISH_IDLE_INTERVAL_S_MAX: Final = 60.0

# Why: expiry releases at most one create_transfers batch worth of pending transfers per pulse,
# as TigerBeetle does, so a backlog of expiries cannot stall one request unboundedly.
EXPIRY_PULSE_EVENTS_MAX: Final = BATCH_EVENTS_MAX

# Why: the store persists at most one engine request per call (intents, events, accounts), so a
# write batch is bounded by the engine's own batch size.
STORE_BATCH_ROWS_MAX: Final = BATCH_EVENTS_MAX

# Why: a small batch (the coalescer's groups under moderate load) is one INSERT ... FROM unnest
# statement, one round trip in its own implicit transaction, where COPY needs BEGIN, two round
# trips per table and COMMIT. Measured on PostgreSQL 15 (intents with their submitted events):
# 1 row 0.6 vs 1.5 ms, 16 rows 0.9 vs 1.7 ms, 64 rows 2.0 vs 2.2 ms, 128 rows 3.7 vs 3.0 ms.
STORE_DIRECT_ROWS_MAX: Final = 64

# Why: one page of the recovery backlog or of the audit tail is resubmitted or replayed as one
# engine batch; lookups by owner, event id or transfer return at most this many rows, else fail.
STORE_PAGE_ROWS_MAX: Final = BATCH_EVENTS_MAX

# Why: a transfer has a handful of audit events (submitted, outcome unknown, refused by the open
# circuit, its outcome, a hold's resolution); eight each for a full batch bounds one read of a
# batch's histories (a replay's) at about 65k rows, a few MiB, where one row more means damage.
STORE_AUDIT_ROWS_MAX: Final = 8 * BATCH_EVENTS_MAX

# Why: a hold past its timeout is read as expired only once the engine is known to hold none of
# its posts or voids, so the store lists every resolution ever attempted on a page of such holds;
# usually one each or none, and a few refused attempts each still fit. One row more is refused
# (`LimitExceededError`), never cut short: a resolution left out could read a posted hold expired.
STORE_RESOLUTION_ROWS_MAX: Final = 8 * BATCH_EVENTS_MAX

# Why: names, owner ids, event ids, payment ids, hashes and idempotency keys are identifiers, not
# documents; bounded so indexes stay small and both databases agree (SQLite ignores VARCHAR(n)).
STORE_TEXT_CHARS_MAX: Final = 255

# Why: metadata rides along in the batch's single INSERT; 4 KiB x 8189 rows keeps one statement
# near 32 MiB, well under PostgreSQL's 1 GiB message limit and SQLite's default 1 GB blob limit.
STORE_METADATA_BYTES_MAX: Final = 4096

# Why: the service must learn that the store is down before it touches the engine; the kernel's
# TCP connect retries would otherwise wait for minutes.
STORE_CONNECT_TIMEOUT_S: Final = 5.0

# Why: one batch statement takes milliseconds; 30 s covers a slow disk or a lock wait (SQLite's
# busy timeout too) while keeping a stuck database from holding a batch forever.
STORE_STATEMENT_TIMEOUT_S: Final = 30.0

# Why: checking a pooled connection costs three round trips (BEGIN, a ping, ROLLBACK), as much as
# the statement it precedes; a connection used within the last second is taken as alive (a server
# restart or failover takes longer than that), an idler one is checked before it is handed out.
STORE_PING_IDLE_S: Final = 1.0

# Why: each call is one statement or one short transaction, so a few connections saturate the
# store, and PostgreSQL's max_connections (100 by default) is shared by every process.
STORE_POOL_CONNECTIONS_MAX: Final = 10

# Why: a retry resubmits the same ids (safe), but each attempt holds its caller and may leave one
# more request running in the client; past ten the engine is down and the circuit breaker answers.
RETRY_ATTEMPTS_MAX: Final = 10

# Why: one backoff sleep longer than 30 s outlasts any caller waiting on an answer (an HTTP client);
# an engine that needs longer is down, which is the circuit breaker's case, not the retry's.
RETRY_DELAY_MAX_S: Final = 30.0

# Why: a health probe is one small read, and callers waiting on a half-open circuit wait for it, so
# it gets a deadline like any engine request; a probe slower than this counts as a failure.
CIRCUIT_PROBE_TIMEOUT_S: Final = 5.0

# Why: the largest legitimate body is a batch of 8189 transfers (about 400 bytes of JSON each,
# ~3.2 MiB); anything larger is refused with 413 before it is read into memory.
HTTP_BODY_BYTES_MAX: Final = 4 * 1024 * 1024

# Why: a page of accounts or transfers is rendered to JSON in one response; 1000 rows keeps a
# response under a megabyte and a slow client from pinning the server on one request.
HTTP_PAGE_LIMIT_MAX: Final = 1000

# Why: a listing of accounts (by type, ledger, status or owner) or of transfers (by metadata) is
# paged, never returned whole, however many rows match: a page is one bounded query, 100 rows
# unless the caller asks for more (at most HTTP_PAGE_LIMIT_MAX), so a default listing stays small.
LISTING_PAGE_ROWS_DEFAULT: Final = 100

# Why: each metadata key/value pair of a transfer listing is one more containment term (one
# document for PostgreSQL's GIN index, one scan of the document on SQLite); eight pairs pin down
# any real lookup (an order, a customer reference) while bounding what one query can ask for.
METADATA_FILTER_PAIRS_MAX: Final = 8

# Why: an owner's key serves one user's app; 50 requests/s (bursts of 100) is far above a person's
# pace and keeps one leaked key from starving everyone else. Admin keys serve back offices and
# load generators.
API_KEY_RATE_PER_S_DEFAULT: Final = 50
API_KEY_BURST_DEFAULT: Final = 100
API_ADMIN_RATE_PER_S_DEFAULT: Final = 100_000
API_ADMIN_BURST_DEFAULT: Final = 100_000

# Why: verified keys are cached so a request costs no store read; a revoked key stops working
# within this many seconds in every process.
API_KEY_CACHE_TTL_S: Final = 2.0

# Why: a key's budget also counts transfers and body bytes, not only requests, so a batch of 8189
# transfers or a 4 MiB body costs what it weighs. Derived from the key's own `rate_per_s` and
# `burst` so one knob scales all three: a request may carry 20 transfers and 8 KiB of body on
# average (an owner key's default: 1000 transfers/s, 400 KiB/s). A cost above the bucket's
# capacity (a full batch, a large body) is admitted when the bucket is full and leaves it in debt,
# so big batches stay possible while the average rate holds.
API_KEY_EVENTS_PER_REQUEST: Final = 20
API_KEY_BYTES_PER_REQUEST: Final = 8 * 1024

# Why: a request without a valid key is answered without reading its body, but answering still
# costs parsing its headers (and, for a well-formed unknown key, one store read); each client
# address gets a bucket, and all of them share a global one, so keyless floods cannot take the
# server's time from keyed callers. Generous enough for a person retyping a key, or a test suite
# probing every route with bad keys; health probes (/healthz, /readyz) use the per-address bucket
# only, so a flood from elsewhere cannot fail a load balancer's probe.
API_KEYLESS_RATE_PER_S: Final = 100
API_KEYLESS_BURST: Final = 1000
API_KEYLESS_GLOBAL_RATE_PER_S: Final = 1000
API_KEYLESS_GLOBAL_BURST: Final = 2000

# Why: a well-formed key id that is not in the store would otherwise cost a store read on every
# request; misses are remembered this long (a key created meanwhile works at most this much later,
# well under a person's time to copy a new key into a client), in a bounded table.
API_KEY_NEGATIVE_TTL_S: Final = 2.0
API_KEY_NEGATIVE_CACHE_MAX: Final = 10_000

# Why: intents are persisted before the engine sees them (DESIGN section 3), so metadata is stored
# even for transfers the engine refuses. Besides the per-document cap (STORE_METADATA_BYTES_MAX),
# one request may carry at most this much metadata in all (as stored: compact JSON), so a refused
# batch grows the store by at most this plus its rows' fixed columns. 256 KiB is 64 transfers with
# a full 4 KiB document each, or a full 8189-transfer batch with 32 bytes each.
HTTP_METADATA_BYTES_PER_REQUEST_MAX: Final = 256 * 1024

# Why: no id, amount or code needs more than 39 digits (2^128); a longer integer literal in a body
# is refused as malformed before Python converts it (conversion is quadratic in the digits).
HTTP_JSON_INT_DIGITS_MAX: Final = 100

# Why: a client that stops sending mid-body holds a request (and its memory) until dropped; a
# body whose next chunk takes longer than this is answered 408 and its connection closed. Ten
# seconds covers a slow mobile link's pauses. The request line and headers get the same bound
# (`tbledger serve`), and an idle keep-alive connection is closed after its own, shorter, bound.
HTTP_BODY_IDLE_TIMEOUT_S: Final = 10.0
HTTP_HEADER_TIMEOUT_S: Final = 10.0
HTTP_KEEP_ALIVE_TIMEOUT_S: Final = 5

# Why: headers are small; h11's default 16 KiB buffer for an incomplete request head is enough
# for a bearer key and the usual proxies' headers, and bounds what a trickled head can hold.
HTTP_HEADER_BYTES_MAX: Final = 16 * 1024

# Why: the rate limiter keeps one bucket per key in memory; bounding the table keeps a flood of
# distinct (valid) keys from growing it without limit.
API_RATE_BUCKETS_MAX: Final = 100_000

# Why: a call's own deadline (queueing, store and engine together) is the engine request's
# deadline plus this slack, so that when the engine is the slow part its request deadline fires
# first and `outcome_unknown` is recorded before the caller hears of it; a call stuck behind
# another group's request still answers within the deadline plus this.
CALL_DEADLINE_SLACK_S: Final = 0.1

# Why: the service's writer persists one group of calls' intents while up to three earlier groups
# are with the engine or having their outcomes recorded; more groups in flight shrink each group
# (less batching) and hold more store connections without making the engine any faster.
WRITE_GROUPS_IN_FLIGHT_MAX: Final = 4

# Why: closing an account refuses while holds on it are pending and lists them; an account with
# more holds than this is listed in part (the error says so), which is enough to act on.
PENDING_HOLDS_LISTED_MAX: Final = 100

# Why: a keyed call of at least this many transfers has its keys looked up (one query by key, one
# by id) before it is queued, so that a replayed batch is answered outside the writer and never
# holds up other keys' writes; a smaller call skips the lookup on the hot path (a first attempt is
# the common case), and its replay costs the writer a refused insert and lookups of a few rows.
WRITE_KEY_LOOKUP_EVENTS_MIN: Final = 64

# Why: a quote fixes a price the platform owes for a moment only; 30 s covers a person reading it
# and confirming, while the operator's rate can move under it for no longer than that.
QUOTE_VALIDITY_S: Final = 30

# Why: a fee in basis points of the amount; 10,000 bps is 100%, so no scheduled percentage can
# take more than the payment itself (the fixed part is checked against each payment's amount).
FEE_BPS_MAX: Final = 10_000

# Why: a fixed fee is stored in a BIGINT column; 2^63-1 minor units is more than any real fee.
FEE_FIXED_MINOR_MAX: Final = (1 << 63) - 1

# Why: the current rates are listed in one response; an operator prices a few hundred pairs at
# most, and more than this is refused rather than truncated.
RATE_PAIRS_MAX: Final = 1000

# Why: the HTTP client's bound on one request, connecting and reading together. The service
# answers a write within its engine deadline or says 503 `outcome_unknown`; 30 s is far past that,
# so the client gives up only on a service that is not answering at all.
CLIENT_TIMEOUT_S: Final = 30.0

# Why: a filtered activity page (by counterparty, flow or status) reads the engine's transfers and
# keeps the matching ones; one page reads at most one engine reply's worth, and says where it
# stopped (`next_cursor`), so a filter that matches rarely costs a bounded amount per request
# instead of walking an account's whole history.
ACTIVITY_SCAN_ROWS_MAX: Final = BATCH_EVENTS_MAX

# Why: a statement is answered whole (its opening, every line and its closing reconcile in one
# answer): ten engine replies' worth of lines is a few MiB of JSON or CSV; a longer period is
# refused with a clear error (ask for a shorter one) rather than truncated.
STATEMENT_LINES_MAX: Final = 10 * BATCH_EVENTS_MAX

# Why: the web console renders pages for people, and each fragment it serves stands for a few
# calls of the routes it renders, however large the ledger grows. A list shows this many accounts
# a page (people page on, or narrow the search).
CONSOLE_ACCOUNTS_PAGE_ROWS: Final = 50

# Why: an account page shows its newest transfers; older ones are a paged API read away.
CONSOLE_ACTIVITY_ROWS: Final = 25

# Why: open holds are found among an account's newest transfers, at most this many activity
# pages of HTTP_PAGE_LIMIT_MAX transfers each; a hold older than that is still in the API.
CONSOLE_HOLD_PAGES_MAX: Final = 5

# Why: the system accounts come first in id order (they are made at start-up); this many pages of
# HTTP_PAGE_LIMIT_MAX accounts of a type covers every ledger of any chart.
CONSOLE_SYSTEM_PAGES_MAX: Final = 5

# Why: the live feed opens with the newest events, enough to fill a screen; the rest of the log
# is the API's (`GET /v1/events?since=`).
CONSOLE_EVENTS_SHOWN: Final = 25
# Why: every endpoint is a deliverer task and a lease; an owner integrates a handful of systems,
# so a key that creates endpoints in a loop is refused at 16 rather than filling the table.
WEBHOOK_ENDPOINTS_PER_OWNER_MAX: Final = 16

# Why: a deliverer reads the audit log after its cursor one page at a time and POSTs the page's
# events one by one; 100 keeps one read small while a busy endpoint still drains quickly.
WEBHOOK_BATCH_EVENTS_MAX: Final = 100

# Why: a receiver should answer 2xx at once and do its work later; 10 s is generous for that and
# bounds how long one slow endpoint holds its own deliverer (never another endpoint's).
WEBHOOK_TIMEOUT_S: Final = 10.0

# Why: the retry delay doubles per failure with full jitter; one hour caps it so an endpoint that
# comes back is delivered to within the hour, and so the endpoint is disabled within about a day.
WEBHOOK_BACKOFF_CAP_S: Final = 3600.0

# Why: consecutive failures before an endpoint is disabled: with the backoff cap this is roughly a
# day of refusals, enough to ride out an outage and short enough not to retry a dead URL forever.
WEBHOOK_FAILURES_MAX: Final = 30

# Why: a deliverer logs its successful deliveries and moves the endpoint's cursor past them in one
# commit at most this often, instead of two commits per event (measured: most of a delivery's
# cost); a crash resends at most this long's deliveries, which at least once allows.
WEBHOOK_FLUSH_S: Final = 0.05

# Why: a deliverer renews its lease well within this; a crashed deliverer's endpoint is taken over
# by another process within 30 s.
WEBHOOK_LEASE_S: Final = 30.0

# Why: an endpoint's URL is stored and compared as text; 2048 characters is what browsers and
# proxies reliably carry.
WEBHOOK_URL_CHARS_MAX: Final = 2048

# Why: a subscription filters on a few kinds, ledgers, owners or codes; 64 of each bounds the SQL
# a deliverer runs per page.
WEBHOOK_FILTER_VALUES_MAX: Final = 64

# Why: the change-stream consumer records what the broker has delivered in one store transaction
# per batch and acknowledges the batch after it commits; 1,000 events keep that transaction short
# (two balance rows each) while the stream drains at the store's batch speed.
CDC_BATCH_EVENTS_MAX: Final = 1000

# Why: a partial batch is recorded after at most this long, so an event is in the store (and a
# hold's expiry in the audit log) within about this of the broker delivering it.
CDC_BATCH_WAIT_S: Final = 0.05

# Why: how long the consumer waits before connecting again after the broker or the store failed;
# short enough that a restart of either costs seconds, long enough not to spin.
CDC_RETRY_S: Final = 1.0

# Why: how long a process waits for its change-stream consumer's queue to be bound before it
# starts publishing (the embedded engine) or the job (`tigerbeetle amqp`) anyway; the broker
# answers in milliseconds, and a publisher retries what it could not route.
CDC_BIND_WAIT_S: Final = 30.0
