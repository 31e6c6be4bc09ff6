"""The values the payment flows return and take: each flow's result, the references a payment
or escrow contract leaves in the service's records, a ledger's system accounts, and the small
enumerations (who pays a fee, where an anchor authorization is). Plain frozen dataclasses with no
behaviour beyond reading themselves, so the API and the price module can use them without the
engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tbledger.errors import ValidationError
from tbledger.service import TransferResult

__all__ = [
    "AnchorAuthorization",
    "AnchorFulfillment",
    "AnchorRelease",
    "AnchorState",
    "AnchorStatus",
    "ContractRef",
    "DepositResult",
    "EscrowLockResult",
    "EscrowReleaseResult",
    "EscrowResult",
    "EscrowVoidResult",
    "ExchangeResult",
    "FeePayer",
    "FlowResult",
    "LiquidityResult",
    "PaymentRef",
    "PaymentResult",
    "RefundResult",
    "SettlementResult",
    "SettlementReversalResult",
    "SystemAccounts",
    "WithdrawalResult",
]


class FeePayer(StrEnum):
    """Who pays a payment's fee: the payer (on top of the amount) or the merchant (out of it)."""

    PAYER = "payer"
    MERCHANT = "merchant"


class AnchorState(StrEnum):
    """Where an anchor authorization is, according to the audit trail."""

    AUTHORIZED = "authorized"
    FULFILLED = "fulfilled"
    RELEASED = "released"
    EXPIRED = "expired"

    @property
    def transfer_code(self) -> str:
        """The business transfer code of this state (chart name)."""
        if self is AnchorState.AUTHORIZED:
            return "ANCHOR_AUTHORIZATION"
        if self is AnchorState.FULFILLED:
            return "ANCHOR_FULFILLMENT"
        return "ANCHOR_EXPIRY"


@dataclass(frozen=True, slots=True)
class SystemAccounts:
    """A ledger's system account ids (None where the ledger has no such role)."""

    ledger: int
    treasury: int | None = None
    fee_pool: int | None = None
    buffer: int | None = None
    liquidity: int | None = None
    anchor: int | None = None

    def require(self, role: str) -> int:
        account_id: int | None = getattr(self, role)
        if account_id is None:
            raise ValidationError(f"ledger {self.ledger} has no {role} account")
        return account_id


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowResult:
    """What every flow returns: its ids, ledger, amount (minor units) and the engine's results."""

    event_id: str
    payment_id: str
    ledger: int
    amount: int
    transfers: tuple[TransferResult, ...]

    @property
    def replayed(self) -> bool:
        """True when this call replayed an earlier one (same idempotency key): nothing moved."""
        return bool(self.transfers) and all(t.replayed for t in self.transfers)

    @property
    def transfer_ids(self) -> tuple[int, ...]:
        return tuple(t.id for t in self.transfers)


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositResult(FlowResult):
    account_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WithdrawalResult(FlowResult):
    account_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LiquidityResult(FlowResult):
    liquidity_account_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentResult(FlowResult):
    """`amount` is what the merchant is paid before fees; `fee` went to the fee pool."""

    payer_id: int
    merchant_id: int
    fee: int
    fee_payer: FeePayer
    refundable_account_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentRef:
    """A payment as the service recorded it when the payment flow ran: who paid whom, on which
    ledger, and the account that holds what is left to refund."""

    payment_id: str
    payer_id: int
    merchant_id: int
    ledger: int
    refundable_account_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractRef:
    """An escrow contract as the service recorded it at its first lock."""

    contract_id: str
    payer_id: int
    ledger: int
    escrow_account_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundResult(FlowResult):
    """`payment_id` is the refunded payment's."""

    payer_id: int
    merchant_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchorAuthorization(FlowResult):
    """`hold_id` holds the user's funds on `ledger`; `obligation_hold_id` records the obligation."""

    user_id: int
    hold_id: int
    obligation_hold_id: int
    obligation_ledger: int
    timeout_s: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchorFulfillment(FlowResult):
    """`amount` was posted; `released` is the rest of the hold, returned to the user."""

    hold_id: int
    obligation_hold_id: int
    released: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchorRelease(FlowResult):
    """The hold was voided (ANCHOR_EXPIRY); `amount` went back to the user."""

    hold_id: int
    obligation_hold_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchorStatus:
    state: AnchorState
    hold_id: int
    obligation_hold_id: int
    amount: int

    @property
    def transfer_code(self) -> str:
        return self.state.transfer_code


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowResult(FlowResult):
    contract_id: str
    escrow_account_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowLockResult(EscrowResult):
    payer_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowReleaseResult(EscrowResult):
    merchant_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EscrowVoidResult(EscrowResult):
    payer_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementResult(FlowResult):
    """`settlement_id` is the transfer to reverse; None (and `amount` 0) if nothing was there."""

    merchant_id: int
    settlement_id: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementReversalResult(FlowResult):
    merchant_id: int
    settlement_id: int
    reversal_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeResult(FlowResult):
    """`ledger`/`amount` are the source side; `target_amount` was paid on `target_ledger`."""

    source_account_id: int
    target_account_id: int
    target_ledger: int
    target_amount: int
    rate: Decimal
