"""How the payment flows read what a caller hands them: ids and other text (bounded, so they fit
the store's columns with a prefix added), amounts (an ``int`` is minor units as is, a `Decimal` is
major units converted exactly; a ``str`` is refused, since text is parsed at the edge where its
unit is known), exchange rates (never a float, bounded in magnitude), and the exact integer
arithmetic of an exchange. Pure functions with their named limits, no I/O: the engine and the
price module share one reading of money.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

import tigerbeetle as tb

from tbledger.amounts import AMOUNT_TEXT_CHARS_MAX, check_minor, ledger_to_minor
from tbledger.balances import Balance
from tbledger.chart import Ledger
from tbledger.errors import AmountError, ValidationError
from tbledger.ids import parse_object_id

__all__ = [
    "FLOW_TEXT_CHARS_MAX",
    "FULL_AMOUNT",
    "RATE_MAGNITUDE_MAX",
    "account_ref",
    "credit_available",
    "exact_rate",
    "exchange_amount",
    "flow_text",
    "minor_amount",
]

# Why: event ids, payment ids, contract ids and idempotency keys are stored in 255-character
# columns with a prefix or suffix added ("refundable:", "escrow:", ":12"); 200 leaves room.
FLOW_TEXT_CHARS_MAX: Final = 200

# Why: a rate is read like an amount (no exponent, no sign); its magnitude is bounded so that the
# exact integer arithmetic of an exchange stays small (a rate of 10**40 is a typo, not a price).
RATE_MAGNITUDE_MAX: Final = 40


# What a refused amount's message tells the caller to pass instead.
_PASS = "pass an int of minor units (1250) or a Decimal of major units (Decimal('12.50'))"
# A refused string is quoted up to this many characters: it may be arbitrarily long.
_SHOWN_CHARS_MAX: Final = 40

_RATE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
# Resolution transfers inherit ledger and code; the sentinel amount posts a hold in full.
FULL_AMOUNT = tb.AMOUNT_MAX


def flow_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, not {type(value).__name__}")
    if not 1 <= len(value) <= FLOW_TEXT_CHARS_MAX:
        raise ValidationError(f"{name} must be 1 to {FLOW_TEXT_CHARS_MAX} characters")
    return value


def account_ref(name: str, value: object) -> int:
    return parse_object_id(value, name)


def minor_amount(ledger: Ledger, value: object, what: str, *, allow_zero: bool = False) -> int:
    """An amount in `ledger`'s minor units: an int as is, a Decimal (major units) converted
    exactly; a str, float, bool or anything else is refused with `AmountError`.

    A str is refused rather than read as major units: ``deposit(amount=100)`` and
    ``deposit(amount="100")`` would otherwise move amounts 100 times apart on the Python type
    alone. Text comes from a person or a request, and the shell that received it knows its unit.
    """
    # bool before int: True is a bug at the caller, not the amount 1.
    if isinstance(value, bool):
        raise AmountError(f"{what} must not be a bool ({value!r}); {_PASS}")
    if isinstance(value, str):
        shown = value if len(value) <= _SHOWN_CHARS_MAX else f"{value[:_SHOWN_CHARS_MAX]}..."
        raise AmountError(
            f"{what} {shown!r} is a str, and the flows never guess the unit of text; {_PASS}; "
            "parse text where it is received (Ledger.to_minor, tbledger.amounts.ledger_to_minor)"
        )
    if isinstance(value, float):
        raise AmountError(f"{what} must never be a float ({value!r}); {_PASS}")
    if not isinstance(value, int | Decimal):
        raise AmountError(f"{what} must not be a {type(value).__name__}; {_PASS}")
    try:
        if isinstance(value, int):
            minor = check_minor(value, allow_zero=allow_zero)
        else:
            minor = ledger_to_minor(value, ledger, allow_zero=allow_zero)
    except AmountError as exc:
        raise AmountError(f"{what}: {exc}") from exc
    if minor == FULL_AMOUNT:
        raise AmountError(f"{what}: 2^128-1 is reserved (it means 'all' to the engine)")
    return minor


def _rate(value: object) -> Decimal:
    """An exchange rate: a positive int, decimal string or finite Decimal, never a float."""
    if isinstance(value, bool | float):
        raise ValidationError(f"a rate must be a decimal string or a Decimal, not {value!r}")
    if isinstance(value, int):
        rate = Decimal(value)
    elif isinstance(value, str):
        if len(value) > AMOUNT_TEXT_CHARS_MAX or not _RATE.fullmatch(value):
            raise ValidationError(f"rate {value[:40]!r} is not digits with an optional fraction")
        rate = Decimal(value)
    elif isinstance(value, Decimal):
        if not value.is_finite() or value.is_signed():
            raise ValidationError(f"a rate must be finite and positive, got {value}")
        rate = value
    else:
        raise ValidationError(f"a rate must be a decimal string or a Decimal, not {value!r}")
    if rate.is_zero():
        raise ValidationError("a rate must be greater than zero")
    digits = len(rate.as_tuple().digits)
    if abs(rate.adjusted()) > RATE_MAGNITUDE_MAX or digits > RATE_MAGNITUDE_MAX:
        raise ValidationError(f"rate {rate} is out of range (at most {RATE_MAGNITUDE_MAX} digits)")
    return rate


def exact_rate(value: object) -> Decimal:
    """A rate as `exchange` reads it (`ValidationError` if it is not one), for other modules."""
    return _rate(value)


def exchange_amount(amount: int, rate: Decimal, source_scale: int, target_scale: int) -> int:
    """``floor(amount * rate * 10**(target_scale - source_scale))``, exactly, in integers.

    `amount` is in the source ledger's minor units, the result in the target's; rounding is always
    down, so an exchange never pays out more than the rate allows.
    """
    numerator, denominator = rate.as_integer_ratio()
    shift = target_scale - source_scale
    # int ** int is typed Any (a negative exponent gives a float); abs() keeps this one an int.
    factor: int = 10 ** abs(shift)
    if shift >= 0:
        return (amount * numerator * factor) // denominator
    return (amount * numerator) // (denominator * factor)


def credit_available(balance: Balance) -> int:
    """What debits_must_not_exceed_credits still lets the account pay, from the raw counters."""
    return balance.credits_posted - balance.debits_posted - balance.debits_pending
