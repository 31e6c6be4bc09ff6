"""Column types that keep TigerBeetle's integers and UTC timestamps exact on both databases.

`U128` and `U64` map a Python ``int`` to a column and back with no float anywhere: in PostgreSQL
as ``NUMERIC(39,0)`` / ``NUMERIC(20,0)`` (exact decimal; ordering and equality are numeric), in
SQLite as fixed-width lowercase hex text, ``"0x"`` and 32 / 16 digits. SQLite cannot hold them as
numbers: its INTEGER is signed 64-bit and its NUMERIC affinity turns anything larger into a REAL,
which would silently round an id. Fixed width makes text order equal numeric order, the canonical
spelling makes text equality equal numeric equality, and it is exactly how `tbledger.ids` shows
an id, so a person can paste an id from the API into a ``sqlite3`` query. `UtcDateTime` stores
aware UTC datetimes and hands back aware UTC datetimes on both databases (SQLite keeps no zone).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from tbledger.errors import ValidationError

__all__ = ["U64", "U128", "JsonDocument", "UtcDateTime"]


class _Unsigned(sa.types.TypeDecorator[int]):
    """An unsigned integer of `bits` bits, exact on PostgreSQL (NUMERIC) and SQLite (hex text)."""

    impl = sa.String
    cache_ok = True
    bits = 0
    digits = 0

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.NUMERIC(self.digits, 0))
        return dialect.type_descriptor(sa.String(2 + self.bits // 4))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"a u{self.bits} must be an int, not {type(value).__name__}")
        if not 0 <= value < (1 << self.bits):
            raise ValidationError(f"{value} is out of range for a u{self.bits}")
        if dialect.name == "postgresql":
            return value
        return f"0x{value:0{self.bits // 4}x}"

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):
            if not _hex_pattern(self.bits).fullmatch(value):
                raise ValidationError(f"stored u{self.bits} {value!r} is not canonical hex")
            return int(value[2:], 16)
        if isinstance(value, Decimal):
            # NUMERIC(n, 0) has no fraction; a non-integral value here is a schema bug, and
            # int() would truncate it silently.
            if value != value.to_integral_value():
                raise ValidationError(f"stored u{self.bits} {value} is not an integer")
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValidationError(f"stored u{self.bits} has unexpected type {type(value).__name__}")


class U128(_Unsigned):
    """A u128 (ids, amounts, ``user_data_128``): NUMERIC(39,0) or 34-character hex text."""

    cache_ok = True
    bits = 128
    digits = 39


class U64(_Unsigned):
    """A u64 (``user_data_64``, engine timestamps): NUMERIC(20,0) or 18-character hex text."""

    cache_ok = True
    bits = 64
    digits = 20


_HEX_PATTERNS: dict[int, re.Pattern[str]] = {}


def _hex_pattern(bits: int) -> re.Pattern[str]:
    pattern = _HEX_PATTERNS.get(bits)
    if pattern is None:
        pattern = _HEX_PATTERNS[bits] = re.compile(f"0x[0-9a-f]{{{bits // 4}}}")
    return pattern


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime: TIMESTAMPTZ in PostgreSQL, naive UTC text in SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValidationError("timestamps must be timezone-aware; a naive one is ambiguous")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite's DATETIME text has no zone; everything stored there is UTC by this rule.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB in PostgreSQL (binary, indexable); SQLite stores the same documents as JSON text.
JsonDocument: TypeEngine[Any] = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
