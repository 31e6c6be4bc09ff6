"""The HTTP API's request and response bodies (pydantic v2), and their spelling rules.

* Ids are strings: ``"0x"`` and up to 32 hex digits, or decimal digits; responses always use the
  fixed-width hex spelling. JSON numbers cannot carry a u128 exactly, so numbers are refused.
* Amounts are decimal strings. ``amount_unit`` says how to read them: ``"major"`` (the default)
  in the ledger's currency units with at most its asset scale of decimals (``"12.50"`` USD), or
  ``"minor"`` as an integer count of minor units (``"1250"``). Responses carry both spellings.
* Ledgers and codes are named by their chart name (``"USD"``, ``"PAYMENT"``) or number.
* Bodies are strict: unknown fields (a timestamp, engine flags) are refused, and so are values of
  the wrong JSON type (``true`` or ``12.5`` where a string is expected).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from tbledger.limits import STORE_TEXT_CHARS_MAX

__all__ = [
    "ID_PATTERN",
    "LEDGER_PATTERN",
    "AccountCreate",
    "AccountOut",
    "AccountStatusChange",
    "AccountStatusName",
    "AccountTypeName",
    "AmountText",
    "AmountUnit",
    "AuditEventOut",
    "BalanceOut",
    "BatchIn",
    "BatchOut",
    "IdText",
    "LedgerRef",
    "Money",
    "PostIn",
    "StrictBody",
    "Text",
    "TransferIn",
    "TransferOut",
    "TransferResultOut",
    "VoidIn",
]

# The spelling `tbledger.ids.parse_id` accepts; range checks (0, 2^128-1) happen after parsing.
ID_PATTERN = r"^(0[xX][0-9a-fA-F]{1,32}|[0-9]{1,39})$"

IdText = Annotated[
    str,
    Field(
        pattern=ID_PATTERN,
        max_length=39,
        description="u128 id: '0x' and up to 32 hex digits, or decimal digits",
        examples=["0x0000019a6f3e8c1b5d2e4f60718293a4"],
    ),
]
AmountText = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,39}(\.[0-9]{1,38})?$",
        max_length=80,
        description="a non-negative decimal string; see amount_unit",
        examples=["12.50"],
    ),
]
AmountUnit = Literal["major", "minor"]
# A ledger's chart name or number, in a body or a query.
LEDGER_PATTERN = r"^[A-Za-z0-9_]{1,32}$"
LedgerRef = Annotated[
    str,
    Field(
        pattern=LEDGER_PATTERN,
        description="a ledger's chart name (USD) or number (1)",
        examples=["USD"],
    ),
]
CodeRef = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_]{1,64}$",
        description="a transfer code's chart name (PAYMENT) or number",
        examples=["PAYMENT"],
    ),
]
Text = Annotated[str, Field(min_length=1, max_length=STORE_TEXT_CHARS_MAX)]
Metadata = Annotated[
    dict[str, Any],
    Field(description="free-form JSON object stored with the record (at most 4 KiB)"),
]
U64 = Annotated[StrictInt, Field(ge=0, le=(1 << 64) - 1)]
U32 = Annotated[StrictInt, Field(ge=0, le=(1 << 32) - 1)]


class StrictBody(BaseModel):
    """Request bodies: unknown fields and wrong JSON types are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Money(BaseModel):
    """An amount in both spellings, with the ledger it is counted in."""

    amount: str = Field(description="decimal string in the ledger's major units")
    amount_minor: str = Field(description="integer count of minor units")
    ledger: int
    ledger_name: str | None = None
    asset_scale: int


# -- accounts -------------------------------------------------------------------------------------

AccountTypeName = Literal[
    "user", "merchant", "treasury", "escrow", "fee_pool", "anchor", "system_buffer", "control"
]
AccountStatusName = Literal["active", "frozen", "closed"]


class AccountCreate(StrictBody):
    account_type: AccountTypeName = "user"
    ledger: LedgerRef
    owner_id: Text | None = None
    name: Text | None = None
    metadata: Metadata = {}


class AccountStatusChange(StrictBody):
    sweep_to: IdText | None = Field(
        default=None,
        description="close only: where the balance goes (default: the ledger's control account)",
    )


class BalanceOut(BaseModel):
    account_id: str
    account_name: str | None = Field(default=None, description="the account's unique name")
    ledger: int
    ledger_name: str | None
    asset_scale: int
    normal_side: Literal["debit", "credit"]
    posted: str
    available: str
    pending: str
    held: str
    posted_minor: str
    available_minor: str
    pending_minor: str
    held_minor: str
    debits_posted: str
    credits_posted: str
    debits_pending: str
    credits_pending: str
    closed: bool


class AccountOut(BaseModel):
    id: str
    account_type: str
    owner_id: str | None
    name: str | None
    ledger: int
    ledger_name: str | None
    code: int
    status: AccountStatusName
    metadata: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    balance: BalanceOut | None = None


class AccountList(BaseModel):
    accounts: list[AccountOut]
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the next page")


class BalanceList(BaseModel):
    balances: list[BalanceOut]


# -- transfers ------------------------------------------------------------------------------------


class TransferIn(StrictBody):
    debit_account_id: IdText
    credit_account_id: IdText
    amount: AmountText
    amount_unit: AmountUnit = "major"
    ledger: LedgerRef
    code: CodeRef = "PAYMENT"
    transfer_id: IdText | None = Field(
        default=None, description="choose the id yourself (a retry then reuses it)"
    )
    timeout_s: U32 = Field(
        default=0, description="pending transfers only: seconds until the hold expires (0: never)"
    )
    user_data_128: IdText | None = None
    user_data_64: U64 = 0
    user_data_32: U32 = 0
    payment_id: Text | None = None
    event_id: Text | None = None
    chain_tx_hash: Text | None = None
    metadata: Metadata = {}


class PostIn(StrictBody):
    amount: AmountText | None = Field(
        default=None, description="post part of the hold (the rest is released); omit for all"
    )
    amount_unit: AmountUnit = "major"
    event_id: Text | None = None
    payment_id: Text | None = None
    metadata: Metadata = {}


class VoidIn(StrictBody):
    event_id: Text | None = None
    payment_id: Text | None = None
    metadata: Metadata = {}


class BatchIn(StrictBody):
    transfers: list[TransferIn] = Field(min_length=1)
    atomic: bool = Field(default=False, description="all or nothing (one linked chain)")
    pending: bool = Field(default=False, description="create every transfer as a hold")


class TransferResultOut(BaseModel):
    id: str
    status: str = Field(description="the engine's status name: created, exists, exceeds_credits…")
    ok: bool
    timestamp: str | None = None
    replayed: bool = False


class BatchOut(BaseModel):
    results: list[TransferResultOut]
    created: int
    failed: int


class AuditEventOut(BaseModel):
    seq: int
    kind: str
    transfer_id: str | None
    account_id: str | None
    status: str | None
    engine_timestamp: str | None
    detail: dict[str, Any]
    recorded_at: datetime


class TransferOut(BaseModel):
    id: str
    debit_account_id: str
    credit_account_id: str
    amount: str
    amount_minor: str
    ledger: int
    ledger_name: str | None
    asset_scale: int
    code: int
    pending_id: str | None
    flags: list[str]
    timeout_s: int
    timestamp: str | None = Field(description="engine timestamp (ns), None if not in the engine")
    status: str | None = Field(
        description="latest audit status (pending, posted, voided, expired, failed…); a hold "
        "past its timeout by the engine's clock is expired"
    )
    captured_amount: str | None = Field(
        default=None, description="a posted hold: how much of it its post moved"
    )
    captured_amount_minor: str | None = None
    released_amount: str | None = Field(
        default=None, description="a posted hold: the rest of it, released to the payer"
    )
    released_amount_minor: str | None = None
    payment_id: str | None = None
    event_id: str | None = None
    chain_tx_hash: str | None = None
    metadata: dict[str, Any] = {}
    audit: list[AuditEventOut] = []


class TransferList(BaseModel):
    transfers: list[TransferOut]
    next_cursor: str | None = None


class RecoveryOut(BaseModel):
    examined: int
    found_in_engine: int
    resubmitted: int
    failed: int
    expired: int
    unresolved: int
