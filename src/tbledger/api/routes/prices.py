"""Prices the platform sets (`tbledger.prices`): exchange rates, quotes and merchant fee schedules.

DESIGN §9: prices come from the platform, never from a request. An admin key sets the operator's
exchange rates (``POST /v1/rates``) and merchants' fee schedules (``PUT /v1/fees/merchants/{id}``);
every key may read them, because a careful platform shows its customers the price before it
charges it (who set a price, an admin key's id, is shown to admin keys only). Any key asks for a
quote (``POST /v1/flows/exchanges/quotes``): the current rate fixed for a short while, for that
key's owner (an admin key's quote for admin keys), which ``POST /v1/flows/exchanges`` spends once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import Path
from pydantic import AwareDatetime, BaseModel, Field, StrictInt

from tbledger.api.context import Admin, ApiContext, Caller, Ctx, account_id_of
from tbledger.api.errors import not_found
from tbledger.api.keys import Principal
from tbledger.api.routing import router_for
from tbledger.api.schemas import ID_PATTERN, AmountText, AmountUnit, LedgerRef, StrictBody, Text
from tbledger.balances import AccountType
from tbledger.chart import Ledger, LedgerKind
from tbledger.errors import AmountError, ValidationError
from tbledger.flows import RATE_MAGNITUDE_MAX, exchange_amount
from tbledger.ids import format_id
from tbledger.limits import FEE_BPS_MAX, QUOTE_VALIDITY_S
from tbledger.model import ExchangeRate
from tbledger.prices import FeeSchedule

__all__ = ["RateText", "router"]

router = router_for("/v1", tags=["prices"])

IdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=39)]
RateText = Annotated[
    str,
    Field(
        # Digits with an optional fraction, no sign or exponent: read exactly, never as a float.
        # The magnitude is bounded further (at most RATE_MAGNITUDE_MAX digits).
        pattern=r"^(0|[1-9][0-9]*)(\.[0-9]+)?$",
        max_length=2 * RATE_MAGNITUDE_MAX + 1,
        description="units of the target per unit of the source, in major units (0.915 EUR/USD)",
        examples=["0.915"],
    ),
]
# Strict bodies take JSON types only; a time is an ISO 8601 string with its offset.
Moment = Annotated[AwareDatetime, Field(strict=False, examples=["2026-12-07T16:00:00Z"])]


# -- rates ----------------------------------------------------------------------------------------


class RateIn(StrictBody):
    source_ledger: LedgerRef
    target_ledger: LedgerRef
    rate: RateText
    valid_from: Moment | None = Field(default=None, description="default: now")
    valid_until: Moment | None = Field(default=None, description="default: until superseded")
    source: Text = Field(
        default="manual", description="where the rate came from", examples=["ECB 2026-12-07"]
    )


class RateOut(BaseModel):
    source_ledger: int
    source_ledger_name: str
    target_ledger: int
    target_ledger_name: str
    rate: str = Field(description="units of the target per unit of the source, major units")
    valid_from: datetime
    valid_until: datetime | None
    source: str
    set_by: str | None = Field(description="the admin key that set it (admin keys only)")
    set_at: datetime | None


class RatesOut(BaseModel):
    rates: list[RateOut]


def _rate_out(ctx: ApiContext, rate: ExchangeRate, caller: Principal) -> RateOut:
    source = ctx.ledger(rate.source_ledger)
    target = ctx.ledger(rate.target_ledger)
    return RateOut(
        source_ledger=source.code,
        source_ledger_name=source.name,
        target_ledger=target.code,
        target_ledger_name=target.name,
        rate=rate.rate,
        valid_from=rate.valid_from,
        valid_until=rate.valid_until,
        source=rate.source,
        set_by=rate.set_by if caller.is_admin else None,
        set_at=rate.created_at,
    )


def money_ledger(ctx: ApiContext, ref: str | int) -> Ledger:
    """A ledger money moves on (not an obligation ledger), or a 422."""
    book = ctx.ledger(ref)
    if book.kind is LedgerKind.OBLIGATION:
        raise ValidationError(f"{book.name} is an obligation ledger; money moves on money ledgers")
    return book


@router.post("/rates", response_model=RateOut, status_code=201)
async def set_rate(body: RateIn, ctx: Ctx, admin: Admin) -> RateOut:
    """Set the operator's exchange rate for a pair of ledgers; it supersedes the older one from
    `valid_from` (the history is kept). Admin key."""
    source = money_ledger(ctx, body.source_ledger)
    target = money_ledger(ctx, body.target_ledger)
    rate = await ctx.prices.set_rate(
        source.code,
        target.code,
        body.rate,
        source=body.source,
        set_by=admin.key_id,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
    )
    return _rate_out(ctx, rate, admin)


@router.get("/rates", response_model=RatesOut)
async def current_rates(ctx: Ctx, caller: Caller) -> RatesOut:
    """The current rate of every pair that has one: what exchanges run at now. Any key."""
    rates = await ctx.prices.current_rates()
    return RatesOut(
        rates=[
            _rate_out(ctx, rate, caller)
            for rate in rates
            if ctx.ledger_or_none(rate.source_ledger) and ctx.ledger_or_none(rate.target_ledger)
        ]
    )


# -- quotes ---------------------------------------------------------------------------------------


class QuoteIn(StrictBody):
    source_ledger: LedgerRef
    target_ledger: LedgerRef
    amount: AmountText = Field(description="to be debited on the source ledger")
    amount_unit: AmountUnit = "major"


class QuoteOut(BaseModel):
    quote_id: str = Field(description="send as `quote_id` to POST /v1/flows/exchanges, once")
    source_ledger: int
    source_ledger_name: str
    target_ledger: int
    target_ledger_name: str
    amount: str
    amount_minor: str
    rate: str
    target_amount: str = Field(description="what the exchange pays out, rounded down")
    target_amount_minor: str
    expires_at: datetime
    valid_for_s: int


@router.post("/flows/exchanges/quotes", response_model=QuoteOut, status_code=201)
async def issue_quote(body: QuoteIn, ctx: Ctx, caller: Caller) -> QuoteOut:
    """Fix the current rate for this pair and amount, for a short while (`valid_for_s`); an
    exchange that names the quote runs at its rate. Single use; only the key's owner (or an admin
    key) may use it. Any key."""
    source = money_ledger(ctx, body.source_ledger)
    target = money_ledger(ctx, body.target_ledger)
    if source.code == target.code:
        raise ValidationError("an exchange needs two different ledgers")
    minor = ctx.minor(source, body.amount, body.amount_unit)
    quote = await ctx.prices.issue_quote(
        source_ledger=source.code,
        target_ledger=target.code,
        amount=minor,
        owner_id=None if caller.is_admin else caller.owner_id,
        key_id=caller.key_id,
    )
    rate = Decimal(quote.rate)
    paid = exchange_amount(minor, rate, source.asset_scale, target.asset_scale)
    if paid == 0:
        raise AmountError(
            f"{minor} minor units at rate {quote.rate} is less than one minor unit of "
            f"{target.name}; nothing would be paid out"
        )
    return QuoteOut(
        quote_id=format_id(quote.id),
        source_ledger=source.code,
        source_ledger_name=source.name,
        target_ledger=target.code,
        target_ledger_name=target.name,
        amount=source.format_amount(minor),
        amount_minor=str(minor),
        rate=quote.rate,
        target_amount=target.format_amount(paid),
        target_amount_minor=str(paid),
        expires_at=quote.expires_at,
        valid_for_s=QUOTE_VALIDITY_S,
    )


# -- fees -----------------------------------------------------------------------------------------


class FeeIn(StrictBody):
    fee_bps: StrictInt = Field(
        ge=0, le=FEE_BPS_MAX, description="basis points of the amount (100 = 1%), rounded down"
    )
    fee_fixed: AmountText = Field(default="0", description="added to every payment's fee")
    amount_unit: AmountUnit = Field(default="major", description="the unit of fee_fixed")
    fee_payer: Literal["payer", "merchant"] = Field(
        default="payer",
        description="payer: debited amount + fee; merchant: nets amount - fee (fee <= amount)",
    )


class FeeOut(BaseModel):
    account_id: str
    ledger: int
    ledger_name: str
    fee_bps: int
    fee_fixed: str
    fee_fixed_minor: str
    fee_payer: Literal["payer", "merchant"]
    platform_default: bool = Field(description="true: the merchant has no schedule of its own")
    set_by: str | None = Field(description="the admin key that set it (admin keys only)")
    set_at: datetime | None


async def _merchant(ctx: ApiContext, text: str) -> tuple[int, Ledger]:
    """A merchant account (404 if there is none with this id) and its ledger."""
    account_id = account_id_of(text)
    record = (await ctx.accounts([account_id])).get(account_id)
    # Any key may pay any merchant, so any key may see its price; other accounts stay hidden.
    if record is None or record.account_type != AccountType.MERCHANT.value:
        raise not_found("merchant", format_id(account_id))
    return account_id, ctx.ledger(record.ledger)


def _fee_out(account_id: int, book: Ledger, schedule: FeeSchedule, caller: Principal) -> FeeOut:
    return FeeOut(
        account_id=format_id(account_id),
        ledger=book.code,
        ledger_name=book.name,
        fee_bps=schedule.fee_bps,
        fee_fixed=book.format_amount(schedule.fee_fixed_minor),
        fee_fixed_minor=str(schedule.fee_fixed_minor),
        fee_payer=schedule.fee_payer.value,
        platform_default=schedule.merchant_id is None,
        set_by=schedule.set_by if caller.is_admin else None,
        set_at=schedule.set_at,
    )


@router.put("/fees/merchants/{account_id}", response_model=FeeOut)
async def set_merchant_fee(account_id: IdPath, body: FeeIn, ctx: Ctx, admin: Admin) -> FeeOut:
    """Set a merchant account's fee schedule; payments to it are charged by it from now on (the
    history is kept). Admin key."""
    merchant_id, book = await _merchant(ctx, account_id)
    schedule = await ctx.prices.set_merchant_fee(
        merchant_id,
        fee_bps=body.fee_bps,
        fee_fixed_minor=ctx.minor(book, body.fee_fixed, body.amount_unit, allow_zero=True),
        fee_payer=body.fee_payer,
        set_by=admin.key_id,
    )
    return _fee_out(merchant_id, book, schedule, admin)


@router.get("/fees/merchants/{account_id}", response_model=FeeOut)
async def merchant_fee(account_id: IdPath, ctx: Ctx, caller: Caller) -> FeeOut:
    """What a payment to this merchant is charged: its own schedule or the platform default.
    Any key."""
    merchant_id, book = await _merchant(ctx, account_id)
    schedule = await ctx.prices.fee_schedule(merchant_id)
    return _fee_out(merchant_id, book, schedule, caller)
