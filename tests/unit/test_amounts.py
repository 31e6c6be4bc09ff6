"""Amounts: decimal strings and `Decimal` at the edges convert exactly to int minor units and back;
anything that cannot be converted exactly (or is not money at all) is refused, never rounded."""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tbledger.amounts import (
    AMOUNT_TEXT_CHARS_MAX,
    ASSET_SCALE_MAX,
    check_minor,
    check_scale,
    format_amount,
    format_ledger_amount,
    from_minor,
    ledger_from_minor,
    ledger_to_minor,
    to_minor,
)
from tbledger.chart import Chart
from tbledger.errors import AmountError, ValidationError
from tbledger.limits import U128_MAX

u128s = st.integers(min_value=0, max_value=U128_MAX)
scales = st.integers(min_value=0, max_value=ASSET_SCALE_MAX)


# -- conversions that succeed ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "scale", "minor"),
    [
        ("12.50", 2, 1250),
        ("12.5", 2, 1250),
        ("12", 2, 1200),
        ("0", 2, 0),
        ("0.00", 2, 0),
        ("0.01", 2, 1),
        ("7", 0, 7),
        ("0.00000001", 8, 1),
        ("21000000", 8, 2_100_000_000_000_000),
        ("1.000000000000000001", 18, 10**18 + 1),
        ("340282366920938463463374607431768211455", 0, U128_MAX),
        ("3.40282366920938463463374607431768211455", 38, U128_MAX),
        (Decimal("12.50"), 2, 1250),
        (Decimal("1E+3"), 2, 100_000),
        (Decimal("0E+5"), 2, 0),
        (5, 2, 500),
        (0, 6, 0),
    ],
)
def test_values_convert_exactly_to_minor_units(
    value: str | Decimal | int, scale: int, minor: int
) -> None:
    assert to_minor(value, scale) == minor


def test_an_int_is_whole_major_units_and_check_minor_takes_minor_units() -> None:
    assert to_minor(3, 2) == 300
    assert check_minor(300) == 300


@pytest.mark.parametrize(
    ("minor", "scale", "text"),
    [
        (1250, 2, "12.50"),
        (5, 2, "0.05"),
        (0, 2, "0.00"),
        (7, 0, "7"),
        (1, 8, "0.00000001"),
        (1, 18, "0.000000000000000001"),
        (U128_MAX, 0, "340282366920938463463374607431768211455"),
        (U128_MAX, 38, "3.40282366920938463463374607431768211455"),
    ],
)
def test_formatting_has_fixed_places_and_no_exponent(minor: int, scale: int, text: str) -> None:
    assert format_amount(minor, scale) == text
    assert format(from_minor(minor, scale), "f") == text


def test_str_of_a_small_decimal_uses_an_exponent_which_is_why_format_amount_exists() -> None:
    assert str(from_minor(1, 8)) == "1E-8"
    assert format_amount(1, 8) == "0.00000001"


def test_from_minor_is_a_decimal_with_exactly_scale_places() -> None:
    value = from_minor(1250, 2)
    assert value == Decimal("12.50")
    assert value.as_tuple().exponent == -2


@given(minor=u128s, scale=scales)
def test_format_then_parse_round_trips_every_u128_at_every_scale(minor: int, scale: int) -> None:
    assert to_minor(format_amount(minor, scale), scale) == minor


@given(minor=u128s, scale=scales)
def test_from_minor_then_to_minor_round_trips(minor: int, scale: int) -> None:
    assert to_minor(from_minor(minor, scale), scale) == minor


@given(whole=st.integers(min_value=0, max_value=10**20), scale=st.integers(0, 18))
def test_an_int_is_the_same_amount_as_its_decimal_string(whole: int, scale: int) -> None:
    assert to_minor(whole, scale) == to_minor(str(whole), scale) == whole * 10**scale


def test_the_global_decimal_context_changes_nothing() -> None:
    with decimal.localcontext() as ctx:
        ctx.prec = 3
        ctx.traps[decimal.Inexact] = True
        assert to_minor("123456789.12", 2) == 12345678912
        assert to_minor(Decimal("3.40282366920938463463374607431768211455"), 38) == U128_MAX


# -- refusals -------------------------------------------------------------------------------------

REFUSED: list[tuple[str, object, int]] = [
    # (why, value, scale)
    ("exponent notation", "1e400", 2),
    ("exponent notation, small", "1e2", 2),
    ("exponent notation, capital", "1E2", 2),
    ("NaN string", "NaN", 2),
    ("sNaN string", "sNaN", 2),
    ("Infinity string", "Infinity", 2),
    ("inf string", "-inf", 2),
    ("NaN Decimal", Decimal("NaN"), 2),
    ("sNaN Decimal", Decimal("sNaN"), 2),
    ("+Infinity Decimal", Decimal("Infinity"), 2),
    ("-Infinity Decimal", Decimal("-Infinity"), 2),
    ("bool True", True, 2),
    ("bool False", False, 2),
    ("float", 1.5, 2),
    ("float that looks whole", 2.0, 2),
    ("negative string", "-0.01", 2),
    ("negative zero string", "-0", 2),
    ("negative Decimal", Decimal("-0.01"), 2),
    ("negative zero Decimal", Decimal("-0"), 2),
    ("negative int", -1, 2),
    ("too many places", "0.001", 2),
    ("too many places, trailing zero", "1.500", 2),
    ("too many places, Decimal", Decimal("0.001"), 2),
    ("places at scale 0", "1.0", 0),
    ("2^128 minor units, string", str(U128_MAX + 1), 0),
    ("2^128 minor units, int", U128_MAX + 1, 0),
    ("2^128 minor units, Decimal", Decimal(U128_MAX + 1), 0),
    ("u128 max major units at scale 2", U128_MAX, 2),
    ("just past u128 at scale 38", "3.40282366920938463463374607431768211456", 38),
    ("huge Decimal exponent", Decimal("1E+999999"), 2),
    ("huge int", 10**5000, 2),
    ("empty string", "", 2),
    ("not a number", "twelve", 2),
    ("leading plus", "+1", 2),
    ("leading space", " 1", 2),
    ("trailing space", "1 ", 2),
    ("trailing newline", "1\n", 2),
    ("underscores", "1_000", 2),
    ("thousands separator", "1,000", 2),
    ("leading zero", "01", 2),
    ("bare point first", ".5", 2),
    ("bare point last", "5.", 2),
    ("non-ASCII digits", "\u0663", 2),
    ("hex", "0x10", 2),
    ("too long", "1" * (AMOUNT_TEXT_CHARS_MAX + 1), 2),
    ("None", None, 2),
    ("bytes", b"1", 2),
    ("Fraction-like tuple", (1, 2), 2),
]


@pytest.mark.parametrize(
    ("value", "scale"), [(v, s) for _, v, s in REFUSED], ids=[why for why, _, _ in REFUSED]
)
def test_what_is_not_exactly_money_is_refused(value: object, scale: int) -> None:
    with pytest.raises(AmountError):
        to_minor(value, scale)  # type: ignore[arg-type]


def test_refusals_are_validation_errors_and_value_errors() -> None:
    with pytest.raises(ValidationError):
        to_minor("0.001", 2)
    with pytest.raises(ValueError, match="never be a float"):
        to_minor(0.1, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "scale", "message"),
    [
        ("0.001", 2, "3 decimal places but scale 2 allows at most 2; amounts are never rounded"),
        ("1e400", 2, "exponent notation is not accepted"),
        ("NaN", 2, "finite number"),
        ("-0.01", 2, "must not be negative"),
        (True, 2, "must not be a bool"),
        (1.5, 2, "never be a float"),
        (str(U128_MAX + 1), 0, "more than 2^128-1 minor units"),
        ("1_000", 2, "no underscores"),
        ("+1", 2, "no '+' sign"),
        (" 1", 2, "no spaces"),
        ("01", 2, "no leading zeros"),
    ],
)
def test_refusals_say_why(value: object, scale: int, message: str) -> None:
    with pytest.raises(AmountError, match=re.escape(message)):
        to_minor(value, scale)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0", "0.00", Decimal("0"), Decimal("0E+2"), 0])
def test_zero_is_refused_only_when_the_caller_says_so(value: str | Decimal | int) -> None:
    assert to_minor(value, 2) == 0
    with pytest.raises(AmountError, match="greater than zero"):
        to_minor(value, 2, allow_zero=False)
    assert to_minor("0.01", 2, allow_zero=False) == 1


@pytest.mark.parametrize("scale", [-1, ASSET_SCALE_MAX + 1, True, 2.0, "2", None])
def test_scales_outside_0_to_38_are_refused(scale: object) -> None:
    with pytest.raises(AmountError):
        check_scale(scale)
    with pytest.raises(AmountError):
        to_minor("1", scale)  # type: ignore[arg-type]
    with pytest.raises(AmountError):
        format_amount(1, scale)  # type: ignore[arg-type]


@pytest.mark.parametrize("minor", [-1, U128_MAX + 1, True, 1.0, Decimal(1), "1", None])
def test_minor_units_must_be_a_u128_int(minor: object) -> None:
    with pytest.raises(AmountError):
        check_minor(minor)
    with pytest.raises(AmountError):
        format_amount(minor, 2)  # type: ignore[arg-type]
    with pytest.raises(AmountError):
        from_minor(minor, 2)  # type: ignore[arg-type]


def test_check_minor_refuses_zero_when_asked() -> None:
    assert check_minor(0) == 0
    with pytest.raises(AmountError):
        check_minor(0, allow_zero=False)


# -- ledger-aware wrappers -----------------------------------------------------------------------


def test_ledger_wrappers_use_the_ledgers_scale() -> None:
    chart = Chart.default()
    usd, btc, eth = chart.ledger("USD"), chart.ledger("BTC"), chart.ledger("ETH")
    assert ledger_to_minor("12.50", usd) == 1250
    assert ledger_to_minor("0.00000001", btc) == 1
    assert ledger_to_minor("1", eth) == 10**18
    assert ledger_from_minor(1250, usd) == Decimal("12.50")
    assert format_ledger_amount(1, btc) == "0.00000001"
    # The same through the Ledger's own methods.
    assert usd.to_minor("12.50") == 1250
    assert usd.from_minor(1250) == Decimal("12.50")
    assert usd.format_amount(5) == "0.05"


def test_ledger_refusals_name_the_ledger() -> None:
    usd = Chart.default().ledger("USD")
    with pytest.raises(AmountError, match=r"^USD \(ledger 1, scale 2\): amount 0\.001 has 3"):
        ledger_to_minor("0.001", usd)
    with pytest.raises(AmountError, match=r"^USD \(ledger 1, scale 2\): .*greater than zero"):
        usd.to_minor("0.00", allow_zero=False)


@given(minor=u128s)
def test_every_default_ledger_round_trips(minor: int) -> None:
    for ledger in Chart.default().ledgers:
        assert ledger.to_minor(ledger.format_amount(minor)) == minor
