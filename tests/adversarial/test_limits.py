"""Resource limits against a hostile key: what a request may cost before, while and after its body
is read.

Keyless requests are answered without a byte of their body being read (a raw ASGI harness counts
what the app pulls); a key pays for the transfers and the bytes it sends, not only its requests;
a refused batch keeps a bounded amount of metadata in the store; a stalled or abandoned upload is
neither a 500 nor a traceback; and the small edges (huge integers, a missing Content-Type,
repeated unknown keys) answer plainly and cheaply.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tbledger.api import mint_key
from tbledger.api.guard import GuardMiddleware
from tbledger.api.keys import ApiKeySource, KeyRing, RateLimiter
from tbledger.limits import (
    API_KEY_BYTES_PER_REQUEST,
    API_KEY_EVENTS_PER_REQUEST,
    HTTP_METADATA_BYTES_PER_REQUEST_MAX,
    STORE_METADATA_BYTES_MAX,
)
from tbledger.model import ApiKeyRecord
from tests.adversarial.conftest import House
from tests.support.api import transfer_body

BODY_BYTES = 5_000_000  # past the 4 MiB cap, so nothing would read it all anyway


@dataclass
class Exchange:
    """One raw ASGI request: what the app pulled from `receive` and what it sent."""

    receives: int = 0
    body_bytes_read: int = 0
    messages: list[MutableMapping[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        return int(starts[0]["status"]) if starts else None

    @property
    def body(self) -> dict[str, Any]:
        data = b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )
        document: dict[str, Any] = json.loads(data)
        return document


async def _raw(
    house: House,
    method: str,
    path: str,
    headers: dict[str, str],
    chunks: list[bytes],
    *,
    then: str = "end",
) -> Exchange:
    """Call the app over raw ASGI, offering `chunks` as the body, then `then`: ``end`` (the body
    is complete), ``disconnect`` (the client leaves) or ``stall`` (nothing more arrives)."""
    exchange = Exchange()
    pending = list(chunks)

    async def receive() -> MutableMapping[str, Any]:
        exchange.receives += 1
        if pending:
            chunk = pending.pop(0)
            exchange.body_bytes_read += len(chunk)
            more = bool(pending) or then != "end"
            return {"type": "http.request", "body": chunk, "more_body": more}
        if then == "stall":
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        exchange.messages.append(message)

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": ("192.0.2.7", 4000),
        "server": ("api", 80),
    }
    await house.api.app(scope, receive, send)
    return exchange


def _metrics_line(text: str, route: str, status: str) -> float:
    for line in text.splitlines():
        if (
            line.startswith("tbledger_http_requests_total")
            and f'route="{route}"' in line
            and f'status="{status}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class StillClock:
    """Seconds that pass only when the test says so. The rate limiter's buckets refill by it, so
    what a key may spend next does not depend on how long the machine took over its last
    request (a loaded machine would refill them while a batch is being served)."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def _still_limiter(house: House, **limits: int) -> StillClock:
    """Give the app a rate limiter (with `limits`) on a `StillClock`; return the clock."""
    clock = StillClock()
    house.api.app.state.ctx.limiter = RateLimiter(clock=clock, **limits)
    return clock


def _guard(house: House) -> GuardMiddleware:
    app: Any = house.api.app.middleware_stack
    while not isinstance(app, GuardMiddleware):
        app = app.app
    return app


# -- before the body ------------------------------------------------------------------------------


async def test_keyless_requests_are_refused_without_reading_the_body(house: House) -> None:
    declared = {"Content-Type": "application/json", "Content-Length": str(BODY_BYTES)}
    body = [b"x" * 65536] * 4
    unknown = f"tbl_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
    for headers in (
        {},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": f"Bearer {unknown}"},
        {"X-API-Key": house.api.admin_key + "x"},
    ):
        exchange = await _raw(house, "POST", "/v1/transfers", {**declared, **headers}, body)
        assert exchange.status == 401, headers
        assert exchange.body["error"]["code"] == "unauthorized"
        assert (exchange.receives, exchange.body_bytes_read) == (0, 0), headers
    # A chunked body (no Content-Length) is not read either.
    exchange = await _raw(house, "POST", "/v1/transfers/batch", {}, body)
    assert (exchange.status, exchange.receives) == (401, 0)
    # Public routes take no body: theirs is never read.
    small = {"Content-Length": str(len(body) * 65536)}
    exchange = await _raw(house, "GET", "/healthz", small, body)
    assert (exchange.status, exchange.body_bytes_read) == (200, 0)
    # A valid key's request is read as usual (and refused for what it is).
    exchange = await _raw(house, "POST", "/v1/transfers", {**declared, **house.alice}, body)
    assert exchange.status == 413  # past the body cap, refused from its Content-Length too
    assert exchange.body_bytes_read == 0


class CountedKeys:
    """A key source for a `KeyRing` that counts the reads it makes of `source`."""

    def __init__(self, source: ApiKeySource) -> None:
        self.source = source
        self.lookups = 0

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        self.lookups += 1
        return await self.source.get_api_key(key_id)


async def test_keyless_requests_are_limited_per_address_and_globally(house: House) -> None:
    ctx = house.api.app.state.ctx
    _still_limiter(
        house,
        keyless_rate_per_s=1,
        keyless_burst=3,
        keyless_global_rate_per_s=1,
        keyless_global_burst=4,
    )
    # The app's own key source (the service), counted.
    keys = CountedKeys(house.api.service)
    ctx.keys = KeyRing(keys)

    async def post(address: str, token: str | None = None) -> httpx.Response:
        transport = httpx.ASGITransport(app=house.api.app, client=(address, 1))
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            return await http.post("/v1/transfers", content=b"{}" * 1000, headers=headers)

    statuses = [(await post("192.0.2.1")).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    r = await post("192.0.2.1")
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    # Distinct unknown (well-formed) keys from a limited address cost no store read.
    before = keys.lookups
    for _ in range(3):
        r = await post("192.0.2.1", f"tbl_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}")
        assert r.status_code == 429
    assert keys.lookups == before
    # Another address has its own bucket, but the global one (4, three spent) runs out first.
    statuses = [(await post("192.0.2.2")).status_code for _ in range(3)]
    assert statuses == [401, 429, 429], statuses
    # Valid keys are not affected.
    r = await house.http.get(f"/v1/accounts/{house.A}", headers=house.alice)
    assert r.status_code == 200, r.text


async def test_unknown_key_ids_are_cached_negatively_for_a_short_time(house: House) -> None:
    ctx = house.api.app.state.ctx
    keys = CountedKeys(house.api.store)
    now = [0.0]  # the ring's clock, moved by the test: the bound is checked, not the machine
    ctx.keys = KeyRing(keys, negative_ttl_s=0.3, clock=lambda: now[0])
    minted = mint_key(name="late", scope="owner", owner_id="alice")
    headers = {"Authorization": f"Bearer {minted.token}"}
    for _ in range(20):
        r = await house.http.get(f"/v1/accounts/{house.A}", headers=headers)
        assert r.status_code == 401
    assert keys.lookups == 1
    # A key created after a miss works once the miss has expired (the documented bound).
    await house.api.store.create_api_key(minted.record)
    r = await house.http.get(f"/v1/accounts/{house.A}", headers=headers)
    assert r.status_code == 401
    now[0] += 0.35
    r = await house.http.get(f"/v1/accounts/{house.A}", headers=headers)
    assert r.status_code == 200, r.text
    assert keys.lookups == 2


# -- what a key pays ------------------------------------------------------------------------------


async def test_a_batchs_transfers_count_against_the_keys_event_budget(house: House) -> None:
    clock = _still_limiter(house)
    key = await house.api.owner("alice", rate_per_s=1, burst=5)
    budget = 5 * API_KEY_EVENTS_PER_REQUEST  # 100 transfers saved up, 20 a second
    batch = {"transfers": [transfer_body(house.A, house.BM, "0.01")] * budget}
    r = await house.http.post("/v1/transfers/batch", json=batch, headers=key)
    assert (r.status_code, r.json()["created"]) == (200, budget), r.text
    # Two requests of the key's five are used, but its transfers are spent.
    before = house.api.engine_requests()
    two = {"transfers": batch["transfers"][:2]}
    r = await house.http.post("/v1/transfers/batch", json=two, headers=key)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert "transfer" in r.json()["error"]["message"]
    assert int(r.headers["Retry-After"]) == 1
    assert house.api.engine_requests() == before
    assert await house.posted(house.BM) == "1.00"
    # Reads carry no transfers and still pass.
    r = await house.http.get(f"/v1/accounts/{house.A}", headers=key)
    assert r.status_code == 200, r.text
    # A tenth of a second refills two transfers (20 a second): now the same two pass.
    clock.advance(0.1)
    r = await house.http.post("/v1/transfers/batch", json=two, headers=key)
    assert (r.status_code, r.json()["created"]) == (200, 2), r.text
    assert await house.posted(house.BM) == "1.02"


async def test_a_batch_above_the_budget_runs_once_and_leaves_debt(house: House) -> None:
    clock = _still_limiter(house)
    key = await house.api.owner("alice", rate_per_s=1, burst=5)
    oversized = 150  # past the 100-transfer bucket: admitted because the bucket is full
    batch = {"transfers": [transfer_body(house.A, house.BM, "0.01")] * oversized}
    r = await house.http.post("/v1/transfers/batch", json=batch, headers=key)
    assert (r.status_code, r.json()["created"]) == (200, oversized), r.text
    r = await house.http.post(
        "/v1/transfers", json=transfer_body(house.A, house.BM, "0.01"), headers=key
    )
    assert r.status_code == 429
    # 50 transfers of debt plus one, at 20 a second: 2.55 s, said in whole seconds.
    assert int(r.headers["Retry-After"]) == 3
    assert await house.posted(house.BM) == "1.50"
    # Two seconds later the debt is down to ten: still refused, for one more second.
    clock.advance(2)
    r = await house.http.post(
        "/v1/transfers", json=transfer_body(house.A, house.BM, "0.01"), headers=key
    )
    assert (r.status_code, int(r.headers["Retry-After"])) == (429, 1)
    clock.advance(1)
    r = await house.http.post(
        "/v1/transfers", json=transfer_body(house.A, house.BM, "0.01"), headers=key
    )
    assert r.status_code == 201, r.text
    assert await house.posted(house.BM) == "1.51"


async def test_body_bytes_count_against_the_keys_byte_budget(house: House) -> None:
    _still_limiter(house)
    key = await house.api.owner("alice", rate_per_s=1, burst=3)
    capacity = 3 * API_KEY_BYTES_PER_REQUEST  # 24 KiB saved up, 8 KiB a second
    # A valid transfer padded with JSON whitespace to past the bucket, sent chunked (no
    # Content-Length): charged as it is read, so it passes and leaves the key in debt.
    padded = json.dumps(transfer_body(house.A, house.BM, "1.00")).encode() + b" " * (
        capacity + 8192
    )

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(padded), 4096):
            yield padded[start : start + 4096]

    r = await house.http.post(
        "/v1/transfers",
        content=chunks(),
        headers={**key, "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert await house.posted(house.BM) == "1.00"
    small = transfer_body(house.A, house.BM, "1.00")
    r = await house.http.post("/v1/transfers", json=small, headers=key)
    assert r.status_code == 429, r.text
    assert "bytes/s" in r.json()["error"]["message"]
    assert int(r.headers["Retry-After"]) >= 1
    assert await house.posted(house.BM) == "1.00"
    # A fresh key: a declared body past the budget is admitted when the bucket is full, and the
    # next declared body waits; the refusal reads nothing.
    fresh = await house.api.owner("alice", rate_per_s=1, burst=3)
    r = await house.http.post(
        "/v1/transfers", content=padded, headers={**fresh, "Content-Type": "application/json"}
    )
    assert r.status_code == 201, r.text
    declared = {**fresh, "Content-Type": "application/json", "Content-Length": "200"}
    exchange = await _raw(house, "POST", "/v1/transfers", declared, [b" " * 200])
    assert (exchange.status, exchange.body_bytes_read) == (429, 0)
    assert await house.posted(house.BM) == "2.00"


async def test_a_refused_batch_stores_bounded_metadata(house: House) -> None:
    memo = {"memo": "m" * (STORE_METADATA_BYTES_MAX - 200)}  # about 3.9 KB each, under the cap
    # The review's attack: 1,000 refused transfers with 3.9 KB of metadata each. Refused whole,
    # before the store.
    attack = {
        "transfers": [transfer_body(house.A, house.BM, "1000.00", event_id="attack", metadata=memo)]
        * 1000
    }
    before = house.api.engine_requests()
    r = await house.http.post("/v1/transfers/batch", json=attack, headers=house.alice)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "limit_exceeded"
    assert "HTTP_METADATA_BYTES_PER_REQUEST_MAX" in r.json()["error"]["message"]
    assert house.api.engine_requests() == before
    assert await house.api.store.transfers_by_event_id("attack") == []
    # The most one request can make the store keep: a batch just under the bound, every
    # transfer refused by the engine, and its metadata stored as sent.
    size = len(json.dumps(memo, separators=(",", ":")))
    count = HTTP_METADATA_BYTES_PER_REQUEST_MAX // size
    batch = {
        "transfers": [
            transfer_body(house.A, house.BM, "1000.00", event_id="bounded", metadata=memo)
        ]
        * count
    }
    # (Another key of alice's: the attack's 4 MB left hers in debt for bytes.)
    fresh = await house.api.owner("alice", rate_per_s=50, burst=100)
    r = await house.http.post("/v1/transfers/batch", json=batch, headers=fresh)
    assert r.status_code == 200, r.text
    assert r.json()["failed"] == count
    stored = await house.api.store.transfers_by_event_id("bounded")
    assert len(stored) == count
    stored_bytes = sum(len(json.dumps(dict(i.metadata), separators=(",", ":"))) for i in stored)
    assert stored_bytes <= HTTP_METADATA_BYTES_PER_REQUEST_MAX
    assert await house.posted(house.BM) == "0.00"
    assert await house.posted(house.A) == "100.00"


# -- while the body is read -----------------------------------------------------------------------


async def test_an_aborted_upload_is_a_499_and_one_log_line(
    house: House, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {**house.alice, "Content-Type": "application/json", "Content-Length": "1000"}
    with caplog.at_level(logging.INFO):
        exchange = await _raw(
            house, "POST", "/v1/transfers", headers, [b'{"amount": '], then="disconnect"
        )
    assert exchange.status is None  # nobody to answer
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    lines = [r for r in caplog.records if "closed the connection" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno in (logging.INFO, logging.WARNING)
    r = await house.http.get("/metrics", headers=house.admin)
    assert _metrics_line(r.text, "/v1/transfers", "499") == 1.0
    assert _metrics_line(r.text, "/v1/transfers", "500") == 0.0
    assert await house.posted(house.BM) == "0.00"


async def test_a_stalled_body_is_answered_408_and_closed(
    house: House, caplog: pytest.LogCaptureFixture
) -> None:
    _guard(house).body_idle_timeout_s = 0.2
    headers = {**house.alice, "Content-Type": "application/json", "Content-Length": "1000"}
    with caplog.at_level(logging.INFO):
        exchange = await asyncio.wait_for(
            _raw(house, "POST", "/v1/transfers", headers, [b'{"amount": '], then="stall"), 5
        )
    assert exchange.status == 408
    assert exchange.body["error"]["code"] == "request_timeout"
    start = next(m for m in exchange.messages if m["type"] == "http.response.start")
    assert (b"connection", b"close") in start["headers"]
    assert not [r for r in caplog.records if r.exc_info]


# -- small edges ----------------------------------------------------------------------------------


async def test_a_huge_integer_is_a_plain_400(house: House) -> None:
    digits = "9" * 5000
    body = (
        json.dumps(transfer_body(house.A, house.BM, "1.00"))[:-1]
        + f', "metadata": {{"n": {digits}}}}}'
    )
    r = await house.http.post(
        "/v1/transfers",
        content=body.encode(),
        headers={**house.alice, "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert "digits" in message
    assert "sys." not in message and "int_max_str_digits" not in message
    assert await house.posted(house.BM) == "0.00"


async def test_a_body_without_content_type_is_415(house: House) -> None:
    body = json.dumps(transfer_body(house.A, house.BM, "1.00")).encode()
    r = await house.http.post("/v1/transfers", content=body, headers=house.alice)
    assert "content-type" not in r.request.headers
    assert r.status_code == 415, r.text
    assert r.json()["error"]["code"] == "unsupported_media_type"
    assert await house.posted(house.BM) == "0.00"
