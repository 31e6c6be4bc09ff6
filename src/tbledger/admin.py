"""Operating the platform without a running service: API keys and the store's schema.

The command line's ``keys`` and ``db`` commands (and any operator's script) call these instead of
opening the store themselves: shells never import the store (DESIGN §8). Each function opens the
store at `database_url`, does one job and closes it.

Key management does not migrate: it must work as the service's own database user (a leaked key
is revoked with the credentials at hand), which may not change the schema, so a store that is not
at the latest schema is refused with a message saying to run ``tbledger db upgrade``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from tbledger.api.keys import Scope, mint_key
from tbledger.config import Settings
from tbledger.store import ApiKeyRecord, Store, StoreOptions, upgrade

__all__ = [
    "ApiKeyInfo",
    "check_key",
    "create_key",
    "list_keys",
    "revoke_key",
    "upgrade_database",
]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key as an operator sees it: never its secret; `token` only when just created."""

    id: str
    name: str
    scopes: tuple[str, ...]
    owner_id: str | None
    rate_per_s: int
    burst: int
    created_at: datetime | None
    revoked_at: datetime | None
    token: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _info(record: ApiKeyRecord, token: str | None = None) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=record.id,
        name=record.name,
        scopes=tuple(record.scopes),
        owner_id=record.owner_id,
        rate_per_s=record.rate_per_s,
        burst=record.burst,
        created_at=record.created_at,
        revoked_at=record.revoked_at,
        token=token,
    )


def _store_options() -> StoreOptions | None:
    """The PostgreSQL schema and role the service's settings name (``TBLEDGER_DATABASE_SCHEMA``,
    ``TBLEDGER_DATABASE_ROLE``), so that keys and upgrades reach the tables the service uses."""
    return Settings().store_options()


async def _with_store(database_url: str, work: Callable[[Store], Awaitable[_T]]) -> _T:
    store = await Store.connect(database_url, require_head=True, options=_store_options())
    try:
        return await work(store)
    finally:
        await store.close()


def check_key(
    *,
    name: str,
    admin: bool = False,
    owner_id: str | None = None,
    rate_per_s: int | None = None,
    burst: int | None = None,
) -> None:
    """`ValidationError` if `create_key` would refuse these settings, without a store."""
    mint_key(
        name=name,
        scope=Scope.ADMIN if admin else Scope.OWNER,
        owner_id=owner_id,
        rate_per_s=rate_per_s,
        burst=burst,
    )


async def create_key(
    database_url: str,
    *,
    name: str,
    admin: bool = False,
    owner_id: str | None = None,
    rate_per_s: int | None = None,
    burst: int | None = None,
) -> ApiKeyInfo:
    """Create an API key: an admin key, or an owner key bound to `owner_id`. The result's `token`
    is the only time the secret is seen (the store keeps its hash). `ValidationError` for a bad
    name, scope or rate is raised before the store is opened."""
    minted = mint_key(
        name=name,
        scope=Scope.ADMIN if admin else Scope.OWNER,
        owner_id=owner_id,
        rate_per_s=rate_per_s,
        burst=burst,
    )
    record = await _with_store(database_url, lambda store: store.create_api_key(minted.record))
    return _info(record, minted.token)


async def list_keys(database_url: str) -> list[ApiKeyInfo]:
    """Every API key (ids, names, scopes; never secrets)."""
    records = await _with_store(database_url, lambda store: store.list_api_keys())
    return [_info(r) for r in records]


async def revoke_key(database_url: str, key_id: str) -> ApiKeyInfo:
    """Revoke an API key; running services stop accepting it within seconds."""
    record = await _with_store(database_url, lambda store: store.revoke_api_key(key_id))
    return _info(record)


async def upgrade_database(database_url: str) -> None:
    """Migrate the store's schema to the latest version (safe to repeat)."""
    options = _store_options()
    if options is None:
        await upgrade(database_url)
    else:
        await upgrade(database_url, schema=options.schema, app_role=options.role)
