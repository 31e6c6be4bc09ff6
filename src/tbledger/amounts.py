"""Exact conversion between amounts people write (``"12.50"``) and the ledger's minor units (1250).

Inside tbledger an amount is an ``int`` of minor units, as TigerBeetle stores it (u128). At the
edges (HTTP, CLI, reports) amounts are decimal strings or `Decimal`, converted exactly with the
ledger's asset scale: the number of decimal places of its minor unit (USD 2, BTC 8, ETH 18). The
conversion never rounds and never uses a float; anything it cannot convert exactly is refused
with `AmountError` saying why:

* a ``float`` (binary floating point cannot hold 0.1; money never touches it) or a ``bool``
  (``True`` is a bug at the caller, not the amount 1), or any other type;
* a negative amount, including ``"-0"`` and ``Decimal("-0")``; zero when the caller passes
  ``allow_zero=False``;
* more decimal places than the scale, even trailing zeros (``"1.500"`` is refused at scale 2: a
  client that sends three places is confused about the ledger, and guessing would hide it);
* NaN, sNaN and infinities;
* more than ``2**128 - 1`` minor units (TigerBeetle's amounts are u128).

Strings follow one strict grammar, JSON's for a non-negative number without an exponent:
``0|[1-9][0-9]*`` optionally followed by ``.`` and one or more digits. So ``"+1"``, ``" 1"``,
``"1_000"``, ``"01"``, ``".5"``, ``"5."``, ``"1e3"``, ``"NaN"`` and non-ASCII digits are refused.
``Decimal()`` accepts every one of these, which would let a typo or an injected string become
money. Exponent notation is refused, not evaluated: accepting it would only add ways to spell the
same amount and a way to make the parser expand ``"1e999999"``, while a client that means 1000
can always write ``"1000"``. A `Decimal` object is judged by its value and exponent instead, so
``Decimal("1E+3")`` is 1000 and fine (its size is checked before it is expanded).

An ``int`` passed to `to_minor` is a whole number of *major* units (``to_minor(5, 2) == 500``);
use `check_minor` for an int that is already in minor units.

Decimal arithmetic uses a private context with 80 digits of precision and every signal trapped,
never the thread's global context, so a caller's ``decimal.getcontext()`` changes nothing here and
any rounding would raise instead of passing silently.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from tbledger.errors import AmountError
from tbledger.limits import U128_MAX

if TYPE_CHECKING:
    from tbledger.chart import Ledger

__all__ = [
    "AMOUNT_TEXT_CHARS_MAX",
    "ASSET_SCALE_MAX",
    "check_minor",
    "check_scale",
    "format_amount",
    "format_ledger_amount",
    "from_minor",
    "ledger_from_minor",
    "ledger_to_minor",
    "to_minor",
]

# Why: 10**38 < 2**128 - 1 < 10**39, so at scale 38 a u128 still holds one whole major unit (up to
# about 3.4 of them); at scale 39 not even one unit fits.
ASSET_SCALE_MAX: Final = 38

# Why: bounds the work done on a string before it is refused. Every valid amount is at most 40
# characters (a u128 has 39 digits, plus the point); the slack lets longer mistakes (say, too many
# decimal places) get their specific message instead of "too long".
AMOUNT_TEXT_CHARS_MAX: Final = 100

# The digits and bits of U128_MAX: an amount with more of either is too large.
_U128_DIGITS: Final = len(str(U128_MAX))
_U128_BITS: Final = U128_MAX.bit_length()

# Error messages quote at most this many characters of a refused value; ints longer than this
# many bits are described by their size (str() would be slow, and refuses past 4300 digits).
_SHOWN_CHARS_MAX: Final = 60
_SHOWN_BITS_MAX: Final = 512

_GRAMMAR = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_EXPONENT = re.compile(r"[0-9.]+[eE][+-]?[0-9]+")

# 80 digits hold any u128 (39 digits) at any scale (38 places) with room to spare. Every signal is
# trapped: if anything here ever rounded, it would raise rather than change an amount.
_CONTEXT: Final = decimal.Context(
    prec=80,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    capitals=1,
    clamp=0,
    flags=[],
    traps=[
        decimal.Clamped,
        decimal.DivisionByZero,
        decimal.Inexact,
        decimal.InvalidOperation,
        decimal.Overflow,
        decimal.Rounded,
        decimal.Subnormal,
        decimal.Underflow,
    ],
)


def check_scale(scale: object) -> int:
    """Return `scale` if it is an int asset scale in 0..38, else raise `AmountError`."""
    if isinstance(scale, bool) or not isinstance(scale, int):
        raise AmountError(f"an asset scale must be an int, not {type(scale).__name__}")
    if not 0 <= scale <= ASSET_SCALE_MAX:
        raise AmountError(f"an asset scale must be in 0..{ASSET_SCALE_MAX}, got {scale}")
    return scale


def check_minor(minor: object, *, allow_zero: bool = True) -> int:
    """Return `minor` if it is an int amount in minor units in [0, 2^128-1], else raise."""
    return _check_minor(minor, allow_zero=allow_zero, where="")


def to_minor(value: str | Decimal | int, scale: int, *, allow_zero: bool = True) -> int:
    """Convert `value` (major units) to an int of minor units at `scale`, exactly, or refuse it.

    ``to_minor("12.5", 2) == 1250``; ``to_minor(Decimal("0.00000001"), 8) == 1``;
    ``to_minor(3, 2) == 300`` (an int is whole major units).
    """
    scale = check_scale(scale)
    return _to_minor(value, scale, allow_zero=allow_zero, where="")


def from_minor(minor: int, scale: int) -> Decimal:
    """The `Decimal` value of `minor` minor units at `scale`, with exactly `scale` places.

    ``from_minor(1250, 2) == Decimal("12.50")``. Exact: the digits are taken as they are, no
    arithmetic is involved. To spell it, use `format_amount`: ``str()`` of a `Decimal` switches to
    exponent notation below 1e-6 (``str(from_minor(1, 8)) == "1E-8"``).
    """
    scale = check_scale(scale)
    minor = _check_minor(minor, allow_zero=True, where="")
    digits = tuple(int(d) for d in str(minor))
    return Decimal((0, digits, -scale))


def format_amount(minor: int, scale: int) -> str:
    """Spell `minor` minor units at `scale` with exactly `scale` decimal places, never an exponent.

    ``format_amount(1250, 2) == "12.50"``, ``format_amount(1, 8) == "0.00000001"``,
    ``format_amount(7, 0) == "7"``. `to_minor` reads every result back to the same int.
    """
    scale = check_scale(scale)
    minor = _check_minor(minor, allow_zero=True, where="")
    if scale == 0:
        return str(minor)
    # Pad so there is at least one digit before the point ("0.05", not ".05").
    digits = str(minor).rjust(scale + 1, "0")
    return f"{digits[:-scale]}.{digits[-scale:]}"


def ledger_to_minor(value: str | Decimal | int, ledger: Ledger, *, allow_zero: bool = True) -> int:
    """`to_minor` at `ledger`'s asset scale; a refusal names the ledger."""
    return _to_minor(value, ledger.asset_scale, allow_zero=allow_zero, where=_where(ledger))


def ledger_from_minor(minor: int, ledger: Ledger) -> Decimal:
    """`from_minor` at `ledger`'s asset scale."""
    return from_minor(minor, ledger.asset_scale)


def format_ledger_amount(minor: int, ledger: Ledger) -> str:
    """`format_amount` at `ledger`'s asset scale (the number only, no currency name)."""
    return format_amount(minor, ledger.asset_scale)


# -- internals ------------------------------------------------------------------------------------
#
# Every refusal message starts with `where` ("" or "USD (ledger 1, scale 2): ") so an error at an
# edge names the ledger whose scale refused the amount.


def _where(ledger: Ledger) -> str:
    return f"{ledger.name} (ledger {ledger.code}, scale {ledger.asset_scale}): "


def _to_minor(value: object, scale: int, *, allow_zero: bool, where: str) -> int:
    # bool before int: bool is an int subclass, and True is not the amount 1.
    if isinstance(value, bool):
        raise AmountError(f"{where}an amount must not be a bool ({value!r})")
    if isinstance(value, float):
        raise AmountError(
            f"{where}an amount must never be a float ({value!r}); "
            "pass a decimal string or a Decimal"
        )
    if isinstance(value, int):
        return _from_int(value, scale, allow_zero=allow_zero, where=where)
    if isinstance(value, str):
        return _from_decimal(_parse(value, where), scale, allow_zero=allow_zero, where=where)
    if isinstance(value, Decimal):
        return _from_decimal(value, scale, allow_zero=allow_zero, where=where)
    raise AmountError(
        f"{where}an amount must be a decimal string, a Decimal or an int, "
        f"not {type(value).__name__}"
    )


def _from_int(value: int, scale: int, *, allow_zero: bool, where: str) -> int:
    if value < 0:
        raise AmountError(f"{where}an amount must not be negative, got {_shown(value)}")
    # Bound the size before multiplying (or printing: str() refuses ints past 4300 digits).
    if value.bit_length() > _U128_BITS:
        raise AmountError(f"{where}amount {_shown(value)} is more than 2^128-1 minor units")
    return _check_minor(value * 10**scale, allow_zero=allow_zero, where=where, shown=str(value))


def _parse(text: str, where: str) -> Decimal:
    if len(text) > AMOUNT_TEXT_CHARS_MAX:
        raise AmountError(
            f"{where}an amount string must be at most {AMOUNT_TEXT_CHARS_MAX} characters, "
            f"got {len(text)}"
        )
    if not _GRAMMAR.fullmatch(text):
        raise AmountError(f"{where}amount {text!r} is refused: {_why_not(text)}")
    try:
        return _CONTEXT.create_decimal(text)
    except decimal.DecimalException as exc:
        # Unreachable: the grammar and the length bound admit only what 80 digits hold exactly.
        raise AmountError(f"{where}amount {text!r} cannot be read exactly") from exc


def _why_not(text: str) -> str:
    """The reason `text` is outside the grammar, for the error message."""
    grammar = "write digits, optionally a '.' and more digits, like '12.50'"
    if text.startswith("-"):
        return "an amount must not be negative"
    if text.startswith("+"):
        return f"no '+' sign; {grammar}"
    if any(c.isspace() for c in text):
        return f"no spaces; {grammar}"
    if "_" in text:
        return f"no underscores; {grammar}"
    if _EXPONENT.fullmatch(text):
        return f"exponent notation is not accepted; {grammar}"
    if text.lower().lstrip("s") in {"nan", "inf", "infinity"}:
        return "an amount must be a finite number"
    if re.fullmatch(r"0[0-9]+(?:\.[0-9]+)?", text):
        return f"no leading zeros; {grammar}"
    return grammar


def _from_decimal(value: Decimal, scale: int, *, allow_zero: bool, where: str) -> int:
    shown = _shown(value)
    if value.is_nan():
        raise AmountError(f"{where}an amount must be a number, got {shown}")
    if value.is_infinite():
        raise AmountError(f"{where}an amount must be finite, got {shown}")
    if value.is_signed():
        raise AmountError(f"{where}an amount must not be negative, got {shown}")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, so not 'n', 'N' or 'F'
    places = max(0, -exponent)
    if places > scale:
        raise AmountError(
            f"{where}amount {shown} has {places} decimal places but scale {scale} allows at most "
            f"{scale}; amounts are never rounded"
        )
    if value.is_zero():
        return _check_minor(0, allow_zero=allow_zero, where=where, shown=shown)
    # adjusted() is the power of ten of the leading digit; checking it first keeps a value like
    # Decimal("1E+999999") from being expanded into a huge int only to be refused.
    if value.adjusted() + scale >= _U128_DIGITS:
        raise AmountError(f"{where}amount {shown} is more than 2^128-1 minor units")
    try:
        scaled = _CONTEXT.scaleb(value, scale)
    except decimal.DecimalException as exc:
        # Unreachable: at most 39 significant digits and an exponent >= -38 scale exactly.
        raise AmountError(f"{where}amount {shown} cannot be scaled exactly") from exc
    return _check_minor(int(scaled), allow_zero=allow_zero, where=where, shown=shown)


def _check_minor(minor: object, *, allow_zero: bool, where: str, shown: str | None = None) -> int:
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise AmountError(
            f"{where}an amount in minor units must be an int, not {type(minor).__name__}"
        )
    label = f"amount {shown if shown is not None else _shown(minor)}"
    if minor < 0:
        raise AmountError(f"{where}{label} must not be negative")
    if minor > U128_MAX:
        raise AmountError(f"{where}{label} is more than 2^128-1 minor units")
    if minor == 0 and not allow_zero:
        raise AmountError(f"{where}{label} must be greater than zero")
    return minor


def _shown(value: int | Decimal) -> str:
    """`value` for an error message, shortened: a refused value may be arbitrarily long."""
    if isinstance(value, int) and value.bit_length() > _SHOWN_BITS_MAX:
        return f"of {value.bit_length()} bits"
    text = str(value)
    if len(text) > _SHOWN_CHARS_MAX:
        return f"{text[: _SHOWN_CHARS_MAX - 3]}..."
    return text
