"""Payment flows over the chart of accounts (`tbledger.flows.SpendEngine`), under ``/v1/flows``.

Each write route is one flow call: the body is parsed strictly, the accounts it names are looked
up (and checked against the caller and the ledger) before anything is submitted, and the flow's
result is rendered with ids in hex and amounts in both spellings. The ``Idempotency-Key`` header
is the flow's idempotency key: a retry replays the first outcome (``replayed: true``) and moves
nothing; the same key with a different body is a 409. Amounts arrive as text (``amount``, read in
``amount_unit``) and are read here, at the ledger's scale, into ints of minor units
(`ApiContext.minor`) before a flow is called: the flows take ints and Decimals, never text.

Who may call what. Owner keys move only their own owner's money:

* ``payments``: the payer account is the caller's (the merchant may be anyone's);
* ``refunds``: the refunded payment's merchant account is the caller's (it pays the refund);
* ``escrow/lock``: the payer account is the caller's;
* ``exchanges``: both the source and the target accounts are the caller's.

Every other write needs an admin key: it mints money (deposit, liquidity), pays it out
(withdrawal, escrow release and void, settlement and its reversal), or holds funds for an
anchor. An account, payment, contract or authorization an owner key may not see reads exactly as
a missing one (404). Reads: an anchor's state is visible to the held user's owner, a payment's
refundable amount to its payer's and merchant's owners, liquidity to admins only.

Prices come from the platform (DESIGN §9, `tbledger.prices`): an exchange runs at a quote's rate
or the operator's current rate, a payment's fee and who pays it come from the merchant's fee
schedule (or the platform default); no request body carries a rate, a fee or a fee payer.

Flows move money of customer accounts (user and merchant); system accounts (treasury, fee pool,
liquidity, escrow, refundable allowances) move only through the flows that own them, so a
request naming one as a flow's account is refused (422) before the engine sees it.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, Field, StrictInt

from tbledger.api.context import (
    Admin,
    ApiContext,
    Caller,
    Ctx,
    IdempotencyKey,
    account_id_of,
)
from tbledger.api.errors import not_found
from tbledger.api.keys import Principal
from tbledger.api.policy import is_customer, may_see
from tbledger.api.render import result_out
from tbledger.api.routing import router_for
from tbledger.api.schemas import (
    ID_PATTERN,
    AmountText,
    AmountUnit,
    IdText,
    LedgerRef,
    StrictBody,
    TransferResultOut,
)
from tbledger.chart import Ledger
from tbledger.errors import UnknownLedgerError, UnknownReferenceError, ValidationError
from tbledger.flows import (
    FLOW_TEXT_CHARS_MAX,
    ContractRef,
    FeePayer,
    FlowResult,
    PaymentRef,
)
from tbledger.ids import format_id
from tbledger.limits import U32_MAX
from tbledger.model import AccountRecord, TransferIntent

__all__ = ["FlowOut", "router"]

router = router_for("/v1/flows", tags=["flows"])

IdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=39)]
# Flow texts get a suffix or prefix in the store ("refundable:<id>", "<key>:0"), hence the
# flows' own limit rather than the store's column width.
FlowText = Annotated[str, Field(min_length=1, max_length=FLOW_TEXT_CHARS_MAX)]
PaymentIdPath = Annotated[str, Path(min_length=1, max_length=FLOW_TEXT_CHARS_MAX)]
LedgerPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,32}$")]
TimeoutS = Annotated[
    StrictInt, Field(ge=1, le=U32_MAX, description="seconds until the hold expires")
]


# -- responses ------------------------------------------------------------------------------------

D = TypeVar("D", bound=BaseModel)


class FlowOut(BaseModel, Generic[D]):
    """What every flow returns; its own ids and amounts are in `details`."""

    flow: str = Field(description="the flow's name, as recorded in the audit trail")
    event_id: str
    payment_id: str
    ledger: int = Field(description="the ledger `amount` is counted in")
    ledger_name: str
    amount: str = Field(description="decimal string in the ledger's major units")
    amount_minor: str = Field(description="integer count of minor units")
    replayed: bool = Field(description="true when an earlier call with this key is replayed")
    transfers: list[TransferResultOut] = Field(description="the engine's result for each leg")
    details: D


class AccountDetails(BaseModel):
    account_id: str


class LiquidityDetails(BaseModel):
    liquidity_account_id: str


class PaymentDetails(BaseModel):
    payer_id: str
    merchant_id: str
    fee: str = Field(description="what the fee pool received, in major units")
    fee_minor: str
    fee_payer: Literal["payer", "merchant"]
    refundable_account_id: str = Field(description="the payment's refund allowance account")


class RefundDetails(BaseModel):
    payer_id: str
    merchant_id: str


class AnchorAuthorizationDetails(BaseModel):
    user_id: str
    hold_id: str = Field(description="the hold on the user's funds: fulfill or release by it")
    obligation_hold_id: str
    obligation_ledger: int
    obligation_ledger_name: str
    timeout_s: int


class AnchorFulfillmentDetails(BaseModel):
    hold_id: str
    obligation_hold_id: str
    released: str = Field(description="the rest of the hold, returned to the user")
    released_minor: str


class AnchorReleaseDetails(BaseModel):
    hold_id: str
    obligation_hold_id: str


class EscrowLockDetails(BaseModel):
    contract_id: str
    escrow_account_id: str
    payer_id: str


class EscrowReleaseDetails(BaseModel):
    contract_id: str
    escrow_account_id: str
    merchant_id: str


class EscrowVoidDetails(BaseModel):
    contract_id: str
    escrow_account_id: str
    payer_id: str


class SettlementDetails(BaseModel):
    merchant_id: str
    settlement_id: str | None = Field(description="the transfer to reverse")


class SettlementReversalDetails(BaseModel):
    merchant_id: str
    settlement_id: str
    reversal_id: str


class ExchangeDetails(BaseModel):
    source_account_id: str
    target_account_id: str
    target_ledger: int
    target_ledger_name: str
    target_amount: str = Field(description="paid on the target ledger, rounded down")
    target_amount_minor: str
    rate: str


class DepositOut(FlowOut[AccountDetails]):
    """A deposit: `details.account_id` was credited."""


class WithdrawalOut(FlowOut[AccountDetails]):
    """A withdrawal: `details.account_id` was debited."""


class LiquidityOut(FlowOut[LiquidityDetails]):
    """Liquidity funding: the ledger's liquidity account was credited."""


class PaymentOut(FlowOut[PaymentDetails]):
    """A payment: `amount` to the merchant, `details.fee` to the fee pool."""


class RefundOut(FlowOut[RefundDetails]):
    """A refund of `amount` from the merchant to the payer of payment `payment_id`."""


class AnchorAuthorizationOut(FlowOut[AnchorAuthorizationDetails]):
    """An anchor authorization: `amount` held on `ledger` until fulfilled, released or expired."""


class AnchorFulfillmentOut(FlowOut[AnchorFulfillmentDetails]):
    """An anchor fulfillment: `amount` posted, `details.released` returned to the user."""


class AnchorReleaseOut(FlowOut[AnchorReleaseDetails]):
    """An anchor release: the `amount` held went back to the user."""


class EscrowLockOut(FlowOut[EscrowLockDetails]):
    """An escrow lock: `amount` moved from the payer to the contract's escrow account."""


class EscrowReleaseOut(FlowOut[EscrowReleaseDetails]):
    """An escrow release: `amount` moved from the escrow account to the merchant."""


class EscrowVoidOut(FlowOut[EscrowVoidDetails]):
    """An escrow void: `amount` went back from the escrow account to the payer."""


class SettlementOut(FlowOut[SettlementDetails]):
    """A settlement: `amount` (what the merchant had, for a sweep) went to the treasury."""


class SettlementReversalOut(FlowOut[SettlementReversalDetails]):
    """A settlement reversal: `amount` went back from the treasury to the merchant."""


class ExchangeOut(FlowOut[ExchangeDetails]):
    """An exchange: `amount` out on `ledger`, `details.target_amount` in on the target ledger."""


class AnchorStatusOut(BaseModel):
    hold_id: str
    obligation_hold_id: str
    user_id: str
    state: Literal["authorized", "fulfilled", "released", "expired"]
    transfer_code: str = Field(description="the state's business code (ANCHOR_EXPIRY, …)")
    ledger: int
    ledger_name: str
    amount: str = Field(description="the amount authorized, in major units")
    amount_minor: str


class RefundableOut(BaseModel):
    payment_id: str
    payer_id: str
    merchant_id: str
    ledger: int
    ledger_name: str
    refundable: str = Field(description="what is left to refund, in major units")
    refundable_minor: str


class LiquidityAvailableOut(BaseModel):
    ledger: int
    ledger_name: str
    available: str = Field(description="what exchanges can pay out on this ledger")
    available_minor: str


def _common(ctx: ApiContext, flow: str, result: FlowResult) -> dict[str, Any]:
    book = ctx.ledger(result.ledger)
    return {
        "flow": flow,
        "event_id": result.event_id,
        "payment_id": result.payment_id,
        "ledger": book.code,
        "ledger_name": book.name,
        "amount": book.format_amount(result.amount),
        "amount_minor": str(result.amount),
        "replayed": result.replayed,
        "transfers": [result_out(t) for t in result.transfers],
    }


# -- requests -------------------------------------------------------------------------------------


class AccountFlowIn(StrictBody):
    account_id: IdText
    amount: AmountText
    amount_unit: AmountUnit = "major"
    ledger: LedgerRef
    event_id: FlowText | None = None
    payment_id: FlowText | None = None


class DepositIn(AccountFlowIn):
    pass


class WithdrawalIn(AccountFlowIn):
    pass


class LiquidityIn(StrictBody):
    amount: AmountText
    amount_unit: AmountUnit = "major"
    ledger: LedgerRef
    event_id: FlowText | None = None
    payment_id: FlowText | None = None


class PaymentIn(StrictBody):
    payer_id: IdText
    merchant_id: IdText
    amount: AmountText = Field(description="what the merchant is paid (before a merchant fee)")
    amount_unit: AmountUnit = "major"
    ledger: LedgerRef
    event_id: FlowText | None = None
    payment_id: FlowText | None = Field(
        default=None, description="the id refunds name (derived from the key if omitted)"
    )


class RefundIn(StrictBody):
    payment_id: FlowText
    payer_id: IdText | None = Field(
        default=None, description="the paying account, where several payments share the id"
    )
    amount: AmountText | None = Field(
        default=None, description="omit to refund all that is left of the payment"
    )
    amount_unit: AmountUnit = "major"
    event_id: FlowText | None = None


class AnchorAuthorizationIn(StrictBody):
    user_id: IdText
    amount: AmountText = Field(description="held on the ledger the obligation settles in")
    amount_unit: AmountUnit = "major"
    obligation: LedgerRef = Field(
        description="an obligation ledger: its name (GROCERY_OBLIGATION), number, or short name "
        "(grocery)",
        examples=["GROCERY_OBLIGATION"],
    )
    timeout_s: TimeoutS
    event_id: FlowText | None = None
    payment_id: FlowText | None = None


class AnchorFulfillmentIn(StrictBody):
    amount: AmountText | None = Field(
        default=None, description="post part of the hold (the rest is released); omit for all"
    )
    amount_unit: AmountUnit = "major"
    event_id: FlowText | None = None


class AnchorReleaseIn(StrictBody):
    event_id: FlowText | None = None


class EscrowLockIn(StrictBody):
    contract_id: FlowText
    payer_id: IdText
    amount: AmountText
    amount_unit: AmountUnit = "major"
    ledger: LedgerRef
    event_id: FlowText | None = None
    payment_id: FlowText | None = None


class EscrowReleaseIn(StrictBody):
    contract_id: FlowText
    payer_id: IdText | None = Field(
        default=None, description="the payer who locked it, where several contracts share the id"
    )
    merchant_id: IdText
    amount: AmountText | None = Field(default=None, description="omit for all that is locked")
    amount_unit: AmountUnit = "major"
    event_id: FlowText | None = None
    payment_id: FlowText | None = None


class EscrowVoidIn(StrictBody):
    contract_id: FlowText
    payer_id: IdText | None = Field(
        default=None, description="the payer who locked it, where several contracts share the id"
    )
    amount: AmountText | None = Field(default=None, description="omit for all that is locked")
    amount_unit: AmountUnit = "major"
    event_id: FlowText | None = None
    payment_id: FlowText | None = None


class SettlementIn(StrictBody):
    merchant_id: IdText
    ledger: LedgerRef
    amount: AmountText | None = Field(
        default=None, description="omit to sweep the merchant's whole available balance"
    )
    amount_unit: AmountUnit = "major"
    event_id: FlowText | None = None
    payment_id: FlowText | None = None


class SettlementReversalIn(StrictBody):
    event_id: FlowText | None = None


class ExchangeIn(StrictBody):
    source_account_id: IdText
    target_account_id: IdText
    amount: AmountText = Field(description="debited on the source ledger")
    amount_unit: AmountUnit = "major"
    source_ledger: LedgerRef
    target_ledger: LedgerRef
    quote_id: IdText | None = Field(
        default=None,
        description="a quote this owner was issued: its rate, once; else the current rate",
    )
    event_id: FlowText | None = None
    payment_id: FlowText | None = None


# -- checks ---------------------------------------------------------------------------------------


def _customer(record: AccountRecord, book: Ledger, role: str) -> None:
    """`record` is a user or merchant account on `book`, or a 422 saying why not."""
    if not is_customer(record):
        raise ValidationError(
            f"{role} {format_id(record.id)} is a {record.account_type} account; "
            "flows move user and merchant accounts"
        )
    if record.ledger != book.code:
        raise ValidationError(
            f"{role} {format_id(record.id)} is on ledger {record.ledger}, "
            f"not {book.name} ({book.code})"
        )


async def _own(
    ctx: ApiContext, caller: Principal, text: str, book: Ledger, role: str
) -> AccountRecord:
    """An account the caller acts for, on `book`: 404 if it may not see it, 422 if it is a
    system account or on another ledger."""
    record = await ctx.visible_account(caller, account_id_of(text, role))
    _customer(record, book, role)
    return record


async def _existing(ctx: ApiContext, text: str, book: Ledger, role: str) -> AccountRecord:
    """An account anyone may pay into: it must exist (404) and be a customer account on `book`."""
    account_id = account_id_of(text, role)
    record = (await ctx.accounts([account_id])).get(account_id)
    if record is None:
        raise not_found("account", format_id(account_id))
    _customer(record, book, role)
    return record


async def _payment(
    ctx: ApiContext,
    caller: Principal,
    payment_id: str,
    *,
    sides: tuple[str, ...],
    payer_id: str | None = None,
) -> PaymentRef:
    """The payment with this id that the caller may act on, from the service's own records.

    Payment ids are scoped to the payer's owner, so several owners' payments may share one: an
    owner key sees only those where it owns one of `sides` (another owner's reads exactly as a
    missing one), and `payer_id` picks one where the caller still sees several."""
    payer = None if payer_id is None else account_id_of(payer_id, "payer_id")
    found = [p for p in await ctx.flows.payments(payment_id) if payer in (None, p.payer_id)]
    if not caller.is_admin:
        found = [
            p
            for p in found
            if await _sees_any(ctx, caller, [getattr(p, f"{side}_id") for side in sides])
        ]
    if not found:
        raise not_found("payment", repr(payment_id))
    if len(found) > 1:
        raise ValidationError(f"several payments use the id {payment_id!r}: give payer_id")
    return found[0]


async def _contract(ctx: ApiContext, contract_id: str, payer_id: str | None) -> ContractRef:
    """The escrow contract with this id (admin routes), from the service's own records;
    `payer_id` picks one where several owners use the id."""
    payer = None if payer_id is None else account_id_of(payer_id, "payer_id")
    try:
        return await ctx.flows.contract(contract_id, payer=payer)
    except UnknownReferenceError:
        raise not_found("contract", repr(contract_id)) from None


async def _authorization(ctx: ApiContext, caller: Principal, hold_id: str) -> TransferIntent:
    """The user's hold of an anchor authorization named by either of its two holds; 404 if there
    is none, or an owner key's owner is not the held user's."""
    ident = account_id_of(hold_id, "hold_id")
    try:
        hold = await ctx.flows.authorization(ident)
    except UnknownReferenceError:
        raise not_found("authorization", format_id(ident)) from None
    if caller.is_admin or await _sees_any(ctx, caller, [hold.debit_account_id]):
        return hold
    raise not_found("authorization", format_id(ident))


async def _sees_any(ctx: ApiContext, caller: Principal, ids: list[int]) -> bool:
    found = await ctx.accounts(ids)
    return any(may_see(caller, record) for record in found.values())


def _obligation(ctx: ApiContext, ref: str) -> tuple[Ledger, Ledger]:
    """The obligation ledger `ref` names (by name, number or short name) and the ledger it
    settles in."""
    try:
        book = ctx.ledger(ref)
    except UnknownLedgerError:
        if ref.isdigit():
            raise
        try:
            book = ctx.ledger(f"{ref}_OBLIGATION")
        except UnknownLedgerError:
            raise UnknownLedgerError(f"no obligation ledger {ref!r} in the chart") from None
    fiat = ctx.chart.settlement_ledger(book.code)
    if fiat is None:
        raise ValidationError(f"{book.name} is not an obligation ledger")
    return book, fiat


def _optional_minor(ctx: ApiContext, book: Ledger, amount: str | None, unit: str) -> int | None:
    return None if amount is None else ctx.minor(book, amount, unit)


async def _fee(
    ctx: ApiContext, key: str | None, merchant_id: int, amount: int
) -> tuple[int, FeePayer]:
    """A payment's fee and who pays it, from the platform's schedule for the merchant.

    A retry under the same idempotency key is charged what the first call was (read from its
    recorded fee leg, the chain's second), so a schedule changed in between replays the payment
    instead of conflicting with it.
    """
    schedule = await ctx.prices.fee_schedule(merchant_id)
    service = ctx.service
    if key is None or await service.find_by_idempotency_key(f"{key}:0") is None:
        return schedule.fee_for(amount), schedule.fee_payer
    leg = await service.find_by_idempotency_key(f"{key}:1")
    if leg is None or leg.code != ctx.chart.transfer_code("FEE").code:
        return 0, schedule.fee_payer
    side = FeePayer.MERCHANT if leg.debit_account_id == merchant_id else FeePayer.PAYER
    return leg.amount, side


# -- deposit, withdrawal, liquidity ---------------------------------------------------------------


@router.post("/deposit", response_model=DepositOut, status_code=201)
async def deposit(body: DepositIn, ctx: Ctx, admin: Admin, key: IdempotencyKey) -> DepositOut:
    """Money enters the platform: treasury -> the account (DEPOSIT). Admin key."""
    book = ctx.ledger(body.ledger)
    account = await _own(ctx, admin, body.account_id, book, "account_id")
    result = await ctx.flows.deposit(
        account=account.id,
        amount=ctx.minor(book, body.amount, body.amount_unit),
        ledger=book.code,
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
    )
    return DepositOut(
        **_common(ctx, "deposit", result),
        details=AccountDetails(account_id=format_id(result.account_id)),
    )


@router.post("/withdrawal", response_model=WithdrawalOut, status_code=201)
async def withdrawal(
    body: WithdrawalIn, ctx: Ctx, admin: Admin, key: IdempotencyKey
) -> WithdrawalOut:
    """Money leaves the platform: the account -> treasury (WITHDRAWAL); never more than it
    holds. Admin key (the payout itself happens outside the ledger)."""
    book = ctx.ledger(body.ledger)
    account = await _own(ctx, admin, body.account_id, book, "account_id")
    result = await ctx.flows.withdraw(
        account=account.id,
        amount=ctx.minor(book, body.amount, body.amount_unit),
        ledger=book.code,
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
    )
    return WithdrawalOut(
        **_common(ctx, "withdrawal", result),
        details=AccountDetails(account_id=format_id(result.account_id)),
    )


@router.post("/liquidity", response_model=LiquidityOut, status_code=201)
async def fund_liquidity(
    body: LiquidityIn, ctx: Ctx, _admin: Admin, key: IdempotencyKey
) -> LiquidityOut:
    """Issue float for exchanges: treasury -> the ledger's liquidity account. Admin key."""
    book = ctx.ledger(body.ledger)
    result = await ctx.flows.fund_liquidity(
        amount=ctx.minor(book, body.amount, body.amount_unit),
        ledger=book.code,
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
    )
    return LiquidityOut(
        **_common(ctx, "liquidity_funding", result),
        details=LiquidityDetails(liquidity_account_id=format_id(result.liquidity_account_id)),
    )


@router.get("/liquidity/{ledger}", response_model=LiquidityAvailableOut)
async def liquidity_available(ledger: LedgerPath, ctx: Ctx, _admin: Admin) -> LiquidityAvailableOut:
    """What the ledger's liquidity account can still pay out in exchanges. Admin key."""
    book = ctx.ledger(ledger)
    available = await ctx.flows.liquidity_available(book.code)
    return LiquidityAvailableOut(
        ledger=book.code,
        ledger_name=book.name,
        available=book.format_amount(available),
        available_minor=str(available),
    )


# -- payments and refunds -------------------------------------------------------------------------


@router.post("/payments", response_model=PaymentOut, status_code=201)
async def pay(body: PaymentIn, ctx: Ctx, caller: Caller, key: IdempotencyKey) -> PaymentOut:
    """Pay a merchant, with the fee the platform's schedule sets for it (to the fee pool),
    atomically; the payment can later be refunded up to `amount`. Owner keys pay from their own
    accounts, to any merchant."""
    book = ctx.ledger(body.ledger)
    payer = await _own(ctx, caller, body.payer_id, book, "payer_id")
    merchant = await _existing(ctx, body.merchant_id, book, "merchant_id")
    minor = ctx.minor(book, body.amount, body.amount_unit)
    fee, fee_payer = await _fee(ctx, key, merchant.id, minor)
    result = await ctx.flows.pay(
        payer=payer.id,
        merchant=merchant.id,
        amount=minor,
        ledger=book.code,
        fee=fee,
        fee_payer=fee_payer,
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
    )
    return PaymentOut(
        **_common(ctx, "payment", result),
        details=PaymentDetails(
            payer_id=format_id(result.payer_id),
            merchant_id=format_id(result.merchant_id),
            fee=book.format_amount(result.fee),
            fee_minor=str(result.fee),
            fee_payer=result.fee_payer.value,
            refundable_account_id=format_id(result.refundable_account_id),
        ),
    )


@router.post("/refunds", response_model=RefundOut, status_code=201)
async def refund(body: RefundIn, ctx: Ctx, caller: Caller, key: IdempotencyKey) -> RefundOut:
    """Refund part or all (no `amount`) of what is left of a payment: merchant -> payer. The
    engine refuses refunding more in total than was paid (409). Owner keys refund payments made
    to their own merchant accounts."""
    record = await _payment(
        ctx, caller, body.payment_id, sides=("merchant",), payer_id=body.payer_id
    )
    book = ctx.ledger(record.ledger)
    result = await ctx.flows.refund(
        payment_id=body.payment_id,
        amount=_optional_minor(ctx, book, body.amount, body.amount_unit),
        payer=record.payer_id,
        idempotency_key=key,
        event_id=body.event_id,
    )
    return RefundOut(
        **_common(ctx, "refund", result),
        details=RefundDetails(
            payer_id=format_id(result.payer_id), merchant_id=format_id(result.merchant_id)
        ),
    )


@router.get("/payments/{payment_id}/refundable", response_model=RefundableOut)
async def refundable(
    payment_id: PaymentIdPath,
    ctx: Ctx,
    caller: Caller,
    payer_id: Annotated[
        str | None,
        Query(
            pattern=ID_PATTERN,
            max_length=39,
            description="the paying account, where several owners' payments share the id",
        ),
    ] = None,
) -> RefundableOut:
    """What is left to refund of a payment. Owner keys see payments they made or received."""
    record = await _payment(ctx, caller, payment_id, sides=("payer", "merchant"), payer_id=payer_id)
    book = ctx.ledger(record.ledger)
    left = await ctx.flows.refundable_amount(payment_id, payer=record.payer_id)
    return RefundableOut(
        payment_id=payment_id,
        payer_id=format_id(record.payer_id),
        merchant_id=format_id(record.merchant_id),
        ledger=book.code,
        ledger_name=book.name,
        refundable=book.format_amount(left),
        refundable_minor=str(left),
    )


# -- anchors --------------------------------------------------------------------------------------


@router.post("/anchors", response_model=AnchorAuthorizationOut, status_code=201)
async def authorize_anchor(
    body: AnchorAuthorizationIn, ctx: Ctx, admin: Admin, key: IdempotencyKey
) -> AnchorAuthorizationOut:
    """Hold a user's funds for a grocery, utility or fuel obligation (recorded on its ledger)
    for `timeout_s` seconds; fulfill or release it by `hold_id`. Admin key."""
    obligation, fiat = _obligation(ctx, body.obligation)
    user = await _own(ctx, admin, body.user_id, fiat, "user_id")
    result = await ctx.flows.authorize_anchor(
        user=user.id,
        amount=ctx.minor(fiat, body.amount, body.amount_unit),
        obligation=obligation.code,
        timeout_s=body.timeout_s,
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
    )
    return AnchorAuthorizationOut(
        **_common(ctx, "anchor_authorization", result),
        details=AnchorAuthorizationDetails(
            user_id=format_id(result.user_id),
            hold_id=format_id(result.hold_id),
            obligation_hold_id=format_id(result.obligation_hold_id),
            obligation_ledger=obligation.code,
            obligation_ledger_name=obligation.name,
            timeout_s=result.timeout_s,
        ),
    )


@router.post("/anchors/{hold_id}/fulfill", response_model=AnchorFulfillmentOut, status_code=201)
async def fulfill_anchor(
    hold_id: IdPath,
    ctx: Ctx,
    admin: Admin,
    key: IdempotencyKey,
    body: AnchorFulfillmentIn | None = None,
) -> AnchorFulfillmentOut:
    """Post an authorization: all of it, or `amount` (the rest goes back to the user). Admin
    key."""
    body = body or AnchorFulfillmentIn()
    hold = await _authorization(ctx, admin, hold_id)
    book = ctx.ledger(hold.ledger)
    result = await ctx.flows.fulfill_anchor(
        authorization=hold.id,
        amount=_optional_minor(ctx, book, body.amount, body.amount_unit),
        idempotency_key=key,
        event_id=body.event_id,
    )
    return AnchorFulfillmentOut(
        **_common(ctx, "anchor_fulfillment", result),
        details=AnchorFulfillmentDetails(
            hold_id=format_id(result.hold_id),
            obligation_hold_id=format_id(result.obligation_hold_id),
            released=book.format_amount(result.released),
            released_minor=str(result.released),
        ),
    )


@router.post("/anchors/{hold_id}/release", response_model=AnchorReleaseOut, status_code=201)
async def release_anchor(
    hold_id: IdPath,
    ctx: Ctx,
    admin: Admin,
    key: IdempotencyKey,
    body: AnchorReleaseIn | None = None,
) -> AnchorReleaseOut:
    """Release an authorization early: both holds are voided and the user gets the funds back
    (ANCHOR_EXPIRY in the audit trail). Admin key."""
    body = body or AnchorReleaseIn()
    hold = await _authorization(ctx, admin, hold_id)
    result = await ctx.flows.release_anchor(
        authorization=hold.id, idempotency_key=key, event_id=body.event_id
    )
    return AnchorReleaseOut(
        **_common(ctx, "anchor_release", result),
        details=AnchorReleaseDetails(
            hold_id=format_id(result.hold_id),
            obligation_hold_id=format_id(result.obligation_hold_id),
        ),
    )


@router.get("/anchors/{hold_id}", response_model=AnchorStatusOut)
async def anchor_status(hold_id: IdPath, ctx: Ctx, caller: Caller) -> AnchorStatusOut:
    """An authorization's state from the audit trail: authorized, fulfilled, released or expired
    (a timeout shows once hold expiry has recorded it). Owner keys see their users' holds."""
    hold = await _authorization(ctx, caller, hold_id)
    status = await ctx.flows.anchor_status(hold.id)
    book = ctx.ledger(hold.ledger)
    return AnchorStatusOut(
        hold_id=format_id(status.hold_id),
        obligation_hold_id=format_id(status.obligation_hold_id),
        user_id=format_id(hold.debit_account_id),
        state=status.state.value,
        transfer_code=status.transfer_code,
        ledger=book.code,
        ledger_name=book.name,
        amount=book.format_amount(status.amount),
        amount_minor=str(status.amount),
    )


# -- escrow ---------------------------------------------------------------------------------------


@router.post("/escrow/lock", response_model=EscrowLockOut, status_code=201)
async def escrow_lock(
    body: EscrowLockIn, ctx: Ctx, caller: Caller, key: IdempotencyKey
) -> EscrowLockOut:
    """Lock a payer's funds for a contract (payer -> the contract's escrow account). Owner keys
    lock their own accounts' funds; a contract belongs to the payer who first locked into it."""
    book = ctx.ledger(body.ledger)
    payer = await _own(ctx, caller, body.payer_id, book, "payer_id")
    result = await ctx.flows.escrow_lock(
        contract_id=body.contract_id,
        payer=payer.id,
        amount=ctx.minor(book, body.amount, body.amount_unit),
        ledger=book.code,
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
    )
    return EscrowLockOut(
        **_common(ctx, "escrow_lock", result),
        details=EscrowLockDetails(
            contract_id=result.contract_id,
            escrow_account_id=format_id(result.escrow_account_id),
            payer_id=format_id(result.payer_id),
        ),
    )


@router.post("/escrow/release", response_model=EscrowReleaseOut, status_code=201)
async def escrow_release(
    body: EscrowReleaseIn, ctx: Ctx, admin: Admin, key: IdempotencyKey
) -> EscrowReleaseOut:
    """Release escrowed funds to a merchant: all that is locked, or `amount`; never more than
    is locked (409). Admin key."""
    escrow = await _contract(ctx, body.contract_id, body.payer_id)
    book = ctx.ledger(escrow.ledger)
    merchant = await _own(ctx, admin, body.merchant_id, book, "merchant_id")
    result = await ctx.flows.escrow_release(
        contract_id=body.contract_id,
        merchant=merchant.id,
        amount=_optional_minor(ctx, book, body.amount, body.amount_unit),
        payer=escrow.payer_id,
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
    )
    return EscrowReleaseOut(
        **_common(ctx, "escrow_release", result),
        details=EscrowReleaseDetails(
            contract_id=result.contract_id,
            escrow_account_id=format_id(result.escrow_account_id),
            merchant_id=format_id(result.merchant_id),
        ),
    )


@router.post("/escrow/void", response_model=EscrowVoidOut, status_code=201)
async def escrow_void(
    body: EscrowVoidIn, ctx: Ctx, _admin: Admin, key: IdempotencyKey
) -> EscrowVoidOut:
    """Return escrowed funds to the payer who locked them: all, or `amount`. Admin key."""
    escrow = await _contract(ctx, body.contract_id, body.payer_id)
    book = ctx.ledger(escrow.ledger)
    result = await ctx.flows.escrow_void(
        contract_id=body.contract_id,
        amount=_optional_minor(ctx, book, body.amount, body.amount_unit),
        payer=escrow.payer_id,
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
    )
    return EscrowVoidOut(
        **_common(ctx, "escrow_void", result),
        details=EscrowVoidDetails(
            contract_id=result.contract_id,
            escrow_account_id=format_id(result.escrow_account_id),
            payer_id=format_id(result.payer_id),
        ),
    )


# -- settlement -----------------------------------------------------------------------------------


@router.post("/settlements", response_model=SettlementOut, status_code=201)
async def settle_merchant(
    body: SettlementIn, ctx: Ctx, admin: Admin, key: IdempotencyKey
) -> SettlementOut:
    """Sweep a merchant's whole available balance (or `amount` of it) to the treasury; the
    engine moves exactly what is there, so the amount may be 0. Admin key."""
    book = ctx.ledger(body.ledger)
    merchant = await _own(ctx, admin, body.merchant_id, book, "merchant_id")
    result = await ctx.flows.settle_merchant(
        merchant=merchant.id,
        ledger=book.code,
        amount=_optional_minor(ctx, book, body.amount, body.amount_unit),
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
    )
    return SettlementOut(
        **_common(ctx, "settlement", result),
        details=SettlementDetails(
            merchant_id=format_id(result.merchant_id),
            settlement_id=None if result.settlement_id is None else format_id(result.settlement_id),
        ),
    )


@router.post(
    "/settlements/{settlement_id}/reverse",
    response_model=SettlementReversalOut,
    status_code=201,
)
async def reverse_settlement(
    settlement_id: IdPath, ctx: Ctx, _admin: Admin, body: SettlementReversalIn | None = None
) -> SettlementReversalOut:
    """Give a settlement back (treasury -> merchant, the settled amount), at most once. Admin key.

    The reversal's idempotency comes from the settlement itself: a second call replays the first
    (``replayed: true``), so no ``Idempotency-Key`` is needed."""
    body = body or SettlementReversalIn()
    result = await ctx.flows.reverse_settlement(
        settlement_id=account_id_of(settlement_id, "settlement_id"), event_id=body.event_id
    )
    return SettlementReversalOut(
        **_common(ctx, "settlement_reversal", result),
        details=SettlementReversalDetails(
            merchant_id=format_id(result.merchant_id),
            settlement_id=format_id(result.settlement_id),
            reversal_id=format_id(result.reversal_id),
        ),
    )


# -- exchange -------------------------------------------------------------------------------------


@router.post("/exchanges", response_model=ExchangeOut, status_code=201)
async def exchange(body: ExchangeIn, ctx: Ctx, caller: Caller, key: IdempotencyKey) -> ExchangeOut:
    """Exchange `amount` from an account on one ledger into an account on another through the
    platform's liquidity, at the rate of `quote_id` (spent by this call) or else the operator's
    current rate (409 ``rate_unavailable`` if there is none), rounded down; 409 if the liquidity
    cannot cover it. Owner keys exchange between their own accounts."""
    source_book = ctx.ledger(body.source_ledger)
    target_book = ctx.ledger(body.target_ledger)
    source = await _own(ctx, caller, body.source_account_id, source_book, "source_account_id")
    target = await _own(ctx, caller, body.target_account_id, target_book, "target_account_id")
    if source_book.code == target_book.code:
        raise ValidationError("an exchange needs two different ledgers")  # before it is priced
    minor = ctx.minor(source_book, body.amount, body.amount_unit)
    result = await ctx.flows.exchange(
        source=source.id,
        target=target.id,
        amount=minor,
        source_ledger=source_book.code,
        target_ledger=target_book.code,
        rate=await ctx.prices.rate_for_exchange(
            source_ledger=source_book.code,
            target_ledger=target_book.code,
            amount=minor,
            owner_id=caller.owner_id,
            is_admin=caller.is_admin,
            key_id=caller.key_id,
            quote_id=None if body.quote_id is None else account_id_of(body.quote_id, "quote_id"),
            spent_by=key,
        ),
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
    )
    return ExchangeOut(
        **_common(ctx, "exchange", result),
        details=ExchangeDetails(
            source_account_id=format_id(result.source_account_id),
            target_account_id=format_id(result.target_account_id),
            target_ledger=target_book.code,
            target_ledger_name=target_book.name,
            target_amount=target_book.format_amount(result.target_amount),
            target_amount_minor=str(result.target_amount),
            rate=format(result.rate, "f"),
        ),
    )
