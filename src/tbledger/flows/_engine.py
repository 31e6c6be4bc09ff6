"""`SpendEngine`: the payment flows over a `LedgerService` and a chart of accounts (the rules
are in the `tbledger.flows` docstring). One method per flow, each validating all of its input
before one engine request; the values it returns live in `_results`, the reading of amounts and
rates in `_money`, the system and per-flow accounts in `_accounts`.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, TypeVar

import tigerbeetle as tb

from tbledger.balances import AccountType
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
from tbledger.flight import SingleFlight
from tbledger.flows._accounts import (
    ANCHOR,
    BUFFER,
    ESCROW_FLAGS,
    ESCROW_KIND,
    FEE_POOL,
    LIQUIDITY,
    REFUNDABLE_FLAGS,
    REFUNDABLE_KIND,
    ROLES,
    TREASURY,
    scoped_name,
)
from tbledger.flows._money import (
    FULL_AMOUNT,
    account_ref,
    credit_available,
    exact_rate,
    exchange_amount,
    flow_text,
    minor_amount,
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
    EscrowVoidResult,
    ExchangeResult,
    FeePayer,
    LiquidityResult,
    PaymentRef,
    PaymentResult,
    RefundResult,
    SettlementResult,
    SettlementReversalResult,
    SystemAccounts,
    WithdrawalResult,
)
from tbledger.ids import format_id, parse_id
from tbledger.limits import U32_MAX
from tbledger.model import AccountRecord, EventKind, TransferIntent
from tbledger.service import (
    AccountInfo,
    LedgerService,
    PendingResolution,
    Refusal,
    TransferRequest,
    TransferResult,
    refusal_of,
)

__all__ = ["REVERSAL_ATTEMPTS_MAX", "SpendEngine"]

# Why: a reversal refused for good (a frozen merchant) may be retried with the next attempt's key;
# a settlement refused this often needs a person, not another loop.
REVERSAL_ATTEMPTS_MAX: Final = 100

# uuid5 namespace of ids derived from an idempotency key (fixed: derived ids must be stable across
# processes and releases, or a replay would no longer be the same request).
_NAMESPACE: Final = uuid.UUID("5b0f7a44-3c4e-4d0b-9a55-8f3f0c2c7e1d")

# Accounts whose scope (owner) is remembered; the oldest is forgotten past this.
_SCOPES_CACHED_MAX: Final = 100_000


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
    amount: int  # for a post: minor units, or FULL_AMOUNT
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


_ANCHOR_STATES: Final[Mapping[EventKind, AnchorState]] = {
    EventKind.POSTED: AnchorState.FULFILLED,
    EventKind.VOIDED: AnchorState.RELEASED,
    EventKind.EXPIRED: AnchorState.EXPIRED,
}


def _derived(kind: str, key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{key}"))


class SpendEngine:
    """Payment flows on a connected `LedgerService`, over a chart of accounts.

    ``engine = SpendEngine(service)``; then
    ``await engine.deposit(account=user.id, amount=Decimal("12.50"), ledger="USD")``, or
    ``amount=1250`` (an int is minor units). Every flow takes its arguments by keyword; reads
    that name one thing (`payment`, `anchor_status`, ...) take it positionally. System accounts
    are created on first use (or up front with `ensure_system_accounts`).
    """

    def __init__(self, service: LedgerService, chart: Chart | None = None) -> None:
        self.service = service
        self.chart = chart if chart is not None else Chart.default()
        self._systems: dict[int, SystemAccounts] = {}
        # Single flight per account name: concurrent callers wait for one creation.
        self._creating: SingleFlight[str, AccountRecord] = SingleFlight()
        # An account's owner never changes, so its scope is read from the store once.
        self._scopes: OrderedDict[int, str] = OrderedDict()

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
    ) -> AccountInfo:
        """Create a user or merchant account with its type's default flags.

        Returns what `LedgerService.create_account` returns (`AccountInfo`; its id is ``.id``)."""
        try:
            kind = AccountType(account_type)
        except ValueError:
            raise ValidationError(f"unknown account type {account_type!r}") from None
        if kind not in (AccountType.USER, AccountType.MERCHANT):
            raise ValidationError(f"open_account opens users and merchants, not {kind}")
        book = self._money_ledger(ledger)
        return await self.service.create_account(
            owner_id=flow_text("owner_id", owner_id),
            account_type=kind,
            ledger=book.code,
            code=self._account_code(kind),
            metadata=metadata,
        )

    async def refundable_amount(self, payment_id: str, *, payer: int | str | None = None) -> int:
        """What is left to refund of a payment, in minor units (`payer` as for `refund`)."""
        found = await self.payment(payment_id, payer=payer)
        return credit_available(await self.service.get_balance(found.refundable_account_id))

    async def payments(self, payment_id: str) -> list[PaymentRef]:
        """Every payment recorded under this id, from the service's own records (one per owner
        that used the id: ids are scoped to the payer's owner)."""
        records = await self.service.get_accounts_by_flow_ref(flow_text("payment_id", payment_id))
        return [
            PaymentRef(
                payment_id=payment_id,
                payer_id=parse_id(r.control["payer"]),
                merchant_id=parse_id(r.control["merchant"]),
                ledger=r.ledger,
                refundable_account_id=r.id,
            )
            for r in records
            if r.control.get("kind") == REFUNDABLE_KIND
            and {"payer", "merchant"} <= r.control.keys()
        ]

    async def payment(self, payment_id: str, *, payer: int | str | None = None) -> PaymentRef:
        """The payment recorded under this id (and paid by `payer`, if given).

        `UnknownReferenceError` if there is none; `ValidationError` if several owners' payments
        share the id and `payer` does not say which."""
        return _the_one(await self.payments(payment_id), payer, "payment", payment_id)

    async def liquidity_available(self, ledger: int | str) -> int:
        """What the ledger's liquidity account can pay out in exchanges, in minor units."""
        system = await self._system(self._money_ledger(ledger))
        balance = await self.service.get_balance(system.require(LIQUIDITY))
        return credit_available(balance)

    async def expire_holds(self) -> int:
        """Record holds past their timeout as ``expired`` (`LedgerService.expire_holds`)."""
        return await self.service.expire_holds()

    # -- deposit, withdrawal, liquidity ---------------------------------------------------------

    async def deposit(
        self,
        *,
        account: int | str,
        amount: int | Decimal,
        ledger: int | str,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> DepositResult:
        """Money enters the platform: treasury -> `account` (DEPOSIT)."""
        book = self._money_ledger(ledger)
        account_id = account_ref("account", account)
        minor = minor_amount(book, amount, "amount")
        ctx = self._context("deposit", idempotency_key, event_id, payment_id)
        system = await self._system(book)
        leg = _Leg(
            "deposit", system.require(TREASURY), account_id, minor, book.code, self._tc("DEPOSIT")
        )
        results = await self._submit(ctx, [leg])
        return DepositResult(
            **self._base(ctx, book, minor, results),
            account_id=account_id,
        )

    async def withdraw(
        self,
        *,
        account: int | str,
        amount: int | Decimal,
        ledger: int | str,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> WithdrawalResult:
        """Money leaves the platform: `account` -> treasury (WITHDRAWAL)."""
        book = self._money_ledger(ledger)
        account_id = account_ref("account", account)
        minor = minor_amount(book, amount, "amount")
        ctx = self._context("withdrawal", idempotency_key, event_id, payment_id)
        system = await self._system(book)
        leg = _Leg(
            "withdrawal",
            account_id,
            system.require(TREASURY),
            minor,
            book.code,
            self._tc("WITHDRAWAL"),
        )
        results = await self._submit(ctx, [leg])
        return WithdrawalResult(**self._base(ctx, book, minor, results), account_id=account_id)

    async def fund_liquidity(
        self,
        *,
        amount: int | Decimal,
        ledger: int | str,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> LiquidityResult:
        """Issue float for exchanges: treasury -> the ledger's liquidity account (DEPOSIT)."""
        book = self._money_ledger(ledger)
        minor = minor_amount(book, amount, "amount")
        ctx = self._context("liquidity_funding", idempotency_key, event_id, payment_id)
        system = await self._system(book)
        liquidity = system.require(LIQUIDITY)
        leg = _Leg(
            "liquidity_funding",
            system.require(TREASURY),
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
        *,
        payer: int | str,
        merchant: int | str,
        amount: int | Decimal,
        ledger: int | str,
        fee: int | Decimal = 0,
        fee_payer: FeePayer | str = FeePayer.PAYER,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> PaymentResult:
        """Pay a merchant, with a fee to the fee pool; atomic. See the module docstring."""
        book = self._money_ledger(ledger)
        payer_id = account_ref("payer", payer)
        merchant_id = account_ref("merchant", merchant)
        if payer_id == merchant_id:
            raise ValidationError("payer and merchant must be different accounts")
        minor = minor_amount(book, amount, "amount")
        fee_minor = minor_amount(book, fee, "fee", allow_zero=True)
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
            scoped_name("refundable", scope, ctx.payment_id),
            account_type=AccountType.SYSTEM_BUFFER,
            ledger=book.code,
            flags=REFUNDABLE_FLAGS,
            control={
                "kind": REFUNDABLE_KIND,
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
                    system.require(FEE_POOL),
                    fee_minor,
                    book.code,
                    self._tc("FEE"),
                )
            )
        legs.append(
            _Leg(
                "refund_allowance",
                system.require(BUFFER),
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
        *,
        payment_id: str,
        amount: int | Decimal | None = None,
        payer: int | str | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
    ) -> RefundResult:
        """Refund all (`amount` None: what is left) or part of a payment; never more in total.

        Payment ids are scoped to the payer's owner; where several owners' payments share the
        id, `payer` (the paying account) says which one."""
        payment_id = flow_text("payment_id", payment_id)
        key = self._key(idempotency_key)
        found = await self.payment(payment_id, payer=payer)
        record = await self._flow_account(found.refundable_account_id)
        book = self.chart.ledger(record.ledger)
        payer_id = found.payer_id
        merchant_id = found.merchant_id
        if amount is not None:
            minor = minor_amount(book, amount, "amount")
        else:
            replayed = await self._replayed_amount(key)
            if replayed is not None:
                minor = replayed
            else:
                minor = credit_available(await self.service.get_balance(record.id))
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
                system.require(BUFFER),
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
        *,
        user: int | str,
        amount: int | Decimal,
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
        user_id = account_ref("user", user)
        minor = minor_amount(fiat, amount, "amount")
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
                fiat_system.require(ANCHOR),
                minor,
                fiat.code,
                code,
                pending=True,
                timeout_s=timeout_s,
            ),
            _Leg(
                "obligation",
                obligation_system.require(BUFFER),
                obligation_system.require(ANCHOR),
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
        *,
        authorization: AnchorAuthorization | int | str,
        amount: int | Decimal | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
    ) -> AnchorFulfillment:
        """Post an authorization: all of it (`amount` None) or part (the rest is released)."""
        key = self._key(idempotency_key)
        hold, record = await self._anchor_holds(authorization)
        book = self.chart.ledger(hold.ledger)
        minor = hold.amount if amount is None else minor_amount(book, amount, "amount")
        if minor > hold.amount:
            raise AmountError(f"amount {minor} is more than the {hold.amount} authorized")
        ctx = self._context("anchor_fulfillment", key, event_id, hold.payment_id)
        posted = FULL_AMOUNT if minor == hold.amount else minor
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
        *,
        authorization: AnchorAuthorization | int | str,
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

        A timeout shows as soon as the engine's clock has passed it (the service's status read
        settles it from the engine, without waiting for `expire_holds` or the recovery loop); a
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
        *,
        contract_id: str,
        payer: int | str,
        amount: int | Decimal,
        ledger: int | str,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> EscrowLockResult:
        """Lock a payer's funds for a contract: payer -> ``escrow:<contract_id>`` (ESCROW_LOCK)."""
        contract_id = flow_text("contract_id", contract_id)
        book = self._money_ledger(ledger)
        payer_id = account_ref("payer", payer)
        minor = minor_amount(book, amount, "amount")
        ctx = self._context("escrow_lock", idempotency_key, event_id, payment_id)
        # Contract ids are the payer's owner's, as payment ids are.
        scope = await self._scope(payer_id)
        escrow = await self._named_account(
            scoped_name("escrow", scope, contract_id),
            account_type=AccountType.ESCROW,
            ledger=book.code,
            flags=ESCROW_FLAGS,
            control={
                "kind": ESCROW_KIND,
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
        *,
        contract_id: str,
        merchant: int | str,
        amount: int | Decimal | None = None,
        payer: int | str | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> EscrowReleaseResult:
        """Release escrowed funds to a merchant (ESCROW_RELEASE): all that is left, or part.

        Contract ids are scoped to the payer's owner; `payer` says which contract where several
        share the id."""
        contract_id = flow_text("contract_id", contract_id)
        merchant_id = account_ref("merchant", merchant)
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
        *,
        contract_id: str,
        amount: int | Decimal | None = None,
        payer: int | str | None = None,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        payment_id: str | None = None,
    ) -> EscrowVoidResult:
        """Return escrowed funds to the payer (ESCROW_VOID): all that is left, or part
        (`payer` as for `escrow_release`)."""
        contract_id = flow_text("contract_id", contract_id)
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
        *,
        merchant: int | str,
        ledger: int | str,
        amount: int | Decimal | None = None,
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
        merchant_id = account_ref("merchant", merchant)
        key = self._key(idempotency_key)
        sweep = amount is None
        minor = tb.AMOUNT_MAX if sweep else minor_amount(book, amount, "amount")
        if sweep:
            # Unknown accounts raise AccountNotFoundError here, before anything moves.
            await self.service.get_balance(merchant_id)
        ctx = self._context("settlement", key, event_id, payment_id)
        system = await self._system(book)
        leg = _Leg(
            "settlement",
            merchant_id,
            system.require(TREASURY),
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
        self, *, settlement_id: int | str, event_id: str | None = None
    ) -> SettlementReversalResult:
        """Give a settlement back: treasury -> merchant of the settled amount, at most once."""
        settlement = account_ref("settlement_id", settlement_id)
        intent = await self.service.get_intent(settlement)
        # The service's own label and the shape only the flow makes: the SETTLEMENT code,
        # crediting the ledger's treasury. A caller's metadata is never read (DESIGN §9).
        if (
            intent is None
            or intent.control.get("flow") != "settlement"
            or intent.code != self._tc("SETTLEMENT")
            or not await self._credits_role(intent, TREASURY)
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
        *,
        source: int | str,
        target: int | str,
        amount: int | Decimal,
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
        source_id = account_ref("source", source)
        target_id = account_ref("target", target)
        minor = minor_amount(book, amount, "amount")
        parsed_rate = exact_rate(rate)
        target_minor = exchange_amount(minor, parsed_rate, book.asset_scale, other.asset_scale)
        if target_minor == 0:
            raise AmountError(
                f"{minor} minor units at rate {parsed_rate} is less than one minor unit of "
                f"{other.name}; nothing would be paid out"
            )
        if target_minor >= FULL_AMOUNT:
            raise AmountError("the exchanged amount is more than 2^128-2 minor units")
        ctx = self._context("exchange", idempotency_key, event_id, payment_id)
        source_system = await self._system(book)
        target_system = await self._system(other)
        code = self._exchange_code()
        legs = [
            _Leg(
                "exchange_out", source_id, source_system.require(LIQUIDITY), minor, book.code, code
            ),
            _Leg(
                "exchange_in",
                target_system.require(LIQUIDITY),
                target_id,
                target_minor,
                other.code,
                code,
                shortfall=_Shortfall.LIQUIDITY,
            ),
        ]
        results = await self._submit(ctx, legs, {"rate": str(parsed_rate)})
        return ExchangeResult(
            **self._base(ctx, book, minor, results),
            source_account_id=source_id,
            target_account_id=target_id,
            target_ledger=other.code,
            target_amount=target_minor,
            rate=parsed_rate,
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
        return None if idempotency_key is None else flow_text("idempotency_key", idempotency_key)

    def _context(
        self, flow: str, key: str | None, event_id: str | None, payment_id: str | None
    ) -> _Context:
        key = self._key(key)

        def pick(kind: str, given: str | None) -> str:
            if given is not None:
                return flow_text(f"{kind}_id", given)
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
        roles = [BUFFER, ANCHOR]
        if ledger.kind is not LedgerKind.OBLIGATION:
            roles = [TREASURY, FEE_POOL, BUFFER, LIQUIDITY]
            if any(entry.settles_in == ledger.code for entry in self.chart.ledgers):
                roles.append(ANCHOR)
        ids: dict[str, int] = {}
        for role in roles:
            spec = ROLES[role]
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
        record = await self._creating.run(
            name,
            lambda: self._find_or_create(name, account_type, ledger, flags, control, flow_ref),
        )
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
        records = await self.service.get_accounts_by_flow_ref(flow_text("contract_id", contract_id))
        return [
            ContractRef(
                contract_id=contract_id,
                payer_id=parse_id(r.control["payer"]),
                ledger=r.ledger,
                escrow_account_id=r.id,
            )
            for r in records
            if r.control.get("kind") == ESCROW_KIND and "payer" in r.control
        ]

    async def contract(self, contract_id: str, *, payer: int | str | None = None) -> ContractRef:
        """The escrow contract recorded under this id (and locked by `payer`, if given);
        errors as `payment`."""
        return _the_one(await self.contracts(contract_id), payer, "contract", contract_id)

    async def _flow_account(self, account_id: int) -> AccountRecord:
        record = (await self.service.get_account_records([account_id])).get(account_id)
        if record is None:  # pragma: no cover - found by its flow id a moment ago
            raise UnknownReferenceError(f"no account {format_id(account_id)}")
        return record

    async def _scope(self, account_id: int) -> str:
        """Whose namespace a payment or contract id paid from this account lives in: the
        account's owner, or the account itself when it has none."""
        scope = self._scopes.get(account_id)
        if scope is not None:
            return scope
        record = (await self.service.get_account_records([account_id])).get(account_id)
        if record is None:
            raise AccountNotFoundError(
                f"no account {format_id(account_id)}",
                code="account_not_found",
                details={"account_id": format_id(account_id)},
            )
        if record.owner_id is not None:
            scope = f"owner:{record.owner_id}"
        else:
            scope = f"account:{format_id(account_id)}"
        self._scopes[account_id] = scope
        if len(self._scopes) > _SCOPES_CACHED_MAX:
            self._scopes.popitem(last=False)
        return scope

    async def _escrow_amount(
        self, escrow: AccountRecord, ledger: Ledger, amount: int | Decimal | None, key: str | None
    ) -> int:
        if amount is not None:
            return minor_amount(ledger, amount, "amount")
        replayed = await self._replayed_amount(key)
        if replayed is not None:
            return replayed
        left = credit_available(await self.service.get_balance(escrow.id))
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
            else account_ref("authorization", reference)
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
        if hold is None or obligation is None or not await self._credits_role(hold, ANCHOR):
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
                available = max(credit_available(await self.service.get_balance(leg.debit)), 0)
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


_Ref = TypeVar("_Ref", PaymentRef, ContractRef)


def _the_one(found: list[_Ref], payer: int | str | None, kind: str, ref: str) -> _Ref:
    """The payment or contract recorded under `ref` (paid or locked by `payer`, if given):
    `UnknownReferenceError` if there is none, `ValidationError` if several owners' share the id
    and `payer` does not say which."""
    payer_id = None if payer is None else account_ref("payer", payer)
    chosen = [r for r in found if payer_id is None or r.payer_id == payer_id]
    if not chosen:
        what = "escrow contract" if kind == "contract" else kind
        raise UnknownReferenceError(
            f"no {what} {ref!r}", code=f"{kind}_not_found", details={f"{kind}_id": ref}
        )
    if len(chosen) > 1:
        raise ValidationError(f"several {kind}s use the id {ref!r}: name the payer account")
    return chosen[0]
