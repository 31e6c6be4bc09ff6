"""What a caller asks for, spelled the API's way: transfers, ids and amounts as request fields.

Pure functions, no I/O: the async and the blocking client build their bodies here, so both send
the same bytes for the same call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from tbledger.errors import AmountError
from tbledger.ids import format_id

__all__ = ["TransferSpec", "amount_text", "id_text", "transfer_body"]


def id_text(value: str | int) -> str:
    """An id as the API reads it: a caller's string unchanged, an int as ``0x`` hex (u128)."""
    return format_id(value) if isinstance(value, int) else value


def amount_text(value: str | int | Decimal) -> str:
    """An amount as the API reads it: a decimal string, never a float (floats are refused: a
    binary fraction cannot carry 0.10 exactly)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise AmountError(f"an amount is a str, int or Decimal, not {type(value).__name__}")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise AmountError(f"{value} is not an amount")
        return format(value, "f")
    return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferSpec:
    """One transfer to ask for (``POST /v1/transfers``, ``/pending`` or in a batch).

    Unset optional fields are left to the service: `code` defaults to ``PAYMENT`` there,
    `amount_unit` to ``major``. `transfer_id` chooses the id, so that a retry reuses it.
    """

    debit_account_id: str | int
    credit_account_id: str | int
    amount: str | int | Decimal
    ledger: str | int
    amount_unit: Literal["major", "minor"] = "major"
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
        "amount": amount_text(spec.amount),
        "amount_unit": spec.amount_unit,
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
