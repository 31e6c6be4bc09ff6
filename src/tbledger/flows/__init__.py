"""Payment flows over a chart of accounts: the spend engine.

`SpendEngine` turns business operations (deposit, pay, refund, hold for an anchor, escrow, settle,
exchange) into transfers on a `LedgerService`. Every flow validates all of its input first (ids,
amounts, ledgers, codes; `ValidationError`/`AmountError` before anything moves), then submits ONE
engine request: a linked chain when it has several legs, so it happens whole or not at all. Every
leg carries the flow's `event_id` and `payment_id` into the audit trail, plus metadata
``{"flow": ..., "leg": ...}``. Each flow returns a typed result (a `FlowResult`), or raises a
typed error when the engine refuses it. Limits that protect money (no overdraft, no over-refund,
no releasing more than was locked, no paying out liquidity the platform does not hold) are
account flags enforced by the engine itself, race-free; the flows never read a balance to decide
whether money may move.

Amounts. An ``int`` is minor units of the flow's ledger (1250 is 12.50 USD); a ``str`` or
`Decimal` is major units, converted exactly at the ledger's asset scale (``"12.50"``), and refused
with `AmountError` if it is not exact (`tbledger.amounts`). Floats and bools are refused. Flow
amounts must be positive; a fee may be zero. (Note the difference from `amounts.to_minor`, where
an int is whole major units: inside tbledger an int amount is always minor units.) Ledgers and
codes are resolved through the `Chart` by number or name; an unknown one raises
`UnknownLedgerError` / `UnknownCodeError`.

Prices. `exchange` takes its `rate`, and `pay` its `fee` and `fee_payer`, from the caller: a
library caller is the operator's own code, trusted and in-process. The HTTP API prices every call
from `tbledger.prices` (the operator's rates, quotes the platform issued, the fee schedule) and
never from a request (DESIGN §9).

Idempotency. A flow takes an `idempotency_key`; leg ``i`` is submitted with the key
``f"{key}:{i}"``, and when the caller gives no `event_id`/`payment_id` they are derived from the
key (uuid5), so a replay is the same request: the service returns the original results
(``replayed=True``, nothing moves twice), replays a refusal as the same error, and refuses the
same key with different input (`IdempotencyConflictError`). Flows whose amount is read from the
ledger (``amount=None`` on refund, escrow release/void, settlement) first look the key up in the
store and replay the amount recorded then. Without a key, every call is a new operation.

System accounts (``ensure_system_accounts``). Found again by a unique name in the account mapping
(``system:<role>:<ledger number>``), created once (a concurrent creator that loses the race on the
name re-reads it; the loser's engine account is left empty and unnamed), cached in memory:

==============  ===============  ============================================================
role            type             flags, and why
==============  ===============  ============================================================
treasury        treasury         credits_must_not_exceed_debits, history: the issuer of a
                                 ledger's money never takes back more than it issued
fee_pool        fee_pool         debits_must_not_exceed_credits, history: pays out only fees
buffer          system_buffer    credits_must_not_exceed_debits, history: issues memo units
                                 (refund allowances; obligation records) and never gets back
                                 more than it issued
liquidity       system_buffer    debits_must_not_exceed_credits, history: the platform's float
                                 for currency exchange; pays out only what it holds (funded from
                                 the treasury with `fund_liquidity`)
anchor          anchor           debits_must_not_exceed_credits, history: receives fulfilled
                                 obligations (fiat) and their records (obligation ledger), and
                                 pays out only what it received (`settle_merchant` sweeps it)
==============  ===============  ============================================================

A money ledger (fiat, crypto, stablecoin, token) gets treasury, fee_pool, buffer and liquidity,
plus anchor when an obligation ledger settles in it; an obligation ledger gets buffer and anchor.
Per-flow accounts: ``refundable:<payment id>`` (system_buffer, debits_must_not_exceed_credits) and
``escrow:<contract id>`` (escrow, debits_must_not_exceed_credits, history). Users and merchants
(`open_account`) keep their type's defaults: debits_must_not_exceed_credits and history, so the
engine never lets them be overdrawn. Note: system_buffer and anchor are debit-normal types, so a
`Balance.posted` of a refundable, liquidity or anchor account reads negative when it holds units;
`refundable_amount` and `liquidity_available` give the held amount directly.

Flows and the legs they write (``a -> b`` debits a, credits b; codes are the chart's):

* `deposit`: treasury -> user (DEPOSIT). `withdraw`: user -> treasury (WITHDRAWAL).
* `pay`: payer -> merchant `amount` (PAYMENT); the fee to the fee pool (FEE) from the payer
  (``fee_payer="payer"``: the payer is debited amount + fee) or from the merchant (``"merchant"``:
  the merchant nets amount - fee; fee <= amount); buffer -> ``refundable:<payment id>`` `amount`
  (PAYMENT, leg ``refund_allowance``). One atomic chain.
* `refund` (partial or full): ``refundable:<payment id>`` -> buffer (REFUND, leg
  ``refund_allowance``; first, so an over-refund is reported as one even when the merchant is
  short too), then merchant -> payer (REFUND). The refundable account has
  debits_must_not_exceed_credits, so the engine refuses refunding more in total than the payment's
  `amount` (`RefundExceedsPaymentError`), race-free across concurrent refunds. Fees are not
  refunded: the ceiling is what was paid for the goods. A payment id names one payer, merchant and
  ledger (reusing it for other accounts is an `IdempotencyConflictError`); two payments under one
  id between the same accounts share one ceiling, their sum, which is still money actually paid.
* `authorize_anchor`: two pending transfers with the same timeout, linked: user -> anchor on the
  fiat ledger the obligation settles in, and buffer -> anchor on the obligation ledger (both
  ANCHOR_AUTHORIZATION, same integer amount: the chart makes both scales equal).
  `fulfill_anchor`: posts both (all or part; a part releases the rest), linked.
  `release_anchor`: voids both, linked. Post and void transfers inherit the pending transfer's
  code (TigerBeetle refuses another), so their intents carry the business code in metadata:
  ``{"transfer_code": "ANCHOR_FULFILLMENT"}`` or ``{"transfer_code": "ANCHOR_EXPIRY",
  "reason": "released"}``. A timeout is expired by the engine itself and recorded by
  `LedgerService.expire_holds` (also `SpendEngine.expire_holds`) as an ``expired`` audit event on
  both holds. How a reader finds ANCHOR_EXPIRY in the audit trail: a hold whose intent code is
  ANCHOR_AUTHORIZATION and whose latest event is ``expired`` (timeout) or ``voided`` (its void
  intent says ``transfer_code: ANCHOR_EXPIRY``); `anchor_status` does exactly this.
* `escrow_lock`: user -> ``escrow:<contract id>`` (ESCROW_LOCK); `escrow_release`: escrow ->
  merchant (ESCROW_RELEASE); `escrow_void`: escrow -> the payer who locked it (ESCROW_VOID). Partial
  amounts are allowed; the escrow account's flag makes the engine refuse more than is locked.
* `settle_merchant`: merchant -> treasury (SETTLEMENT) of the merchant's whole available balance
  (or an explicit part). `reverse_settlement`: treasury -> merchant (SETTLEMENT_REVERSAL) of the
  settled amount, at most once per settlement (its idempotency key and event id are derived from
  the settlement's transfer id; a reversal refused for good, say by a freeze, may be retried).
* `exchange` (TigerBeetle's currency-exchange recipe): user's account on ledger A -> liquidity A
  (amount a), then liquidity B -> the user's account on ledger B (amount b), linked; code EXCHANGE
  if the chart has one, else PAYMENT. Rounding: ``b = floor(a * rate * 10**(scale_B - scale_A))``
  computed exactly in integers: always down, so the platform never pays out more than the rate
  allows; b == 0 is refused. `fund_liquidity`: treasury -> liquidity (DEPOSIT).

Settlement sweeps with one balancing transfer (``balancing_debit``, amount AMOUNT_MAX): the
engine moves exactly the merchant's available balance at that instant, race-free. The service
records the amount actually moved in the outcome event's detail, so the audit trail alone can
rebuild every balance, and a reversal gives back what the engine recorded for the settlement.

Resolving several holds atomically (anchor fulfillment and release) is a linked chain of post
or void transfers (`LedgerService.resolve_pending_transfers`: the same persist/submit/audit steps
as `post_pending_transfer`).

A flow that needs a per-flow account (a payment's refundable account, a contract's escrow) creates
it before submitting, so a payment to an unknown merchant leaves an empty, named account behind
(and a retry with the same payment id reuses it); no money moves.

Errors when the engine refuses (for a chain, the first member whose status is not
``linked_event_failed`` decides): exceeds_credits -> `InsufficientBalanceError` (or
`RefundExceedsPaymentError` on a refundable account, `InsufficientLiquidityError` on a liquidity
account); a closed account -> `AccountFrozenError`, code ``account_frozen`` when it is frozen (else
the engine's ``*_already_closed``); an unknown account ->
`AccountNotFoundError`; anything else -> `TransferFailedError` with the status as `code`. A
payment, contract, settlement or hold that the store does not know -> `UnknownReferenceError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

import tigerbeetle as tb

from tbledger.amounts import AMOUNT_TEXT_CHARS_MAX, check_minor, ledger_to_minor
from tbledger.balances import AccountType, Balance
from tbledger.chart import Chart, Ledger, LedgerKind
from tbledger.errors import (
    AccountFrozenError,
    AccountNotFoundError,
    AmountError,
    ConfigurationError,
    DuplicateRecordError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InsufficientLiquidityError,
    LimitExceededError,
    RefundExceedsPaymentError,
    TbledgerError,
    TigerBeetleError,
    TransferFailedError,
    UnknownCodeError,
    UnknownReferenceError,
    ValidationError,
)
from tbledger.ids import format_id, parse_id, parse_object_id
from tbledger.limits import U32_MAX
from tbledger.model import AccountRecord, EventKind, TransferIntent
from tbledger.service import (
    LedgerService,
    PendingResolution,
    Refusal,
    TransferRequest,
    TransferResult,
    refusal_of,
)

__all__ = [
    "FLOW_TEXT_CHARS_MAX",
    "RATE_MAGNITUDE_MAX",
    "REVERSAL_ATTEMPTS_MAX",
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
    "SpendEngine",
    "SystemAccounts",
    "WithdrawalResult",
    "exact_rate",
    "exchange_amount",
]

# Why: event ids, payment ids, contract ids and idempotency keys are stored in 255-character
# columns with a prefix or suffix added ("refundable:", "escrow:", ":12"); 200 leaves room.
FLOW_TEXT_CHARS_MAX: Final = 200

# Why: a rate is read like an amount (no exponent, no sign); its magnitude is bounded so that the
# exact integer arithmetic of an exchange stays small (a rate of 10**40 is a typo, not a price).
RATE_MAGNITUDE_MAX: Final = 40

# Why: a reversal refused for good (a frozen merchant) may be retried with the next attempt's key;
# a settlement refused this often needs a person, not another loop.
REVERSAL_ATTEMPTS_MAX: Final = 100

# uuid5 namespace of ids derived from an idempotency key (fixed: derived ids must be stable across
# processes and releases, or a replay would no longer be the same request).
_NAMESPACE: Final = uuid.UUID("5b0f7a44-3c4e-4d0b-9a55-8f3f0c2c7e1d")

_RATE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_AF = tb.AccountFlags
_NOT_OVERDRAWN = _AF.DEBITS_MUST_NOT_EXCEED_CREDITS
_NOT_OVERISSUED = _AF.CREDITS_MUST_NOT_EXCEED_DEBITS
# Resolution transfers inherit ledger and code; the sentinel amount posts a hold in full.
_FULL = tb.AMOUNT_MAX

_TREASURY = "treasury"
_FEE_POOL = "fee_pool"
_BUFFER = "buffer"
_LIQUIDITY = "liquidity"
_ANCHOR = "anchor"


# -- values ---------------------------------------------------------------------------------------


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


# -- internals ------------------------------------------------------------------------------------


class _Shortfall(StrEnum):
    """What an exceeds_credits on a leg's debit account means to the caller."""

    FUNDS = "funds"
    REFUND = "refund"
    LIQUIDITY = "liquidity"


@dataclass(frozen=True, slots=True)
class _Leg:
    name: str
    debit: int
    credit: int
    amount: int
    ledger: int
    code: int
    pending: bool = False
    timeout_s: int = 0
    shortfall: _Shortfall = _Shortfall.FUNDS
    # `amount` is an upper bound: the engine moves at most the debit account's balance.
    balancing_debit: bool = False


@dataclass(frozen=True, slots=True)
class _Resolution:
    name: str
    hold: TransferIntent
    post: bool
    amount: int  # for a post: minor units, or _FULL
    metadata: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Context:
    """One flow call: its kind, ids and idempotency key."""

    flow: str
    event_id: str
    payment_id: str
    key: str | None

    def leg_key(self, index: int) -> str | None:
        return None if self.key is None else f"{self.key}:{index}"

    def control(self, leg: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The leg's control facts (flow, leg, and the flow's own extras): recorded by the
        service apart from any caller's metadata, and what the flows later read."""
        return {"flow": self.flow, "leg": leg, **(extra or {})}


@dataclass(frozen=True, slots=True)
class _Role:
    account_type: AccountType
    flags: tb.AccountFlags


_ROLES: Final[Mapping[str, _Role]] = {
    _TREASURY: _Role(AccountType.TREASURY, _NOT_OVERISSUED | _AF.HISTORY),
    _FEE_POOL: _Role(AccountType.FEE_POOL, _NOT_OVERDRAWN | _AF.HISTORY),
    _BUFFER: _Role(AccountType.SYSTEM_BUFFER, _NOT_OVERISSUED | _AF.HISTORY),
    _LIQUIDITY: _Role(AccountType.SYSTEM_BUFFER, _NOT_OVERDRAWN | _AF.HISTORY),
    _ANCHOR: _Role(AccountType.ANCHOR, _NOT_OVERDRAWN | _AF.HISTORY),
}
_REFUNDABLE_FLAGS: Final = _NOT_OVERDRAWN
_ANCHOR_STATES: Final[Mapping[EventKind, AnchorState]] = {
    EventKind.POSTED: AnchorState.FULFILLED,
    EventKind.VOIDED: AnchorState.RELEASED,
    EventKind.EXPIRED: AnchorState.EXPIRED,
}
_ESCROW_FLAGS: Final = _NOT_OVERDRAWN | _AF.HISTORY
# The `control` kinds of flow accounts.
_REFUNDABLE_KIND: Final = "refundable"
_ESCROW_KIND: Final = "escrow"


def _scoped_name(kind: str, scope: str, ref: str) -> str:
    """The unique name of a flow account: its kind, its owner's namespace (hashed, so an owner
    id of any length or spelling fits the column) and the payment or contract id."""
    digest = hashlib.blake2b(scope.encode(), digest_size=8).hexdigest()
    return f"{kind}:{digest}:{ref}"


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, not {type(value).__name__}")
    if not 1 <= len(value) <= FLOW_TEXT_CHARS_MAX:
        raise ValidationError(f"{name} must be 1 to {FLOW_TEXT_CHARS_MAX} characters")
    return value


def _account_id(name: str, value: object) -> int:
    return parse_object_id(value, name)


def _minor(ledger: Ledger, value: object, what: str, *, allow_zero: bool = False) -> int:
    """An amount in `ledger`'s minor units: an int as is, a str or Decimal converted exactly."""
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            minor = check_minor(value, allow_zero=allow_zero)
        else:
            # Refuses bools, floats and other types, each with its reason.
            minor = ledger_to_minor(value, ledger, allow_zero=allow_zero)  # type: ignore[arg-type]
    except AmountError as exc:
        raise AmountError(f"{what}: {exc}") from exc
    if minor == _FULL:
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


def _derived(kind: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{key}"))


def _credit_available(balance: Balance) -> int:
    """What debits_must_not_exceed_credits still lets the account pay, from the raw counters."""
    return balance.credits_posted - balance.debits_posted - balance.debits_pending


# -- the engine -----------------------------------------------------------------------------------


class SpendEngine:
    """Payment flows on a connected `LedgerService`, over a chart of accounts.

    ``engine = SpendEngine(service)``; then ``await engine.deposit(user, "12.50", ledger="USD")``.
    System accounts are created on first use (or up front with `ensure_system_accounts`).
    """

    def __init__(self, service: LedgerService, chart: Chart | None = None) -> None:
        self.service = service
        self.chart = chart if chart is not None else Chart.default()
        self._systems: dict[int, SystemAccounts] = {}
        # Single flight per account name: concurrent callers wait for one creation.
        self._creating: dict[str, asyncio.Future[AccountRecord]] = {}

    # -- accounts -------------------------------------------------------------------------------

    async def ensure_system_accounts(
        self, ledgers: Iterable[int | str] | None = None
    ) -> dict[int, SystemAccounts]:
        """Create (once) and return the system accounts of `ledgers` (default: every ledger)."""
        chosen = (
            list(self.chart.ledgers) if ledgers is None else [self.chart.ledger(k) for k in ledgers]
        )
        return {ledger.code: await self._system(ledger) for ledger in chosen}

    async def open_account(
        self,
        owner_id: str,
        *,
        ledger: int | str,
        account_type: AccountType | str = AccountType.USER,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Create a user or merchant account with its type's default flags; return its id."""
        try:
            kind = AccountType(account_type)
        except ValueError:
            raise ValidationError(f"unknown account type {account_type!r}") from None
        if kind not in (AccountType.USER, AccountType.MERCHANT):
            raise ValidationError(f"open_account opens users and merchants, not {kind}")
        book = self._money_ledger(ledger)
        info = await self.service.create_account(
            owner_id=_text("owner_id", owner_id),
            account_type=kind,
            ledger=book.code,
            code=self._account_code(kind),
            metadata=metadata,
        )
        return info.id

    async def refundable_amount(self, payment_id: str, *, payer: int | str | None = None) -> int:
        """What is left to refund of a payment, in minor units (`payer` as for `refund`)."""
        found = await self.payment(payment_id, payer=payer)
        return _credit_available(await self.service.get_balance(found.refundable_account_id))

    async def payments(self, payment_id: str) -> list[PaymentRef]:
        """Every payment recorded under this id, from the service's own records (one per owner
        that used the id: ids are scoped to the payer's owner)."""
        records = await self.service.get_accounts_by_flow_ref(_text("payment_id", payment_id))
        return [
            PaymentRef(
                payment_id=payment_id,
                payer_id=parse_id(r.control["payer"]),
                merchant_id=parse_id(r.control["merchant"]),
                ledger=r.ledger,
                refundable_account_id=r.id,
            )
            for r in records
            if r.control.get("kind") == _REFUNDABLE_KIND
            and {"payer", "merchant"} <= r.control.keys()
        ]

    async def payment(self, payment_id: str, *, payer: int | str | None = None) -> PaymentRef:
        """The payment recorded under this id (and paid by `payer`, if given).

        `UnknownReferenceError` if there is none; `ValidationError` if several owners' payments
        share the id and `payer` does not say which."""
        payer_id = None if payer is None else _account_id("payer", payer)
        found = [
            p for p in await self.payments(payment_id) if payer_id is None or p.payer_id == payer_id
        ]
        if not found:
            raise UnknownReferenceError(
                f"no payment {payment_id!r}",
                code="payment_not_found",
                details={"payment_id": payment_id},
            )
        if len(found) > 1:
            raise ValidationError(
                f"several payments use the id {payment_id!r}: name the payer account"
            )
        return found[0]

    async def liquidity_available(self, ledger: int | str) -> int:
        """What the ledger's liquidity account can pay out in exchanges, in minor units."""
        system = await self._system(self._money_ledger(ledger))
        balance = await self.service.get_balance(system.require(_LIQUIDITY))
        return _credit_available(balance)

    async def expire_holds(self) -> int:
        """Record holds past their timeout as ``expired`` (`LedgerService.expire_holds`)."""
        return await self.service.expire_holds()

    # -- deposit, withdrawal, liquidity ---------------------------------------------------------

    async def deposit(
        self,
        account: int | str,
        amount: int | str | Decimal,
        *,
        ledger: int | str,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> DepositResult:
        """Money enters the platform: treasury -> `account` (DEPOSIT)."""
        book = self._money_ledger(ledger)
        account_id = _account_id("account", account)
        minor = _minor(book, amount, "amount")
        ctx = self._context("deposit", idempotency_key, event_id, payment_id)
        system = await self._system(book)
        leg = _Leg(
            "deposit", system.require(_TREASURY), account_id, minor, book.code, self._tc("DEPOSIT")
        )
        results = await self._submit(ctx, [leg])
        return DepositResult(
            **self._base(ctx, book, minor, results),
            account_id=account_id,
        )

    async def withdraw(
        self,
        account: int | str,
        amount: int | str | Decimal,
        *,
        ledger: int | str,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> WithdrawalResult:
        """Money leaves the platform: `account` -> treasury (WITHDRAWAL)."""
        book = self._money_ledger(ledger)
        account_id = _account_id("account", account)
        minor = _minor(book, amount, "amount")
        ctx = self._context("withdrawal", idempotency_key, event_id, payment_id)
        system = await self._system(book)
        leg = _Leg(
            "withdrawal",
            account_id,
            system.require(_TREASURY),
            minor,
            book.code,
            self._tc("WITHDRAWAL"),
        )
        results = await self._submit(ctx, [leg])
        return WithdrawalResult(**self._base(ctx, book, minor, results), account_id=account_id)

    async def fund_liquidity(
        self,
        amount: int | str | Decimal,
        *,
        ledger: int | str,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> LiquidityResult:
        """Issue float for exchanges: treasury -> the ledger's liquidity account (DEPOSIT)."""
        book = self._money_ledger(ledger)
        minor = _minor(book, amount, "amount")
        ctx = self._context("liquidity_funding", idempotency_key, event_id, payment_id)
        system = await self._system(book)
        liquidity = system.require(_LIQUIDITY)
        leg = _Leg(
            "liquidity_funding",
            system.require(_TREASURY),
            liquidity,
            minor,
            book.code,
            self._tc("DEPOSIT"),
        )
        results = await self._submit(ctx, [leg])
        return LiquidityResult(
            **self._base(ctx, book, minor, results), liquidity_account_id=liquidity
        )

    # -- payments and refunds -------------------------------------------------------------------

    async def pay(
        self,
        payer: int | str,
        merchant: int | str,
        amount: int | str | Decimal,
        *,
        ledger: int | str,
        fee: int | str | Decimal = 0,
        fee_payer: FeePayer | str = FeePayer.PAYER,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> PaymentResult:
        """Pay a merchant, with a fee to the fee pool; atomic. See the module docstring."""
        book = self._money_ledger(ledger)
        payer_id = _account_id("payer", payer)
        merchant_id = _account_id("merchant", merchant)
        if payer_id == merchant_id:
            raise ValidationError("payer and merchant must be different accounts")
        minor = _minor(book, amount, "amount")
        fee_minor = _minor(book, fee, "fee", allow_zero=True)
        try:
            who = FeePayer(fee_payer)
        except ValueError:
            raise ValidationError(
                f"fee_payer must be 'payer' or 'merchant', not {fee_payer!r}"
            ) from None
        if who is FeePayer.MERCHANT and fee_minor > minor:
            raise ValidationError("a fee paid by the merchant cannot exceed the payment amount")
        ctx = self._context("payment", idempotency_key, event_id, payment_id)
        system = await self._system(book)
        # The payment id is the payer's owner's: another owner's payment with the same id is
        # another payment, and cannot block or be confused with this one (DESIGN §9).
        scope = await self._scope(payer_id)
        refundable = await self._named_account(
            _scoped_name("refundable", scope, ctx.payment_id),
            account_type=AccountType.SYSTEM_BUFFER,
            ledger=book.code,
            flags=_REFUNDABLE_FLAGS,
            control={
                "kind": _REFUNDABLE_KIND,
                "payment_id": ctx.payment_id,
                "scope": scope,
                "payer": format_id(payer_id),
                "merchant": format_id(merchant_id),
            },
            conflict=IdempotencyConflictError,
            flow_ref=ctx.payment_id,
        )
        legs = [_Leg("payment", payer_id, merchant_id, minor, book.code, self._tc("PAYMENT"))]
        if fee_minor:
            fee_from = payer_id if who is FeePayer.PAYER else merchant_id
            legs.append(
                _Leg(
                    "fee",
                    fee_from,
                    system.require(_FEE_POOL),
                    fee_minor,
                    book.code,
                    self._tc("FEE"),
                )
            )
        legs.append(
            _Leg(
                "refund_allowance",
                system.require(_BUFFER),
                refundable.id,
                minor,
                book.code,
                self._tc("PAYMENT"),
            )
        )
        results = await self._submit(ctx, legs)
        return PaymentResult(
            **self._base(ctx, book, minor, results),
            payer_id=payer_id,
            merchant_id=merchant_id,
            fee=fee_minor,
            fee_payer=who,
            refundable_account_id=refundable.id,
        )

    async def refund(
        self,
        payment_id: str,
        amount: int | str | Decimal | None = None,
        *,
        payer: int | str | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
    ) -> RefundResult:
        """Refund all (`amount` None: what is left) or part of a payment; never more in total.

        Payment ids are scoped to the payer's owner; where several owners' payments share the
        id, `payer` (the paying account) says which one."""
        payment_id = _text("payment_id", payment_id)
        key = self._key(idempotency_key)
        found = await self.payment(payment_id, payer=payer)
        record = await self._flow_account(found.refundable_account_id)
        book = self.chart.ledger(record.ledger)
        payer_id = found.payer_id
        merchant_id = found.merchant_id
        if amount is not None:
            minor = _minor(book, amount, "amount")
        else:
            replayed = await self._replayed_amount(key)
            if replayed is not None:
                minor = replayed
            else:
                minor = _credit_available(await self.service.get_balance(record.id))
                if minor <= 0:
                    raise RefundExceedsPaymentError(
                        f"payment {payment_id} has nothing left to refund",
                        refundable=0,
                        requested=0,
                        code="nothing_to_refund",
                        details={"payment_id": payment_id},
                    )
        ctx = self._context("refund", key, event_id, payment_id)
        system = await self._system(book)
        code = self._tc("REFUND")
        legs = [
            _Leg(
                "refund_allowance",
                record.id,
                system.require(_BUFFER),
                minor,
                book.code,
                code,
                shortfall=_Shortfall.REFUND,
            ),
            _Leg("refund", merchant_id, payer_id, minor, book.code, code),
        ]
        results = await self._submit(ctx, legs)
        return RefundResult(
            **self._base(ctx, book, minor, results), payer_id=payer_id, merchant_id=merchant_id
        )

    # -- anchors --------------------------------------------------------------------------------

    async def authorize_anchor(
        self,
        user: int | str,
        amount: int | str | Decimal,
        *,
        obligation: int | str,
        timeout_s: int,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> AnchorAuthorization:
        """Hold a user's funds for a grocery/utility/fuel obligation, recorded on its ledger.

        `obligation` is an obligation ledger (``"GROCERY_OBLIGATION"``, ``1001``, or the short
        ``"grocery"``); the funds are held on the ledger it settles in, for `timeout_s` seconds.
        """
        obligation_book = self._obligation_ledger(obligation)
        assert obligation_book.settles_in is not None  # the chart guarantees it
        fiat = self.chart.ledger(obligation_book.settles_in)
        user_id = _account_id("user", user)
        minor = _minor(fiat, amount, "amount")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int):
            raise ValidationError("timeout_s must be an int number of seconds")
        if not 1 <= timeout_s <= U32_MAX:
            raise ValidationError(f"timeout_s must be in [1, {U32_MAX}], got {timeout_s}")
        ctx = self._context("anchor_authorization", idempotency_key, event_id, payment_id)
        fiat_system = await self._system(fiat)
        obligation_system = await self._system(obligation_book)
        code = self._tc("ANCHOR_AUTHORIZATION")
        legs = [
            _Leg(
                "authorization",
                user_id,
                fiat_system.require(_ANCHOR),
                minor,
                fiat.code,
                code,
                pending=True,
                timeout_s=timeout_s,
            ),
            _Leg(
                "obligation",
                obligation_system.require(_BUFFER),
                obligation_system.require(_ANCHOR),
                minor,
                obligation_book.code,
                code,
                pending=True,
                timeout_s=timeout_s,
            ),
        ]
        # A hold that times out creates no transfer; the service's expiry event carries this label
        # so the audit trail names it ANCHOR_EXPIRY, like an explicit release.
        results = await self._submit(ctx, legs, {"expiry_code": "ANCHOR_EXPIRY"})
        return AnchorAuthorization(
            **self._base(ctx, fiat, minor, results),
            user_id=user_id,
            hold_id=results[0].id,
            obligation_hold_id=results[1].id,
            obligation_ledger=obligation_book.code,
            timeout_s=timeout_s,
        )

    async def fulfill_anchor(
        self,
        authorization: AnchorAuthorization | int | str,
        amount: int | str | Decimal | None = None,
        *,
        idempotency_key: str | None = None,
        event_id: str | None = None,
    ) -> AnchorFulfillment:
        """Post an authorization: all of it (`amount` None) or part (the rest is released)."""
        key = self._key(idempotency_key)
        hold, record = await self._anchor_holds(authorization)
        book = self.chart.ledger(hold.ledger)
        minor = hold.amount if amount is None else _minor(book, amount, "amount")
        if minor > hold.amount:
            raise AmountError(f"amount {minor} is more than the {hold.amount} authorized")
        ctx = self._context("anchor_fulfillment", key, event_id, hold.payment_id)
        posted = _FULL if minor == hold.amount else minor
        extra = {"transfer_code": "ANCHOR_FULFILLMENT", "released": str(hold.amount - minor)}
        results = await self._resolve_holds(
            ctx,
            [
                _Resolution("fulfillment", hold, True, posted, extra),
                _Resolution("obligation_fulfillment", record, True, posted, extra),
            ],
        )
        return AnchorFulfillment(
            **self._base(ctx, book, minor, results),
            hold_id=hold.id,
            obligation_hold_id=record.id,
            released=hold.amount - minor,
        )

    async def release_anchor(
        self,
        authorization: AnchorAuthorization | int | str,
        *,
        idempotency_key: str | None = None,
        event_id: str | None = None,
    ) -> AnchorRelease:
        """Release an authorization early: void both holds (ANCHOR_EXPIRY in the audit trail)."""
        key = self._key(idempotency_key)
        hold, record = await self._anchor_holds(authorization)
        book = self.chart.ledger(hold.ledger)
        ctx = self._context("anchor_release", key, event_id, hold.payment_id)
        extra = {"transfer_code": "ANCHOR_EXPIRY", "reason": "released"}
        results = await self._resolve_holds(
            ctx,
            [
                _Resolution("release", hold, False, 0, extra),
                _Resolution("obligation_release", record, False, 0, extra),
            ],
        )
        return AnchorRelease(
            **self._base(ctx, book, hold.amount, results),
            hold_id=hold.id,
            obligation_hold_id=record.id,
        )

    async def anchor_status(self, authorization: AnchorAuthorization | int | str) -> AnchorStatus:
        """The authorization's state from the audit trail (ANCHOR_EXPIRY for voided or expired).

        A timeout shows once `expire_holds` (or the service's recovery loop) has recorded it; a
        hold whose outcome is not recorded yet reads as authorized.
        """
        hold, record = await self._anchor_holds(authorization)
        latest = (await self.service.current_status([hold.id])).get(hold.id)
        if latest is not None and latest.kind is EventKind.FAILED:
            raise UnknownReferenceError(
                f"anchor authorization {format_id(hold.id)} was refused; it never held anything",
                code="authorization_refused",
                details={"hold_id": format_id(hold.id), "status": latest.status},
            )
        state = AnchorState.AUTHORIZED
        if latest is not None:
            state = _ANCHOR_STATES.get(latest.kind, AnchorState.AUTHORIZED)
        return AnchorStatus(
            state=state, hold_id=hold.id, obligation_hold_id=record.id, amount=hold.amount
        )

    # -- escrow ---------------------------------------------------------------------------------

    async def escrow_lock(
        self,
        contract_id: str,
        payer: int | str,
        amount: int | str | Decimal,
        *,
        ledger: int | str,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> EscrowLockResult:
        """Lock a payer's funds for a contract: payer -> ``escrow:<contract_id>`` (ESCROW_LOCK)."""
        contract_id = _text("contract_id", contract_id)
        book = self._money_ledger(ledger)
        payer_id = _account_id("payer", payer)
        minor = _minor(book, amount, "amount")
        ctx = self._context("escrow_lock", idempotency_key, event_id, payment_id)
        # Contract ids are the payer's owner's, as payment ids are.
        scope = await self._scope(payer_id)
        escrow = await self._named_account(
            _scoped_name("escrow", scope, contract_id),
            account_type=AccountType.ESCROW,
            ledger=book.code,
            flags=_ESCROW_FLAGS,
            control={
                "kind": _ESCROW_KIND,
                "contract_id": contract_id,
                "scope": scope,
                "payer": format_id(payer_id),
            },
            conflict=ValidationError,
            flow_ref=contract_id,
        )
        extra = {"contract_id": contract_id}
        leg = _Leg("lock", payer_id, escrow.id, minor, book.code, self._tc("ESCROW_LOCK"))
        results = await self._submit(ctx, [leg], extra)
        return EscrowLockResult(
            **self._base(ctx, book, minor, results),
            contract_id=contract_id,
            escrow_account_id=escrow.id,
            payer_id=payer_id,
        )

    async def escrow_release(
        self,
        contract_id: str,
        merchant: int | str,
        amount: int | str | Decimal | None = None,
        *,
        payer: int | str | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> EscrowReleaseResult:
        """Release escrowed funds to a merchant (ESCROW_RELEASE): all that is left, or part.

        Contract ids are scoped to the payer's owner; `payer` says which contract where several
        share the id."""
        contract_id = _text("contract_id", contract_id)
        merchant_id = _account_id("merchant", merchant)
        key = self._key(idempotency_key)
        escrow = await self._flow_account(
            (await self.contract(contract_id, payer=payer)).escrow_account_id
        )
        book = self.chart.ledger(escrow.ledger)
        minor = await self._escrow_amount(escrow, book, amount, key)
        ctx = self._context("escrow_release", key, event_id, payment_id)
        leg = _Leg("release", escrow.id, merchant_id, minor, book.code, self._tc("ESCROW_RELEASE"))
        results = await self._submit(ctx, [leg], {"contract_id": contract_id})
        return EscrowReleaseResult(
            **self._base(ctx, book, minor, results),
            contract_id=contract_id,
            escrow_account_id=escrow.id,
            merchant_id=merchant_id,
        )

    async def escrow_void(
        self,
        contract_id: str,
        amount: int | str | Decimal | None = None,
        *,
        payer: int | str | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> EscrowVoidResult:
        """Return escrowed funds to the payer (ESCROW_VOID): all that is left, or part
        (`payer` as for `escrow_release`)."""
        contract_id = _text("contract_id", contract_id)
        key = self._key(idempotency_key)
        found = await self.contract(contract_id, payer=payer)
        escrow = await self._flow_account(found.escrow_account_id)
        book = self.chart.ledger(escrow.ledger)
        payer_id = found.payer_id
        minor = await self._escrow_amount(escrow, book, amount, key)
        ctx = self._context("escrow_void", key, event_id, payment_id)
        leg = _Leg("void", escrow.id, payer_id, minor, book.code, self._tc("ESCROW_VOID"))
        results = await self._submit(ctx, [leg], {"contract_id": contract_id})
        return EscrowVoidResult(
            **self._base(ctx, book, minor, results),
            contract_id=contract_id,
            escrow_account_id=escrow.id,
            payer_id=payer_id,
        )

    # -- settlement -----------------------------------------------------------------------------

    async def settle_merchant(
        self,
        merchant: int | str,
        *,
        ledger: int | str,
        amount: int | str | Decimal | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> SettlementResult:
        """Sweep a merchant's whole available balance (or `amount` of it) to the treasury.

        Without `amount`: one balancing transfer (SETTLEMENT, ``balancing_debit``, amount
        AMOUNT_MAX): the engine moves exactly what the merchant has at that instant, race-free; the
        amount moved is read back from the engine (and kept in the audit trail). Nothing
        available: the settlement moves 0.
        """
        book = self._money_ledger(ledger)
        merchant_id = _account_id("merchant", merchant)
        key = self._key(idempotency_key)
        sweep = amount is None
        minor = tb.AMOUNT_MAX if sweep else _minor(book, amount, "amount")
        if sweep:
            # Unknown accounts raise AccountNotFoundError here, before anything moves.
            await self.service.get_balance(merchant_id)
        ctx = self._context("settlement", key, event_id, payment_id)
        system = await self._system(book)
        leg = _Leg(
            "settlement",
            merchant_id,
            system.require(_TREASURY),
            minor,
            book.code,
            self._tc("SETTLEMENT"),
            balancing_debit=sweep,
        )
        results = await self._submit(ctx, [leg])
        moved = await self._moved(results[0].id) if sweep else minor
        return SettlementResult(
            **self._base(ctx, book, moved, results),
            merchant_id=merchant_id,
            settlement_id=results[0].id,
        )

    async def _moved(self, transfer_id: int) -> int:
        """The amount the engine recorded for a transfer (a balancing transfer's actual move)."""
        found = await self.service.get_transfer(transfer_id)
        if found is None:  # pragma: no cover - it was just created
            raise UnknownReferenceError(f"no transfer {format_id(transfer_id)} in the engine")
        return int(found.amount)

    async def reverse_settlement(
        self, settlement_id: int | str, *, event_id: str | None = None
    ) -> SettlementReversalResult:
        """Give a settlement back: treasury -> merchant of the settled amount, at most once."""
        settlement = _account_id("settlement_id", settlement_id)
        intent = await self.service.get_intent(settlement)
        # The service's own label and the shape only the flow makes: the SETTLEMENT code,
        # crediting the ledger's treasury. A caller's metadata is never read (DESIGN §9).
        if (
            intent is None
            or intent.control.get("flow") != "settlement"
            or intent.code != self._tc("SETTLEMENT")
            or not await self._credits_role(intent, _TREASURY)
        ):
            raise UnknownReferenceError(
                f"no settlement {format_id(settlement)}",
                code="settlement_not_found",
                details={"settlement_id": format_id(settlement)},
            )
        latest = (await self.service.current_status([settlement])).get(settlement)
        if latest is None or latest.kind is not EventKind.POSTED:
            raise ValidationError(f"settlement {format_id(settlement)} did not happen")
        book = self.chart.ledger(intent.ledger)
        key = await self._reversal_key(settlement)
        ctx = self._context("settlement_reversal", key, event_id, intent.payment_id)
        settled = await self._moved(settlement)
        leg = _Leg(
            "settlement_reversal",
            intent.credit_account_id,
            intent.debit_account_id,
            settled,
            book.code,
            self._tc("SETTLEMENT_REVERSAL"),
        )
        results = await self._submit(ctx, [leg], {"settlement_id": format_id(settlement)})
        return SettlementReversalResult(
            **self._base(ctx, book, settled, results),
            merchant_id=intent.debit_account_id,
            settlement_id=settlement,
            reversal_id=results[0].id,
        )

    async def _reversal_key(self, settlement: int) -> str:
        """The idempotency key of a settlement's reversal: derived from its id, so a second
        reversal replays the first (or is a conflict), never a second payout.

        Attempt ``n`` gets key ``settlement_reversal:<id>:<n>``; a new attempt is made only after
        every earlier one was refused for good (a ``failed`` outcome is final: the engine never
        applies that transfer later), e.g. to retry once a frozen merchant is unfrozen. Concurrent
        callers compute the same attempt number and so share one key: one submits, the others
        replay it.
        """
        service = self.service
        for attempt in range(REVERSAL_ATTEMPTS_MAX):
            key = f"settlement_reversal:{format_id(settlement)}:{attempt}"
            stored = await service.find_by_idempotency_key(f"{key}:0")
            if stored is None:
                return key
            latest = (await service.current_status([stored.id])).get(stored.id)
            if latest is None or latest.kind is not EventKind.FAILED:
                return key
        raise LimitExceededError(
            f"settlement {format_id(settlement)} was refused {REVERSAL_ATTEMPTS_MAX} times; "
            "see its audit trail"
        )

    # -- exchange -------------------------------------------------------------------------------

    async def exchange(
        self,
        source: int | str,
        target: int | str,
        amount: int | str | Decimal,
        *,
        source_ledger: int | str,
        target_ledger: int | str,
        rate: Decimal | str | int,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> ExchangeResult:
        """Exchange `amount` on `source_ledger` into `target_ledger` at `rate` (rounded down).

        `rate` is units of the target per unit of the source (major units: 0.92 EUR per USD).
        """
        book = self._money_ledger(source_ledger)
        other = self._money_ledger(target_ledger)
        if book.code == other.code:
            raise ValidationError("an exchange needs two different ledgers")
        source_id = _account_id("source", source)
        target_id = _account_id("target", target)
        minor = _minor(book, amount, "amount")
        exact_rate = _rate(rate)
        target_minor = exchange_amount(minor, exact_rate, book.asset_scale, other.asset_scale)
        if target_minor == 0:
            raise AmountError(
                f"{minor} minor units at rate {exact_rate} is less than one minor unit of "
                f"{other.name}; nothing would be paid out"
            )
        if target_minor >= _FULL:
            raise AmountError("the exchanged amount is more than 2^128-2 minor units")
        ctx = self._context("exchange", idempotency_key, event_id, payment_id)
        source_system = await self._system(book)
        target_system = await self._system(other)
        code = self._exchange_code()
        legs = [
            _Leg(
                "exchange_out", source_id, source_system.require(_LIQUIDITY), minor, book.code, code
            ),
            _Leg(
                "exchange_in",
                target_system.require(_LIQUIDITY),
                target_id,
                target_minor,
                other.code,
                code,
                shortfall=_Shortfall.LIQUIDITY,
            ),
        ]
        results = await self._submit(ctx, legs, {"rate": str(exact_rate)})
        return ExchangeResult(
            **self._base(ctx, book, minor, results),
            source_account_id=source_id,
            target_account_id=target_id,
            target_ledger=other.code,
            target_amount=target_minor,
            rate=exact_rate,
        )

    # -- chart ----------------------------------------------------------------------------------

    def _money_ledger(self, key: int | str) -> Ledger:
        ledger = self.chart.ledger(key)
        if ledger.kind is LedgerKind.OBLIGATION:
            raise ValidationError(
                f"{ledger.name} is an obligation ledger; money moves on money ledgers"
            )
        return ledger

    def _obligation_ledger(self, key: int | str) -> Ledger:
        try:
            ledger = self.chart.ledger(key)
        except LookupError:
            if not isinstance(key, str):
                raise
            # The short name: "grocery" for GROCERY_OBLIGATION.
            ledger = self.chart.ledger(f"{key}_OBLIGATION")
        if ledger.kind is not LedgerKind.OBLIGATION:
            raise ValidationError(f"{ledger.name} is not an obligation ledger")
        return ledger

    def _tc(self, name: str) -> int:
        return self.chart.transfer_code(name).code

    def _exchange_code(self) -> int:
        try:
            return self._tc("EXCHANGE")
        except UnknownCodeError:
            return self._tc("PAYMENT")

    def _account_code(self, account_type: AccountType) -> int:
        return self.chart.account_code_for(account_type).code

    # -- ids and context ------------------------------------------------------------------------

    @staticmethod
    def _key(idempotency_key: str | None) -> str | None:
        return None if idempotency_key is None else _text("idempotency_key", idempotency_key)

    def _context(
        self, flow: str, key: str | None, event_id: str | None, payment_id: str | None
    ) -> _Context:
        key = self._key(key)

        def pick(kind: str, given: str | None) -> str:
            if given is not None:
                return _text(f"{kind}_id", given)
            return str(uuid.uuid4()) if key is None else _derived(kind, key)

        return _Context(flow, pick("event", event_id), pick("payment", payment_id), key)

    @staticmethod
    def _base(
        ctx: _Context, ledger: Ledger, amount: int, results: Sequence[TransferResult]
    ) -> dict[str, Any]:
        return {
            "event_id": ctx.event_id,
            "payment_id": ctx.payment_id,
            "ledger": ledger.code,
            "amount": amount,
            "transfers": tuple(results),
        }

    async def _replayed_amount(self, key: str | None) -> int | None:
        """The amount recorded under this key's first leg, if the flow already ran with it."""
        if key is None:
            return None
        intent = await self.service.find_by_idempotency_key(f"{key}:0")
        return None if intent is None else intent.amount

    # -- accounts (internal) --------------------------------------------------------------------

    async def _system(self, ledger: Ledger) -> SystemAccounts:
        cached = self._systems.get(ledger.code)
        if cached is not None:
            return cached
        roles = [_BUFFER, _ANCHOR]
        if ledger.kind is not LedgerKind.OBLIGATION:
            roles = [_TREASURY, _FEE_POOL, _BUFFER, _LIQUIDITY]
            if any(entry.settles_in == ledger.code for entry in self.chart.ledgers):
                roles.append(_ANCHOR)
        ids: dict[str, int] = {}
        for role in roles:
            spec = _ROLES[role]
            record = await self._named_account(
                f"system:{role}:{ledger.code}",
                account_type=spec.account_type,
                ledger=ledger.code,
                flags=spec.flags,
                control={"system": True, "role": role},
                conflict=ConfigurationError,
            )
            ids[role] = record.id
        system = SystemAccounts(ledger=ledger.code, **ids)
        self._systems[ledger.code] = system
        return system

    async def _named_account(
        self,
        name: str,
        *,
        account_type: AccountType,
        ledger: int,
        flags: tb.AccountFlags,
        control: Mapping[str, Any],
        conflict: type[TbledgerError],
        flow_ref: str | None = None,
    ) -> AccountRecord:
        """The account with this unique name, created if missing; it must match the request.

        What it must match is the service's own record of it (`control`), never an account's
        metadata, which whoever opened it wrote."""
        waiting = self._creating.get(name)
        if waiting is not None:
            record = await asyncio.shield(waiting)
        else:
            future: asyncio.Future[AccountRecord] = asyncio.get_running_loop().create_future()
            self._creating[name] = future
            try:
                record = await self._find_or_create(
                    name, account_type, ledger, flags, control, flow_ref
                )
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # observed here; waiters re-raise it
                raise
            else:
                future.set_result(record)
            finally:
                del self._creating[name]
        expected = (str(account_type), ledger, dict(control), flow_ref)
        if (record.account_type, record.ledger, dict(record.control), record.flow_ref) != expected:
            # Says nothing of the existing account's parties: they may be another caller's.
            message = f"account {name!r} exists for another purpose, not as asked"
            if issubclass(conflict, TigerBeetleError):
                raise conflict(message, code="name_conflict", details={"name": name})
            raise conflict(message)
        return record

    async def _find_or_create(
        self,
        name: str,
        account_type: AccountType,
        ledger: int,
        flags: tb.AccountFlags,
        control: Mapping[str, Any],
        flow_ref: str | None,
    ) -> AccountRecord:
        service = self.service
        record = await service.get_account_by_name(name)
        if record is not None:
            return record
        try:
            info = await self.service.create_account(
                owner_id=None,
                account_type=account_type,
                ledger=ledger,
                code=self._account_code(account_type),
                name=name,
                flags=flags,
                control=control,
                flow_ref=flow_ref,
            )
        except DuplicateRecordError:
            # Another process created it first: its account is the one with the name.
            record = await service.get_account_by_name(name)
            if record is None:
                raise
            return record
        return info.record

    async def contracts(self, contract_id: str) -> list[ContractRef]:
        """Every escrow contract recorded under this id, from the service's own records (one
        per owner that used the id)."""
        records = await self.service.get_accounts_by_flow_ref(_text("contract_id", contract_id))
        return [
            ContractRef(
                contract_id=contract_id,
                payer_id=parse_id(r.control["payer"]),
                ledger=r.ledger,
                escrow_account_id=r.id,
            )
            for r in records
            if r.control.get("kind") == _ESCROW_KIND and "payer" in r.control
        ]

    async def contract(self, contract_id: str, *, payer: int | str | None = None) -> ContractRef:
        """The escrow contract recorded under this id (and locked by `payer`, if given);
        errors as `payment`."""
        payer_id = None if payer is None else _account_id("payer", payer)
        found = [
            c
            for c in await self.contracts(contract_id)
            if payer_id is None or c.payer_id == payer_id
        ]
        if not found:
            raise UnknownReferenceError(
                f"no escrow contract {contract_id!r}",
                code="contract_not_found",
                details={"contract_id": contract_id},
            )
        if len(found) > 1:
            raise ValidationError(
                f"several contracts use the id {contract_id!r}: name the payer account"
            )
        return found[0]

    async def _flow_account(self, account_id: int) -> AccountRecord:
        record = (await self.service.get_account_records([account_id])).get(account_id)
        if record is None:  # pragma: no cover - found by its flow id a moment ago
            raise UnknownReferenceError(f"no account {format_id(account_id)}")
        return record

    async def _scope(self, account_id: int) -> str:
        """Whose namespace a payment or contract id paid from this account lives in: the
        account's owner, or the account itself when it has none."""
        record = (await self.service.get_account_records([account_id])).get(account_id)
        if record is None:
            raise AccountNotFoundError(
                f"no account {format_id(account_id)}",
                code="account_not_found",
                details={"account_id": format_id(account_id)},
            )
        if record.owner_id is not None:
            return f"owner:{record.owner_id}"
        return f"account:{format_id(account_id)}"

    async def _escrow_amount(
        self, escrow: AccountRecord, ledger: Ledger, amount: object, key: str | None
    ) -> int:
        if amount is not None:
            return _minor(ledger, amount, "amount")
        replayed = await self._replayed_amount(key)
        if replayed is not None:
            return replayed
        left = _credit_available(await self.service.get_balance(escrow.id))
        if left <= 0:
            raise ValidationError(f"escrow {escrow.name!r} holds nothing")
        return left

    async def _anchor_holds(
        self, reference: AnchorAuthorization | int | str
    ) -> tuple[TransferIntent, TransferIntent]:
        """The fiat hold and the obligation hold of an authorization, from the store."""
        hold_id = (
            reference.hold_id
            if isinstance(reference, AnchorAuthorization)
            else _account_id("authorization", reference)
        )
        service = self.service
        intent = await service.get_intent(hold_id)
        members: list[TransferIntent] = []
        if (
            intent is not None
            and intent.control.get("flow") == "anchor_authorization"
            and intent.chain_id is not None
        ):
            members = await service.intents_in_chain(intent.chain_id)
        # The service's own label, and the shape only the flow makes: two holds with the
        # authorization code, crediting the anchor accounts.
        by_leg = {
            m.control.get("leg"): m
            for m in members
            if m.code == self._tc("ANCHOR_AUTHORIZATION") and m.flags & tb.TransferFlags.PENDING
        }
        hold, obligation = by_leg.get("authorization"), by_leg.get("obligation")
        if hold is None or obligation is None or not await self._credits_role(hold, _ANCHOR):
            raise UnknownReferenceError(
                f"no anchor authorization {format_id(hold_id)}",
                code="authorization_not_found",
                details={"hold_id": format_id(hold_id)},
            )
        return hold, obligation

    async def authorization(self, hold_id: int | str) -> TransferIntent:
        """The user's hold of the anchor authorization named by either of its two holds
        (`UnknownReferenceError` if there is none)."""
        hold, _ = await self._anchor_holds(hold_id)
        return hold

    async def _credits_role(self, intent: TransferIntent, role: str) -> bool:
        """Whether `intent` credits its ledger's system account `role`."""
        system = await self._system(self.chart.ledger(intent.ledger))
        account_id: int | None = getattr(system, role)
        return account_id == intent.credit_account_id

    # -- submitting -----------------------------------------------------------------------------

    async def _submit(
        self,
        ctx: _Context,
        legs: Sequence[_Leg],
        extra: Mapping[str, Any] | None = None,
    ) -> list[TransferResult]:
        """One engine request for the flow (a linked chain if several legs); raise on refusal."""
        requests = [
            TransferRequest(
                debit_account_id=leg.debit,
                credit_account_id=leg.credit,
                amount=leg.amount,
                ledger=leg.ledger,
                code=leg.code,
                pending=leg.pending,
                timeout=leg.timeout_s,
                balancing_debit=leg.balancing_debit,
                event_id=ctx.event_id,
                payment_id=ctx.payment_id,
                idempotency_key=ctx.leg_key(index),
            )
            for index, leg in enumerate(legs)
        ]
        results = await self.service.create_transfers(
            requests,
            atomic=len(requests) > 1,
            control=[ctx.control(leg.name, extra) for leg in legs],
        )
        await self._raise_for(results, legs)
        return results

    async def _resolve_holds(
        self, ctx: _Context, resolutions: Sequence[_Resolution]
    ) -> list[TransferResult]:
        """Post or void several holds in one linked chain.

        `LedgerService.resolve_pending_transfers` links them, through the same write path as a
        single post or void: persisted intents, audit events, idempotency keys, recovery.
        """
        results = await self.service.resolve_pending_transfers(
            [
                PendingResolution(
                    pending_id=r.hold.id,
                    post=r.post,
                    amount=r.amount,
                    idempotency_key=ctx.leg_key(index),
                    event_id=ctx.event_id,
                    payment_id=ctx.payment_id,
                    control=ctx.control(r.name, r.metadata),
                )
                for index, r in enumerate(resolutions)
            ]
        )
        legs = [
            _Leg(
                r.name,
                r.hold.debit_account_id,
                r.hold.credit_account_id,
                r.hold.amount,
                r.hold.ledger,
                r.hold.code,
            )
            for r in resolutions
        ]
        await self._raise_for(results, legs)
        return results

    async def _raise_for(self, results: Sequence[TransferResult], legs: Sequence[_Leg]) -> None:
        failed = [index for index, result in enumerate(results) if not result.ok]
        if not failed:
            return
        index = next(
            (i for i in failed if refusal_of(results[i].status) is not Refusal.LINKED_FAILED),
            failed[0],
        )
        raise await self._error(results[index], legs[index], legs)

    async def _error(
        self, result: TransferResult, leg: _Leg, legs: Sequence[_Leg]
    ) -> TigerBeetleError:
        status = result.status
        details: dict[str, object] = {
            "transfer_id": format_id(result.id),
            "status": status,
            "leg": leg.name,
            "debit_account_id": format_id(leg.debit),
            "credit_account_id": format_id(leg.credit),
        }
        message = f"{leg.name} ({format_id(result.id)}) refused by the engine: {status}"
        # The service's one classification of statuses; a leg's shortfall is only ever on its
        # debit account, so exceeds_debits stays a plain refusal here.
        refusal = refusal_of(status)
        if refusal is Refusal.EXCEEDS_CREDITS:
            available = 0
            # The error is about the refusal; the balance is only context.
            with contextlib.suppress(TbledgerError):
                available = max(_credit_available(await self.service.get_balance(leg.debit)), 0)
            requested = sum(other.amount for other in legs if other.debit == leg.debit)
            if leg.shortfall is _Shortfall.REFUND:
                return RefundExceedsPaymentError(
                    f"refund of {leg.amount} exceeds what is left of the payment ({available})",
                    refundable=available,
                    requested=leg.amount,
                    code=status,
                    details=details,
                )
            if leg.shortfall is _Shortfall.LIQUIDITY:
                return InsufficientLiquidityError(
                    f"the platform's liquidity ({available}) cannot pay out {leg.amount}",
                    available=available,
                    requested=leg.amount,
                    code=status,
                    details=details,
                )
            return InsufficientBalanceError(
                message, available=available, requested=requested, code=status, details=details
            )
        if refusal is Refusal.CLOSED:
            # A frozen account answers account_frozen, one closed for good the engine's status.
            code = await self.service.refusal_code(
                status, debit_account_id=leg.debit, credit_account_id=leg.credit
            )
            return AccountFrozenError(message, code=code, details=details)
        if refusal is Refusal.NOT_FOUND:
            return AccountNotFoundError(message, code=status, details=details)
        return TransferFailedError(message, code=status, details=details)
