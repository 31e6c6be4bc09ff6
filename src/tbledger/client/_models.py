"""What the HTTP API answers, as typed, immutable models (pydantic v2).

Each model mirrors one response body of the API field by field, in the API's order, so that a
model dumped back to JSON (``model_dump(mode="json")``) is the body the service sent: the CLI
prints exactly what it received. Fields the service adds later are kept (``extra="allow"``)
rather than refused, so that an older client keeps working against a newer service.

Ids are the API's fixed-width hex strings (``0x`` and 32 digits) and amounts its decimal strings:
converting them is the caller's choice (`tbledger.ids.parse_id`, ``Decimal``), never a float.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Account",
    "AccountDetails",
    "AccountPage",
    "AnchorAuthorizationDetails",
    "AnchorFulfillmentDetails",
    "AnchorReleaseDetails",
    "AnchorStatus",
    "AuditEntry",
    "Balance",
    "BatchResult",
    "EscrowLockDetails",
    "EscrowReleaseDetails",
    "EscrowVoidDetails",
    "ExchangeDetails",
    "FeeSchedule",
    "FlowResult",
    "Liquidity",
    "LiquidityDetails",
    "Liveness",
    "Model",
    "PaymentDetails",
    "Quote",
    "Rate",
    "Readiness",
    "RecoveryReport",
    "RefundDetails",
    "Refundable",
    "SettlementDetails",
    "SettlementReversalDetails",
    "Transfer",
    "TransferPage",
    "TransferResult",
    "Webhook",
    "WebhookAttempt",
    "WebhookSubscriptionInfo",
]


class Model(BaseModel):
    """A response body: immutable, unknown fields kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def to_json(self) -> dict[str, Any]:
        """The body as the service sent it (ids and amounts as strings)."""
        return self.model_dump(mode="json")


# -- probes ---------------------------------------------------------------------------------------


class Liveness(Model):
    status: str


class Readiness(Model):
    ready: bool
    engine: bool
    database: bool
    breaker: str
    engine_latency_ms: float | None
    detail: dict[str, str]


class RecoveryReport(Model):
    examined: int
    found_in_engine: int
    resubmitted: int
    failed: int
    expired: int
    unresolved: int


# -- accounts -------------------------------------------------------------------------------------


class Balance(Model):
    account_id: str
    account_name: str | None = None
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


class Account(Model):
    id: str
    account_type: str
    owner_id: str | None
    name: str | None
    ledger: int
    ledger_name: str | None
    code: int
    status: Literal["active", "frozen", "closed"]
    metadata: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    balance: Balance | None = None


class AccountPage(Model):
    accounts: list[Account]
    next_cursor: str | None = None


# -- transfers ------------------------------------------------------------------------------------


class TransferResult(Model):
    """The engine's answer for one transfer: ``ok`` and its status name (``created``...)."""

    id: str
    status: str
    ok: bool
    timestamp: str | None = None
    replayed: bool = False


class BatchResult(Model):
    results: list[TransferResult]
    created: int
    failed: int


class AuditEntry(Model):
    seq: int
    kind: str
    transfer_id: str | None
    account_id: str | None
    status: str | None
    engine_timestamp: str | None
    detail: dict[str, Any]
    recorded_at: datetime


class Transfer(Model):
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
    timestamp: str | None
    status: str | None
    # A posted hold: what its post moved, and the rest, released to the payer.
    captured_amount: str | None = None
    captured_amount_minor: str | None = None
    released_amount: str | None = None
    released_amount_minor: str | None = None
    payment_id: str | None = None
    event_id: str | None = None
    chain_tx_hash: str | None = None
    metadata: dict[str, Any] = {}
    audit: list[AuditEntry] = []


class TransferPage(Model):
    transfers: list[Transfer]
    next_cursor: str | None = None


# -- flows ----------------------------------------------------------------------------------------

D = TypeVar("D", bound=BaseModel)


class AccountDetails(Model):
    account_id: str


class LiquidityDetails(Model):
    liquidity_account_id: str


class PaymentDetails(Model):
    payer_id: str
    merchant_id: str
    fee: str
    fee_minor: str
    fee_payer: Literal["payer", "merchant"]
    refundable_account_id: str


class RefundDetails(Model):
    payer_id: str
    merchant_id: str


class AnchorAuthorizationDetails(Model):
    user_id: str
    hold_id: str
    obligation_hold_id: str
    obligation_ledger: int
    obligation_ledger_name: str
    timeout_s: int


class AnchorFulfillmentDetails(Model):
    hold_id: str
    obligation_hold_id: str
    released: str
    released_minor: str


class AnchorReleaseDetails(Model):
    hold_id: str
    obligation_hold_id: str


class EscrowLockDetails(Model):
    contract_id: str
    escrow_account_id: str
    payer_id: str


class EscrowReleaseDetails(Model):
    contract_id: str
    escrow_account_id: str
    merchant_id: str


class EscrowVoidDetails(Model):
    contract_id: str
    escrow_account_id: str
    payer_id: str


class SettlementDetails(Model):
    merchant_id: str
    settlement_id: str | None


class SettlementReversalDetails(Model):
    merchant_id: str
    settlement_id: str
    reversal_id: str


class ExchangeDetails(Model):
    source_account_id: str
    target_account_id: str
    target_ledger: int
    target_ledger_name: str
    target_amount: str
    target_amount_minor: str
    rate: str


class FlowResult(Model, Generic[D]):
    """A flow's outcome: every leg's engine result and the flow's own details."""

    flow: str
    event_id: str
    payment_id: str
    ledger: int
    ledger_name: str
    amount: str
    amount_minor: str
    replayed: bool
    transfers: list[TransferResult]
    details: D


class AnchorStatus(Model):
    hold_id: str
    obligation_hold_id: str
    user_id: str
    state: Literal["authorized", "fulfilled", "released", "expired"]
    transfer_code: str
    ledger: int
    ledger_name: str
    amount: str
    amount_minor: str


class Refundable(Model):
    payment_id: str
    payer_id: str
    merchant_id: str
    ledger: int
    ledger_name: str
    refundable: str
    refundable_minor: str


class Liquidity(Model):
    ledger: int
    ledger_name: str
    available: str
    available_minor: str


# -- prices ---------------------------------------------------------------------------------------


class Rate(Model):
    source_ledger: int
    source_ledger_name: str
    target_ledger: int
    target_ledger_name: str
    rate: str
    valid_from: datetime
    valid_until: datetime | None
    source: str
    set_by: str | None
    set_at: datetime | None


class Quote(Model):
    quote_id: str
    source_ledger: int
    source_ledger_name: str
    target_ledger: int
    target_ledger_name: str
    amount: str
    amount_minor: str
    rate: str
    target_amount: str
    target_amount_minor: str
    expires_at: datetime
    valid_for_s: int


class FeeSchedule(Model):
    account_id: str
    ledger: int
    ledger_name: str
    fee_bps: int
    fee_fixed: str
    fee_fixed_minor: str
    fee_payer: Literal["payer", "merchant"]
    platform_default: bool
    set_by: str | None
    set_at: datetime | None


# -- webhooks -------------------------------------------------------------------------------------


class WebhookSubscriptionInfo(Model):
    kinds: list[str]
    ledgers: list[int]
    owners: list[str]
    codes: list[int]


class Webhook(Model):
    """A webhook endpoint; `secret` only in the answer that made it (create, rotate)."""

    id: str
    url: str
    description: str
    owner_id: str | None
    subscription: WebhookSubscriptionInfo
    enabled: bool
    disabled_reason: str | None
    failure_count: int
    cursor: int
    rotating_until: datetime | None
    created_at: datetime | None
    secret: str | None = None


class WebhookAttempt(Model):
    """One delivery attempt of one event to an endpoint."""

    seq: int
    endpoint_id: str
    event_seq: int
    attempt: int
    status_code: int | None
    latency_ms: int
    error: str | None
    attempted_at: datetime
