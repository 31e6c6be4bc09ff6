"""What a caller asks for, spelled the API's way: transfers, ids and amounts as request fields.

Pure functions, no I/O: the async and the blocking client build their bodies here, so both send
the same bytes for the same call.

Amounts follow the library's one rule (`tbledger.flows`): an ``int`` is minor units of the
ledger (``1250`` is 12.50 USD), a `decimal.Decimal` is major units (``Decimal("12.50")``), and
anything else is refused with `AmountError` before a request is sent. A ``str`` is refused too:
read as major units it would make ``amount=100`` and ``amount="100"`` move amounts a hundred
times apart on the Python type alone, so text a person typed is read where it arrives, into a
`Decimal` or an ``int``, by the caller that knows its unit (the command line does). The Python
type decides the request's ``amount_unit`` (``minor`` for an int, ``major`` for a Decimal); the
answers carry both spellings (``amount`` and ``amount_minor``), so no option chooses a unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tbledger.errors import AmountError
from tbledger.ids import format_id

__all__ = ["Amount", "TransferSpec", "amount_fields", "id_text", "transfer_body"]

# An amount a caller sends: an int of minor units or a Decimal of major units.
Amount = int | Decimal


def id_text(value: str | int) -> str:
    """An id as the API reads it: a caller's string unchanged, an int as ``0x`` hex (u128)."""
    return format_id(value) if isinstance(value, int) else value


def amount_fields(value: Amount | None) -> dict[str, str]:
    """The ``amount`` and ``amount_unit`` request fields for `value` (none for None, so that the
    service's default applies): an int as minor units, a Decimal as major units, exactly."""
    if value is None:
        return {}
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        kind = type(value).__name__
        hint = (
            ": read text with Decimal(text) (major units) or int(text) (minor units)"
            if isinstance(value, str)
            else ""
        )
        raise AmountError(
            f"an amount is an int of minor units or a Decimal of major units, not a {kind}{hint}"
        )
    if isinstance(value, int):
        if value < 0:
            raise AmountError(f"an amount is never negative, got {value}")
        return {"amount": str(value), "amount_unit": "minor"}
    if not value.is_finite() or value.is_signed():
        # is_signed() also catches Decimal("-0"), which the service would refuse anyway.
        raise AmountError(f"{value} is not a non-negative amount")
    return {"amount": format(value, "f"), "amount_unit": "major"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferSpec:
    """One transfer to ask for (``POST /v1/transfers``, ``/pending`` or in a batch).

    `amount` is an int of minor units or a Decimal of major units (never text or a float).
    Unset optional fields are left to the service: `code` defaults to ``PAYMENT`` there.
    `transfer_id` chooses the id, so that a retry reuses it.
    """

    debit_account_id: str | int
    credit_account_id: str | int
    amount: Amount
    ledger: str | int
    code: str | int | None = None
    transfer_id: str | int | None = None
    timeout_s: int | None = None
    user_data_128: str | int | None = None
    user_data_64: int | None = None
    user_data_32: int | None = None
    payment_id: str | None = None
    event_id: str | None = None
    chain_tx_hash: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


def transfer_body(spec: TransferSpec) -> dict[str, Any]:
    """The JSON body of `spec`: the fields it sets, in the API's spelling."""
    body: dict[str, Any] = {
        "debit_account_id": id_text(spec.debit_account_id),
        "credit_account_id": id_text(spec.credit_account_id),
        **amount_fields(spec.amount),
        "ledger": str(spec.ledger),
    }
    optional: dict[str, Any] = {
        "code": None if spec.code is None else str(spec.code),
        "transfer_id": None if spec.transfer_id is None else id_text(spec.transfer_id),
        "timeout_s": spec.timeout_s or None,
        "user_data_128": None if spec.user_data_128 is None else id_text(spec.user_data_128),
        "user_data_64": spec.user_data_64,
        "user_data_32": spec.user_data_32,
        "payment_id": spec.payment_id,
        "event_id": spec.event_id,
        "chain_tx_hash": spec.chain_tx_hash,
        "metadata": dict(spec.metadata) or None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body
