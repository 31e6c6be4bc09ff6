"""API keys: minting, hashing, verifying, and a per-key rate limit.

A key reads ``tbl_<id>_<secret>``. The id is public (it names the key in lists and logs); the
secret is 32 random bytes, shown once when the key is created and stored only as its SHA-256. A
slow password hash is not needed: the secret has 256 bits of entropy, so a leaked hash cannot be
brute-forced, and a fast hash keeps verification off the request's critical path.

Scopes: ``admin`` may do everything; ``owner`` keys are bound to one owner id and see and move only
that owner's accounts (the routes enforce it, answering 404 for another owner's account exactly as
for a missing one).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from tbledger.errors import ValidationError
from tbledger.limits import (
    API_ADMIN_BURST_DEFAULT,
    API_ADMIN_RATE_PER_S_DEFAULT,
    API_KEY_BURST_DEFAULT,
    API_KEY_CACHE_TTL_S,
    API_KEY_RATE_PER_S_DEFAULT,
    API_RATE_BUCKETS_MAX,
    STORE_TEXT_CHARS_MAX,
)
from tbledger.store import ApiKeyRecord, Store

__all__ = ["KeyRing", "MintedKey", "Principal", "RateLimiter", "Scope", "mint_key"]

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


class KeyRing:
    """Verifies presented keys against the store, caching good ones for a short while."""

    def __init__(self, store: Store, *, ttl_s: float = API_KEY_CACHE_TTL_S) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, ApiKeyRecord]] = {}

    async def verify(self, token: str) -> Principal | None:
        """The caller behind `token`, or None for a malformed, unknown, wrong or revoked key."""
        match = _KEY.fullmatch(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            record = cached[1]
        else:
            found = await self._store.get_api_key(key_id)
            if found is None:
                return None
            record = found
            if len(self._cache) >= API_RATE_BUCKETS_MAX:
                self._cache.clear()
            self._cache[key_id] = (now, record)
        if not record.active or not hmac.compare_digest(record.secret_hash, _hash(secret)):
            return None
        scope = Scope.ADMIN if Scope.ADMIN.value in record.scopes else Scope.OWNER
        return Principal(key_id, scope, record.owner_id, record.rate_per_s, record.burst)


class RateLimiter:
    """A token bucket per key: `rate_per_s` tokens a second, at most `burst` saved up."""

    def __init__(self, *, buckets_max: int = API_RATE_BUCKETS_MAX) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._buckets_max = buckets_max

    def acquire(self, principal: Principal) -> int:
        """Take one token; return 0, or the whole seconds to wait (for ``Retry-After``)."""
        now = time.monotonic()
        tokens, last = self._buckets.pop(principal.key_id, (float(principal.burst), now))
        tokens = min(float(principal.burst), tokens + (now - last) * principal.rate_per_s)
        wait = 0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = max(1, math.ceil((1.0 - tokens) / principal.rate_per_s))
        self._buckets[principal.key_id] = (tokens, now)
        if len(self._buckets) > self._buckets_max:
            self._buckets.popitem(last=False)
        return wait
