"""Prices come from the platform: exchange rates, quotes and payment fees (DESIGN §9).

`Prices` answers what an exchange or a payment costs from state only the service writes: the
operator's exchange rates (`set_rate`, `current_rate`), quotes the platform issued
(`issue_quote`; `rate_for_exchange` spends one) and the fee schedule (the platform default from
`Settings.fee_bps`/`fee_payer`, overridden per merchant account with `set_merchant_fee`;
`fee_schedule`). The HTTP API takes every rate and fee from here and none from a request.
`SpendEngine.exchange(rate=...)` and `SpendEngine.pay(fee=..., fee_payer=...)` keep their explicit
parameters: a library caller is the operator's own code, trusted and in-process, and may price
with this module or by its own means.

Rates. An operator rate is exact decimal text (units of the target per unit of the source, in
major units; never a float), valid from `valid_from` (default: now) until an optional
`valid_until`, with where it came from (`source`) and who set it (`set_by`). Rates are
append-only: the pair's current rate is its newest row whose validity has started, and an ended
one leaves the pair without a rate (`PriceError` ``rate_unavailable``) rather than falling back
to an older price.

Quotes. A quote fixes the current rate for one owner, pair and source amount for
`QUOTE_VALIDITY_S` seconds. It is single use: the first exchange that names it spends it, even if
the engine then refuses that exchange (a refused exchange asks for a new quote); a retry of that
exchange with the same idempotency key replays at the quote's rate, expired or not. A quote is
usable by keys of the owner it was issued to, or by admin keys; to anyone else it does not exist.
An exchange priced at the operator's rate with an idempotency key is recorded as a quote issued
and spent at once, so its retry after the rate moved replays the first exchange.

Fees. ``fee = floor(amount * fee_bps / 10_000) + fee_fixed_minor``, exactly, in integers: the
percentage is rounded down, so the platform never charges more than its published percentage (as
an exchange never pays out more than its rate allows); a schedule that wants a minimum sets the
fixed part. ``fee_bps`` is at most 10,000 (100%), refused when a schedule is set; a fee paid by the
merchant that would exceed a payment's amount (the fixed part on a small payment) makes that
payment a `ValidationError` (422) and nothing moves, so a merchant never nets less than zero.

Time. Validity is read from the clock given (nanoseconds since the epoch, default wall time); the
app passes its clock, so tests move time without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final, Protocol

from tbledger.errors import (
    DuplicateRecordError,
    PriceError,
    UnknownReferenceError,
    ValidationError,
)
from tbledger.flows import FeePayer, exact_rate
from tbledger.ids import format_id, new_id
from tbledger.limits import (
    FEE_BPS_MAX,
    FEE_FIXED_MINOR_MAX,
    QUOTE_VALIDITY_S,
    STORE_TEXT_CHARS_MAX,
)
from tbledger.model import ExchangeQuote, ExchangeRate, MerchantFee

__all__ = ["FeeSchedule", "PriceRecords", "Prices", "fee_amount"]

_BPS_PER_WHOLE: Final = 10_000
_NS_PER_S: Final = 1_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class FeeSchedule:
    """What a payment to a merchant costs: `fee_bps` of the amount plus `fee_fixed_minor`.

    `merchant_id` is None for the platform default (no schedule of the merchant's own).
    """

    fee_bps: int
    fee_fixed_minor: int
    fee_payer: FeePayer
    merchant_id: int | None = None
    set_by: str | None = None
    set_at: datetime | None = None

    def fee_for(self, amount: int) -> int:
        """The fee on a payment of `amount` minor units (see the module docstring)."""
        return fee_amount(amount, self.fee_bps, self.fee_fixed_minor)


def fee_amount(amount: int, fee_bps: int, fee_fixed_minor: int) -> int:
    """``floor(amount * fee_bps / 10_000) + fee_fixed_minor``, exactly."""
    return amount * fee_bps // _BPS_PER_WHOLE + fee_fixed_minor


def _check_fee(fee_bps: object, fee_fixed_minor: object) -> tuple[int, int]:
    if isinstance(fee_bps, bool) or not isinstance(fee_bps, int):
        raise ValidationError(f"fee_bps must be an int, not {type(fee_bps).__name__}")
    if not 0 <= fee_bps <= FEE_BPS_MAX:
        raise ValidationError(f"fee_bps must be in [0, {FEE_BPS_MAX}] (100%), got {fee_bps}")
    if isinstance(fee_fixed_minor, bool) or not isinstance(fee_fixed_minor, int):
        raise ValidationError(
            f"fee_fixed_minor must be an int, not {type(fee_fixed_minor).__name__}"
        )
    if not 0 <= fee_fixed_minor <= FEE_FIXED_MINOR_MAX:
        raise ValidationError(f"fee_fixed_minor must be in [0, {FEE_FIXED_MINOR_MAX}]")
    return fee_bps, fee_fixed_minor


def _fee_payer(value: object) -> FeePayer:
    try:
        return FeePayer(str(value))
    except ValueError:
        raise ValidationError(f"fee_payer must be 'payer' or 'merchant', not {value!r}") from None


def _label(name: str, value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= STORE_TEXT_CHARS_MAX:
        raise ValidationError(f"{name} must be 1 to {STORE_TEXT_CHARS_MAX} characters")
    return value


class PriceRecords(Protocol):
    """Where rates, quotes and fee schedules are kept: the part of the store `Prices` needs
    (`LedgerService.price_records` hands it out, so a shell never holds the store itself)."""

    async def add_exchange_rate(self, rate: ExchangeRate) -> ExchangeRate: ...
    async def current_exchange_rate(
        self, source_ledger: int, target_ledger: int, at: datetime
    ) -> ExchangeRate | None: ...
    async def current_exchange_rates(self, at: datetime) -> list[ExchangeRate]: ...
    async def insert_quote(self, quote: ExchangeQuote) -> ExchangeQuote: ...
    async def get_quote(self, quote_id: int) -> ExchangeQuote | None: ...
    async def quote_spent_by(self, spent_by: str) -> ExchangeQuote | None: ...
    async def spend_quote(self, quote_id: int, at: datetime, spent_by: str | None) -> bool: ...
    async def add_merchant_fee(self, fee: MerchantFee) -> MerchantFee: ...
    async def merchant_fee(self, account_id: int) -> MerchantFee | None: ...


class Prices:
    """Rates, quotes and fees on a store, on a clock. See the module docstring."""

    def __init__(
        self,
        store: PriceRecords,
        *,
        clock: Callable[[], int] | None = None,
        fee_bps: int = 0,
        fee_payer: FeePayer | str = FeePayer.PAYER,
    ) -> None:
        self.store = store
        self._clock = clock if clock is not None else time.time_ns
        bps, _ = _check_fee(fee_bps, 0)
        self.default_fee = FeeSchedule(
            fee_bps=bps, fee_fixed_minor=0, fee_payer=_fee_payer(fee_payer)
        )

    def now(self) -> datetime:
        """The clock's time as an aware UTC datetime (microseconds, as the store keeps it)."""
        ns = self._clock()
        seconds, rest = divmod(ns, _NS_PER_S)
        return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)

    # -- rates ----------------------------------------------------------------------------------

    async def set_rate(
        self,
        source_ledger: int,
        target_ledger: int,
        rate: Decimal | str | int,
        *,
        source: str,
        set_by: str,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
    ) -> ExchangeRate:
        """Record the operator's rate for a pair; it supersedes the older one from `valid_from`."""
        if source_ledger == target_ledger:
            raise ValidationError("a rate needs two different ledgers")
        exact = exact_rate(rate)
        start = self.now() if valid_from is None else _aware("valid_from", valid_from)
        end = None if valid_until is None else _aware("valid_until", valid_until)
        if end is not None and end <= start:
            raise ValidationError("valid_until must be after valid_from")
        return await self.store.add_exchange_rate(
            ExchangeRate(
                source_ledger=source_ledger,
                target_ledger=target_ledger,
                rate=format(exact, "f"),
                valid_from=start,
                valid_until=end,
                source=_label("source", source),
                set_by=_label("set_by", set_by),
            )
        )

    async def current_rate(self, source_ledger: int, target_ledger: int) -> ExchangeRate:
        """The pair's current operator rate; `PriceError` ``rate_unavailable`` if none."""
        found = await self.store.current_exchange_rate(source_ledger, target_ledger, self.now())
        if found is None:
            raise PriceError(
                f"no current exchange rate from ledger {source_ledger} to {target_ledger}",
                code="rate_unavailable",
                details={"source_ledger": source_ledger, "target_ledger": target_ledger},
            )
        return found

    async def current_rates(self) -> list[ExchangeRate]:
        """Every pair's current operator rate."""
        return await self.store.current_exchange_rates(self.now())

    # -- quotes ---------------------------------------------------------------------------------

    async def issue_quote(
        self,
        *,
        source_ledger: int,
        target_ledger: int,
        amount: int,
        owner_id: str | None,
        key_id: str,
    ) -> ExchangeQuote:
        """Fix the current rate for `owner_id` (None: admin keys only), this pair and amount."""
        rate = await self.current_rate(source_ledger, target_ledger)
        now = self.now()
        assert rate.seq is not None  # read back from the store
        return await self.store.insert_quote(
            ExchangeQuote(
                id=new_id(),
                owner_id=owner_id,
                key_id=key_id,
                source_ledger=source_ledger,
                target_ledger=target_ledger,
                amount=amount,
                rate=rate.rate,
                rate_seq=rate.seq,
                issued_at=now,
                expires_at=now + timedelta(seconds=QUOTE_VALIDITY_S),
            )
        )

    async def rate_for_exchange(
        self,
        *,
        source_ledger: int,
        target_ledger: int,
        amount: int,
        owner_id: str | None,
        is_admin: bool,
        key_id: str,
        quote_id: int | None = None,
        spent_by: str | None = None,
    ) -> Decimal:
        """The rate an exchange runs at: the quote's (spent now) or the operator's current one.

        `spent_by` is the exchange's idempotency key: a retry under it gets the first rate.
        """
        if quote_id is not None:
            return await self._spend(
                quote_id, source_ledger, target_ledger, amount, owner_id, is_admin, spent_by
            )
        if spent_by is not None:
            recorded = await self.store.quote_spent_by(spent_by)
            if recorded is not None:
                return Decimal(recorded.rate)
        rate = await self.current_rate(source_ledger, target_ledger)
        if spent_by is None:
            return Decimal(rate.rate)
        now = self.now()
        assert rate.seq is not None  # read back from the store
        try:
            await self.store.insert_quote(
                ExchangeQuote(
                    id=new_id(),
                    owner_id=owner_id,
                    key_id=key_id,
                    source_ledger=source_ledger,
                    target_ledger=target_ledger,
                    amount=amount,
                    rate=rate.rate,
                    rate_seq=rate.seq,
                    issued_at=now,
                    expires_at=now,
                    spent_at=now,
                    spent_by=spent_by,
                )
            )
        except DuplicateRecordError:
            # A concurrent call with the same key priced it first: its rate is the exchange's.
            recorded = await self.store.quote_spent_by(spent_by)
            if recorded is None:
                raise
            return Decimal(recorded.rate)
        return Decimal(rate.rate)

    async def _spend(
        self,
        quote_id: int,
        source_ledger: int,
        target_ledger: int,
        amount: int,
        owner_id: str | None,
        is_admin: bool,
        spent_by: str | None,
    ) -> Decimal:
        quote = await self.store.get_quote(quote_id)
        if quote is None or not (
            is_admin or (quote.owner_id is not None and quote.owner_id == owner_id)
        ):
            raise UnknownReferenceError(
                f"no quote {format_id(quote_id)}",
                code="quote_not_found",
                details={"quote_id": format_id(quote_id)},
            )
        details: dict[str, object] = {"quote_id": format_id(quote_id)}
        if spent_by is not None and quote.spent_by == spent_by:
            return Decimal(quote.rate)  # a retry of the exchange that spent it
        if quote.spent_at is not None:
            raise PriceError(
                f"quote {format_id(quote_id)} was already used", code="quote_used", details=details
            )
        if (quote.source_ledger, quote.target_ledger, quote.amount) != (
            source_ledger,
            target_ledger,
            amount,
        ):
            raise PriceError(
                f"quote {format_id(quote_id)} is for {quote.amount} minor units from ledger "
                f"{quote.source_ledger} to {quote.target_ledger}, not this exchange",
                code="quote_mismatch",
                details=details,
            )
        now = self.now()
        if quote.expires_at <= now:
            raise PriceError(
                f"quote {format_id(quote_id)} expired at {quote.expires_at.isoformat()}",
                code="quote_expired",
                details=details,
            )
        if not await self.store.spend_quote(quote.id, now, spent_by):
            again = await self.store.get_quote(quote.id)
            if spent_by is None or again is None or again.spent_by != spent_by:
                raise PriceError(
                    f"quote {format_id(quote_id)} was already used",
                    code="quote_used",
                    details=details,
                )
        return Decimal(quote.rate)

    # -- fees -----------------------------------------------------------------------------------

    async def fee_schedule(self, merchant_id: int) -> FeeSchedule:
        """The merchant account's schedule, or the platform default if it has none."""
        found = await self.store.merchant_fee(merchant_id)
        if found is None:
            return self.default_fee
        return _schedule(found)

    async def set_merchant_fee(
        self,
        merchant_id: int,
        *,
        fee_bps: int,
        fee_fixed_minor: int,
        fee_payer: FeePayer | str,
        set_by: str,
    ) -> FeeSchedule:
        """Give a merchant account its own schedule (it replaces any older one from now on)."""
        bps, fixed = _check_fee(fee_bps, fee_fixed_minor)
        stored = await self.store.add_merchant_fee(
            MerchantFee(
                account_id=merchant_id,
                fee_bps=bps,
                fee_fixed_minor=fixed,
                fee_payer=_fee_payer(fee_payer).value,
                set_by=_label("set_by", set_by),
            )
        )
        return _schedule(stored)


def _schedule(fee: MerchantFee) -> FeeSchedule:
    return FeeSchedule(
        fee_bps=fee.fee_bps,
        fee_fixed_minor=fee.fee_fixed_minor,
        fee_payer=FeePayer(fee.fee_payer),
        merchant_id=fee.account_id,
        set_by=fee.set_by,
        set_at=fee.created_at,
    )


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValidationError(f"{name} must carry a time zone")
    return value.astimezone(UTC)
