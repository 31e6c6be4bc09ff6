"""API keys: minting, hashing, verifying, and per-key (and keyless) rate limits.

A key reads ``tbl_<id>_<secret>``. The id is public (it names the key in lists and logs); the
secret is 32 random bytes, shown once when the key is created and stored only as its SHA-256. A
slow password hash is not needed: the secret has 256 bits of entropy, so a leaked hash cannot be
brute-forced, and a fast hash keeps verification off the request's critical path.

Scopes: ``admin`` may do everything; ``owner`` keys are bound to one owner id and see and move only
that owner's accounts (the routes enforce it, answering 404 for another owner's account exactly as
for a missing one).

Limits: a key has three token buckets, all derived from its `rate_per_s` and `burst` (requests;
transfers, at `API_KEY_EVENTS_PER_REQUEST` per request; body bytes, at
`API_KEY_BYTES_PER_REQUEST`). Requests with no valid key share a bucket per client address and a
global one. A cost above a bucket's capacity (a full batch, a large body) is admitted when the
bucket is full and leaves it in debt, which the key then waits out: big batches stay possible and
the average rate holds.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from tbledger.errors import ValidationError
from tbledger.flight import SingleFlight
from tbledger.limits import (
    API_ADMIN_BURST_DEFAULT,
    API_ADMIN_RATE_PER_S_DEFAULT,
    API_KEY_BURST_DEFAULT,
    API_KEY_BYTES_PER_REQUEST,
    API_KEY_CACHE_TTL_S,
    API_KEY_EVENTS_PER_REQUEST,
    API_KEY_NEGATIVE_CACHE_MAX,
    API_KEY_NEGATIVE_TTL_S,
    API_KEY_RATE_PER_S_DEFAULT,
    API_KEYLESS_BURST,
    API_KEYLESS_GLOBAL_BURST,
    API_KEYLESS_GLOBAL_RATE_PER_S,
    API_KEYLESS_RATE_PER_S,
    API_RATE_BUCKETS_MAX,
    STORE_TEXT_CHARS_MAX,
)
from tbledger.model import ApiKeyRecord

__all__ = ["KeyRing", "MintedKey", "Principal", "RateLimiter", "Scope", "mint_key", "token_of"]

_KEY = re.compile(r"tbl_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


class Scope(StrEnum):
    ADMIN = "admin"
    OWNER = "owner"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, its scope and, for owner keys, the owner it is bound to."""

    key_id: str
    scope: Scope
    owner_id: str | None
    rate_per_s: int
    burst: int

    @property
    def is_admin(self) -> bool:
        return self.scope is Scope.ADMIN

    @property
    def events_per_s(self) -> int:
        return self.rate_per_s * API_KEY_EVENTS_PER_REQUEST

    @property
    def events_burst(self) -> int:
        return self.burst * API_KEY_EVENTS_PER_REQUEST

    @property
    def bytes_per_s(self) -> int:
        return self.rate_per_s * API_KEY_BYTES_PER_REQUEST

    @property
    def bytes_burst(self) -> int:
        return self.burst * API_KEY_BYTES_PER_REQUEST


@dataclass(frozen=True, slots=True)
class MintedKey:
    """A new key: `token` is what the caller sends (shown once), `record` what is stored."""

    token: str
    record: ApiKeyRecord


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mint_key(
    *,
    name: str,
    scope: Scope | str,
    owner_id: str | None = None,
    rate_per_s: int | None = None,
    burst: int | None = None,
) -> MintedKey:
    """A new key and its record; an owner key needs `owner_id`, an admin key must not have one."""
    scope = Scope(scope)
    if not name or len(name) > STORE_TEXT_CHARS_MAX:
        raise ValidationError(f"a key name must be 1 to {STORE_TEXT_CHARS_MAX} characters")
    if scope is Scope.OWNER and not owner_id:
        raise ValidationError("an owner key needs the owner id it is bound to")
    if scope is Scope.ADMIN and owner_id is not None:
        raise ValidationError("an admin key is not bound to an owner")
    if owner_id is not None and len(owner_id) > STORE_TEXT_CHARS_MAX:
        raise ValidationError(f"an owner id must be at most {STORE_TEXT_CHARS_MAX} characters")
    admin = scope is Scope.ADMIN
    rate = rate_per_s or (API_ADMIN_RATE_PER_S_DEFAULT if admin else API_KEY_RATE_PER_S_DEFAULT)
    bucket = burst or (API_ADMIN_BURST_DEFAULT if admin else API_KEY_BURST_DEFAULT)
    if rate < 1 or bucket < 1:
        raise ValidationError("a key's rate and burst must be at least 1")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        id=key_id,
        secret_hash=_hash(secret),
        name=name,
        scopes=(scope.value,),
        owner_id=owner_id,
        rate_per_s=rate,
        burst=bucket,
    )
    return MintedKey(f"tbl_{key_id}_{secret}", record)


def token_of(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key in raw ASGI headers: ``Authorization: Bearer <key>``, else ``X-API-Key``."""
    bearer = api_key = None
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials:
                bearer = credentials
        elif name == b"x-api-key":
            api_key = value.decode("latin-1")
    return bearer if bearer is not None else (api_key or None)


class ApiKeySource(Protocol):
    """Where keys are looked up: `LedgerService` (the API's way) or a store (the CLI's)."""

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...


class KeyRing:
    """Verifies presented keys against the store, caching good ones for a short while and
    unknown ids for `negative_ttl_s` (so a flood of one bad key costs no store reads). `clock`
    (seconds, any origin; default `time.monotonic`) is what entries age by."""

    def __init__(
        self,
        store: ApiKeySource,
        *,
        ttl_s: float = API_KEY_CACHE_TTL_S,
        negative_ttl_s: float = API_KEY_NEGATIVE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._cache: dict[str, tuple[float, ApiKeyRecord]] = {}
        self._misses: OrderedDict[str, float] = OrderedDict()
        # One store read per key at a time: when a busy key's entry expires, every request in
        # flight with it would otherwise read the store at once.
        self._reading: SingleFlight[str, ApiKeyRecord | None] = SingleFlight()

    def forget(self, key_id: str | None = None) -> None:
        """Drop what is cached about `key_id` (both a good record and a miss), or about every key.

        Call it after a key was revoked, created or changed through this process: the next
        request with that key reads the store instead of trusting the cache for up to `ttl_s`.
        """
        if key_id is None:
            self._cache.clear()
            self._misses.clear()
        else:
            self._cache.pop(key_id, None)
            self._misses.pop(key_id, None)

    def needs_lookup(self, token: str) -> bool:
        """Whether verifying `token` would read the store (a well-formed id not cached either
        way); the caller may refuse a flood before that read."""
        match = _KEY.fullmatch(token)
        if match is None:
            return False
        key_id = match.group(1)
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            return False
        missed = self._misses.get(key_id)
        return missed is None or now - missed >= self._negative_ttl_s

    async def verify(self, token: str) -> Principal | None:
        """The caller behind `token`, or None for a malformed, unknown, wrong or revoked key."""
        match = _KEY.fullmatch(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            record = cached[1]
        else:
            missed = self._misses.get(key_id)
            if missed is not None and now - missed < self._negative_ttl_s:
                return None
            found = await self._reading.run(key_id, lambda: self._store.get_api_key(key_id))
            if found is None:
                self._misses.pop(key_id, None)
                self._misses[key_id] = now
                if len(self._misses) > API_KEY_NEGATIVE_CACHE_MAX:
                    self._misses.popitem(last=False)
                return None
            record = found
            if len(self._cache) >= API_RATE_BUCKETS_MAX:
                self._cache.clear()
            self._cache[key_id] = (now, record)
        if not record.active or not hmac.compare_digest(record.secret_hash, _hash(secret)):
            return None
        scope = Scope.ADMIN if Scope.ADMIN.value in record.scopes else Scope.OWNER
        return Principal(key_id, scope, record.owner_id, record.rate_per_s, record.burst)


class _Buckets:
    """Token buckets by name in a bounded table (least recently used evicted first), refilled
    by the seconds `clock` says have passed."""

    def __init__(self, buckets_max: int, clock: Callable[[], float]) -> None:
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()
        self._buckets_max = buckets_max
        self._clock = clock

    def take(self, name: object, cost: int, rate_per_s: int, capacity: int) -> int:
        """Take `cost` tokens; return 0, or the whole seconds to wait (for ``Retry-After``).

        A cost above `capacity` needs a full bucket and leaves it in debt."""
        tokens = self._refill(name, rate_per_s, capacity)
        need = min(float(cost), float(capacity))
        wait = 0
        if tokens >= need:
            tokens -= cost
        else:
            wait = max(1, math.ceil((need - tokens) / rate_per_s))
        self._store(name, tokens)
        return wait

    def charge(self, name: object, cost: int, rate_per_s: int, capacity: int) -> None:
        """Take `cost` tokens unconditionally (bytes already read), possibly into debt."""
        self._store(name, self._refill(name, rate_per_s, capacity) - cost)

    def blocked(self, name: object, rate_per_s: int, capacity: int) -> bool:
        """Whether the next unit-cost `take` would be refused (taking nothing)."""
        now = self._clock()
        tokens, last = self._buckets.get(name, (float(capacity), now))
        return min(float(capacity), tokens + (now - last) * rate_per_s) < 1.0

    def _refill(self, name: object, rate_per_s: int, capacity: int) -> float:
        now = self._clock()
        tokens, last = self._buckets.pop(name, (float(capacity), now))
        return min(float(capacity), tokens + (now - last) * rate_per_s)

    def _store(self, name: object, tokens: float) -> None:
        self._buckets[name] = (tokens, self._clock())
        if len(self._buckets) > self._buckets_max:
            self._buckets.popitem(last=False)


class RateLimiter:
    """Token buckets: per key for requests, transfers and body bytes (`rate_per_s` requests a
    second, at most `burst` saved up, and the derived budgets of `Principal`); per client address
    and globally for requests without a valid key.

    `clock` (seconds, any origin; default `time.monotonic`) is what refills the buckets: a test
    passes one it moves itself, so what a key may spend does not depend on how fast the machine
    served its previous requests."""

    def __init__(
        self,
        *,
        buckets_max: int = API_RATE_BUCKETS_MAX,
        keyless_rate_per_s: int = API_KEYLESS_RATE_PER_S,
        keyless_burst: int = API_KEYLESS_BURST,
        keyless_global_rate_per_s: int = API_KEYLESS_GLOBAL_RATE_PER_S,
        keyless_global_burst: int = API_KEYLESS_GLOBAL_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._requests = _Buckets(buckets_max, clock)
        self._events = _Buckets(buckets_max, clock)
        self._bytes = _Buckets(buckets_max, clock)
        self._addresses = _Buckets(buckets_max, clock)
        self._keyless = (keyless_rate_per_s, keyless_burst)
        self._global = (keyless_global_rate_per_s, keyless_global_burst)

    def acquire(self, principal: Principal) -> int:
        """Take one request token; return 0, or the whole seconds to wait (for ``Retry-After``)."""
        return self._requests.take(principal.key_id, 1, principal.rate_per_s, principal.burst)

    def acquire_events(self, principal: Principal, count: int) -> int:
        """Take `count` transfer (event) tokens; 0, or the seconds to wait."""
        return self._events.take(
            principal.key_id, count, principal.events_per_s, principal.events_burst
        )

    def acquire_bytes(self, principal: Principal, count: int) -> int:
        """Take `count` body-byte tokens (a declared ``Content-Length``); 0, or the seconds to
        wait."""
        return self._bytes.take(
            principal.key_id, count, principal.bytes_per_s, principal.bytes_burst
        )

    def charge_bytes(self, principal: Principal, count: int) -> None:
        """Charge body bytes already read (a chunked body), into debt if need be."""
        self._bytes.charge(principal.key_id, count, principal.bytes_per_s, principal.bytes_burst)

    def keyless_blocked(self, address: str) -> bool:
        """Whether `address` has spent its keyless budget. (Not the global one: asked before a
        key is looked up, it would refuse every caller's valid keys during a flood.)"""
        return self._addresses.blocked(address, *self._keyless)

    def acquire_keyless(self, address: str, *, shared: bool = True) -> int:
        """Take a token for a request without a valid key from `address` (and, if `shared`,
        from the global bucket every address shares); 0, or the seconds to wait."""
        wait = self._addresses.take(address, 1, *self._keyless)
        if wait or not shared:
            return wait
        return self._addresses.take(None, 1, *self._global)
