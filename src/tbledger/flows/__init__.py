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

Amounts. An ``int`` is always minor units of the flow's ledger (``amount=1250`` is 12.50 USD);
major units come only as a `decimal.Decimal` (``amount=Decimal("12.50")``), converted exactly at
the ledger's asset scale and refused with `AmountError` if it has more places than the scale. A
``str`` is refused with an `AmountError` that says what to pass instead: read as major units, it
made ``deposit(..., 100)`` and ``deposit(..., "100")`` move amounts 100 times apart on the Python
type alone. Text from people and requests is read where it arrives, by the shell that knows its
unit: the HTTP API reads a body's ``amount`` in its ``amount_unit`` with `tbledger.amounts`
(``Ledger.to_minor``), and the command line sends its arguments there as text. Floats and bools
are refused. The rule holds for every money parameter (``amount``, ``fee``); an exchange ``rate``
is a price, not money, and stays a decimal string, `Decimal` or int (`exact_rate`). Flow amounts
must be positive; a fee may be zero. There is no money type: a `Decimal` already says "major
units, exact", and the ledger names the currency. (`amounts.to_minor`, the edges' converter from
major units, reads an int as whole major units by definition; an int handed to a flow is minor
units.)

Signatures. Every flow takes its arguments by keyword
(``pay(payer=alice, merchant=shop, amount=1250, ledger="USD")``), so two accounts, or an account
and a ledger (both ``int | str``), cannot be swapped by position, and an amount is always named.
Reads and set-up calls that name one thing take it by position (``payment(payment_id)``,
``anchor_status(authorization)``, ``open_account(owner_id, ledger=...)``). No method takes
``**kwargs``: a misspelt keyword is a `TypeError`, and an error in a type checker. Ledgers are
chart numbers or names (``ledger: int | str``, ``"USD"``, ``1``) in every method, and codes are
the chart's; an unknown one raises `UnknownLedgerError` / `UnknownCodeError`. `open_account`
returns what `LedgerService.create_account` returns, an `AccountInfo` (the id is ``.id``).

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
  "reason": "released"}``. A timeout is expired by the engine itself and recorded as an
  ``expired`` audit event on both holds, by the first read of their status past it or by
  `LedgerService.expire_holds` (also `SpendEngine.expire_holds`), whichever comes first. How a
  reader finds ANCHOR_EXPIRY in the audit trail: a hold whose intent code is
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

from tbledger.flows._engine import REVERSAL_ATTEMPTS_MAX, SpendEngine
from tbledger.flows._money import (
    FLOW_TEXT_CHARS_MAX,
    RATE_MAGNITUDE_MAX,
    exact_rate,
    exchange_amount,
)
from tbledger.flows._results import (
    AnchorAuthorization,
    AnchorFulfillment,
    AnchorRelease,
    AnchorState,
    AnchorStatus,
    ContractRef,
    DepositResult,
    EscrowLockResult,
    EscrowReleaseResult,
    EscrowResult,
    EscrowVoidResult,
    ExchangeResult,
    FeePayer,
    FlowResult,
    LiquidityResult,
    PaymentRef,
    PaymentResult,
    RefundResult,
    SettlementResult,
    SettlementReversalResult,
    SystemAccounts,
    WithdrawalResult,
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
