"""u128 ids: what parse_id accepts and refuses, the one spelling format_id gives, new ids."""

from __future__ import annotations

import pytest

from tbledger.errors import InvalidIdError, TbledgerError, ValidationError
from tbledger.ids import format_id, new_id, parse_id

U128_MAX = (1 << 128) - 1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (0, 0),
        (1, 1),
        (U128_MAX, U128_MAX),
        ("0", 0),
        ("42", 42),
        ("007", 7),
        (str(U128_MAX), U128_MAX),
        ("0x0", 0),
        ("0x2a", 42),
        ("0X2A", 42),
        ("0x" + "f" * 32, U128_MAX),
        ("0x" + "0" * 31 + "1", 1),
    ],
)
def test_parse_accepts_int_decimal_and_hex(given: object, expected: int) -> None:
    assert parse_id(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        -1,
        U128_MAX + 1,
        True,
        False,
        1.0,
        float("nan"),
        None,
        b"1",
        [1],
        "",
        " 1",
        "1 ",
        "+1",
        "-1",
        "1_000",
        "0x",
        "0x-1",
        "0x" + "f" * 33,
        "0o17",
        "0b1",
        "1e3",
        "12a",
        "0xg",
        str(U128_MAX + 1),
        "9" * 40,
        "١٢",  # Arabic-Indic digits: int() would take them.
    ],
)
def test_parse_refuses_everything_else(given: object) -> None:
    with pytest.raises(InvalidIdError):
        parse_id(given)


def test_parse_error_is_a_value_error_under_the_root() -> None:
    assert issubclass(InvalidIdError, ValidationError)
    assert issubclass(InvalidIdError, ValueError)
    assert issubclass(InvalidIdError, TbledgerError)
    with pytest.raises(ValueError, match="negative"):
        parse_id(-5)
    with pytest.raises(ValueError, match="bool"):
        parse_id(True)
    with pytest.raises(ValueError, match="float"):
        parse_id(1.5)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0x" + "0" * 32),
        (1, "0x" + "0" * 31 + "1"),
        (1 << 64, "0x0000000000000001" + "0" * 16),
        (U128_MAX, "0x" + "f" * 32),
    ],
)
def test_format_is_fixed_width_lowercase_hex_and_round_trips(value: int, text: str) -> None:
    assert format_id(value) == text
    assert parse_id(format_id(value)) == value


def test_format_order_is_numeric_order() -> None:
    values = [0, 1, 15, 16, 255, 1 << 64, (1 << 64) + 1, U128_MAX - 1, U128_MAX]
    assert sorted(values, key=format_id) == values


@pytest.mark.parametrize("value", [-1, U128_MAX + 1, True])
def test_format_refuses_non_u128(value: int) -> None:
    with pytest.raises(InvalidIdError):
        format_id(value)


def test_new_ids_are_u128_unique_and_time_ordered() -> None:
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(0 < i <= U128_MAX for i in ids)
    assert ids == sorted(ids)
