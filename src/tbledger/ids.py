"""u128 identifiers: parse what callers send, format what people read, and mint new ones.

TigerBeetle ids (accounts, transfers, ``user_data_128``) are unsigned 128-bit integers. Callers
send them as an ``int``, a decimal string or a ``"0x"`` hex string; tbledger shows them as
``"0x"`` followed by 32 lowercase hex digits, so every id has one spelling that sorts the way the
number does. New ids come from ``tigerbeetle.id()``: time-ordered, which keeps TigerBeetle's LSM
trees append-mostly, and unique without coordination. Anything else (a negative, a value past
2^128-1, a bool, a float, a string with signs, spaces or underscores) is refused with
`InvalidIdError`, so a malformed id never reaches the engine or the store.

TigerBeetle refuses 0 and 2^128-1 as the id of an account or a transfer (`id_must_not_be_zero`,
`id_must_not_be_int_max`); `parse_object_id` is the one place that rule is checked before a
request reaches it, and `is_reserved_id` the one test for it.
"""

from __future__ import annotations

import re

import tigerbeetle

from tbledger.errors import InvalidIdError, ValidationError
from tbledger.limits import U128_MAX

__all__ = ["format_id", "is_reserved_id", "new_id", "parse_id", "parse_object_id"]

# The ids TigerBeetle never gives an account or a transfer.
_RESERVED = frozenset({0, U128_MAX})

# Strict spellings only: Python's int() would also take "+5", " 5 ", "1_000" and "0o17", which
# would let two different strings name the same id.
_DECIMAL = re.compile(r"[0-9]{1,39}")
_HEX = re.compile(r"0[xX][0-9a-fA-F]{1,32}")


def parse_id(value: object) -> int:
    """Return `value` as a u128 int, or raise `InvalidIdError` saying why it is not one."""
    # bool is an int subclass; True as an id is a bug at the caller, not id 1.
    if isinstance(value, bool):
        raise InvalidIdError(f"an id must be an int or a string, not a bool ({value!r})")
    if isinstance(value, int):
        return _checked(value, value)
    if isinstance(value, str):
        if _HEX.fullmatch(value):
            return _checked(int(value[2:], 16), value)
        if _DECIMAL.fullmatch(value):
            return _checked(int(value, 10), value)
        raise InvalidIdError(
            f"an id string must be decimal digits or '0x' and 1 to 32 hex digits, got {value!r}"
        )
    raise InvalidIdError(
        f"an id must be an int, a decimal string or a '0x' hex string, not {type(value).__name__}"
    )


def is_reserved_id(value: int) -> bool:
    """Whether `value` is 0 or 2^128-1, which no account or transfer may have."""
    return value in _RESERVED


def parse_object_id(value: object, name: str = "id") -> int:
    """`value` as the id of an account or a transfer: a u128 (`parse_id`) that is neither 0 nor
    2^128-1 (`ValidationError` naming `name`)."""
    number = parse_id(value)
    if number in _RESERVED:
        raise ValidationError(f"{name} must not be 0 or 2^128-1")
    return number


def format_id(value: int) -> str:
    """Spell a u128 id as ``"0x"`` and 32 lowercase hex digits (fixed width, so it sorts)."""
    return f"0x{_checked(value, value):032x}"


def new_id() -> int:
    """A new time-ordered u128 id from the official client's generator."""
    return tigerbeetle.id()


def _checked(number: int, original: object) -> int:
    if isinstance(number, bool) or not isinstance(number, int):
        raise InvalidIdError(f"an id must be an int, not {type(number).__name__}")
    if number < 0:
        raise InvalidIdError(f"an id must not be negative, got {original!r}")
    if number > U128_MAX:
        raise InvalidIdError(f"an id must be at most 2^128-1, got {original!r}")
    return number
