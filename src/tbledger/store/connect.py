"""Store URL to backend: which database a URL names, and the driver that reaches it.

Accepted: ``postgresql://`` and ``postgres://`` (both through asyncpg), ``postgresql+asyncpg://``,
``sqlite:///relative/or//absolute/path``, ``sqlite+aiosqlite:///...`` and ``sqlite://`` (memory).
Any other scheme or driver is a `ConfigurationError`, raised before a connection is attempted.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tbledger.errors import ConfigurationError
from tbledger.store.backend import Backend, StoreOptions
from tbledger.store.postgres import PostgresBackend
from tbledger.store.sqlite import SqliteBackend

__all__ = ["open_backend"]

_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+asyncpg"})
_SQLITE_SCHEMES = frozenset({"sqlite", "sqlite+aiosqlite"})


def open_backend(url: str, options: StoreOptions | None = None) -> Backend:
    """The backend for a store URL, or ConfigurationError naming what is accepted."""
    options = options or StoreOptions()
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"not a store URL: {url!r}") from exc
    if parsed.drivername in _POSTGRES_SCHEMES:
        return PostgresBackend(parsed, options)
    if parsed.drivername in _SQLITE_SCHEMES:
        return SqliteBackend(parsed, options)
    raise ConfigurationError(
        f"store URL scheme {parsed.drivername!r} is not supported; use postgresql://, "
        "postgresql+asyncpg://, sqlite:///path or sqlite:// (memory)"
    )
