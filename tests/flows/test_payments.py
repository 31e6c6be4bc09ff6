"""Payments (payer -> merchant, fee -> fee pool, refund allowance) and refunds.

A payment is one linked chain: it happens whole or not at all. Its refund ceiling is the engine's:
the payment credits a per-payment refundable account that cannot be overdrawn, and every refund
debits it in the same chain as the money, so refunds never exceed the payment, even concurrently.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import tigerbeetle as tb

from tbledger.errors import (
    AccountFrozenError,
    AccountNotFoundError,
    AmountError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    RefundExceedsPaymentError,
    UnknownReferenceError,
    ValidationError,
)
from tbledger.flows import FeePayer, PaymentResult
from tests.flows.conftest import USD, World

BAD_AMOUNTS = [0, -5, 2.5, False, "0.001", Decimal("0.001"), Decimal("-5"), "1,00", "20", None]


async def fee_pool(world: World) -> int:
    system = (await world.spend.ensure_system_accounts(["USD"]))[USD]
    assert system.fee_pool is not None
    return system.fee_pool


async def test_a_payment_pays_the_merchant_and_the_fee_pool_in_one_chain(world: World) -> None:
    result = await world.spend.pay(
        payer=world.alice,
        merchant=world.shop,
        amount=Decimal("20.00"),
        ledger="USD",
        fee=Decimal("0.50"),
    )
    assert isinstance(result, PaymentResult)
    assert (result.amount, result.fee, result.fee_payer) == (2000, 50, FeePayer.PAYER)
    assert [t.ok for t in result.transfers] == [True, True, True]
    assert (await world.balance(world.alice)).posted == 10_000 - 2050
    assert (await world.balance(world.shop)).posted == 2000
    assert (await world.balance(await fee_pool(world))).posted == 50
    assert await world.spend.refundable_amount(result.payment_id) == 2000
    # Every leg is audited with the flow's event id and payment id, in one chain.
    legs = await world.service.get_transfers_by_event_id(result.event_id)
    assert [leg.control["leg"] for leg in legs] == ["payment", "fee", "refund_allowance"]
    assert {leg.payment_id for leg in legs} == {result.payment_id}
    assert len({leg.chain_id for leg in legs}) == 1 and legs[0].chain_id is not None


async def test_a_merchant_pays_the_fee_out_of_the_amount(world: World) -> None:
    result = await world.spend.pay(
        payer=world.alice,
        merchant=world.shop,
        amount=1000,
        ledger="USD",
        fee=30,
        fee_payer="merchant",
    )
    assert result.fee_payer is FeePayer.MERCHANT
    assert (await world.balance(world.alice)).posted == 9_000
    assert (await world.balance(world.shop)).posted == 970
    assert (await world.balance(await fee_pool(world))).posted == 30


async def test_a_payment_without_a_fee_has_no_fee_leg(world: World) -> None:
    result = await world.spend.pay(payer=world.alice, merchant=world.shop, amount=100, ledger="USD")
    assert len(result.transfers) == 2 and result.fee == 0


async def test_a_payment_the_payer_cannot_cover_moves_nothing(world: World) -> None:
    # The amount alone fits; with the fee it does not: the whole chain is refused.
    with pytest.raises(InsufficientBalanceError) as caught:
        await world.spend.pay(
            payer=world.alice, merchant=world.shop, amount=10_000, ledger="USD", fee=1
        )
    assert (caught.value.available, caught.value.requested) == (10_000, 10_001)
    assert (await world.balance(world.alice)).posted == 10_000
    assert (await world.balance(world.shop)).posted == 0
    assert (await world.balance(await fee_pool(world))).posted == 0


async def test_a_payment_touching_a_frozen_account_is_refused(world: World) -> None:
    await world.freeze(world.shop)
    with pytest.raises(AccountFrozenError):
        await world.spend.pay(payer=world.alice, merchant=world.shop, amount=100, ledger="USD")
    await world.unfreeze(world.shop)
    await world.freeze(world.alice)
    with pytest.raises(AccountFrozenError):
        await world.spend.pay(payer=world.alice, merchant=world.shop, amount=100, ledger="USD")
    assert (await world.balance(world.alice)).posted == 10_000


async def test_a_payment_to_an_unknown_merchant_is_refused(world: World) -> None:
    with pytest.raises(AccountNotFoundError):
        await world.spend.pay(payer=world.alice, merchant=tb.id(), amount=100, ledger="USD")
    assert (await world.balance(world.alice)).posted == 10_000


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
async def test_a_bad_payment_amount_is_refused_before_anything_is_written(
    world: World, amount: object
) -> None:
    before = await world.intents()
    with pytest.raises(AmountError):
        await world.spend.pay(payer=world.alice, merchant=world.shop, amount=amount, ledger="USD")  # type: ignore[arg-type]
    with pytest.raises(AmountError):
        await world.spend.pay(
            payer=world.alice, merchant=world.shop, amount=1, ledger="USD", fee=-1
        )
    assert await world.intents() == before


async def test_bad_payment_input_is_refused_before_anything_is_written(world: World) -> None:
    before = await world.intents()
    with pytest.raises(ValidationError):
        await world.spend.pay(payer=world.alice, merchant=world.alice, amount=1, ledger="USD")
    with pytest.raises(ValidationError):
        await world.spend.pay(
            payer=world.alice, merchant=world.shop, amount=1, ledger="USD", fee_payer="bank"
        )
    with pytest.raises(ValidationError):
        await world.spend.pay(
            payer=world.alice,
            merchant=world.shop,
            amount=10,
            ledger="USD",
            fee=11,
            fee_payer="merchant",
        )
    assert await world.intents() == before


async def test_a_replayed_payment_moves_money_once(world: World) -> None:
    first = await world.spend.pay(
        payer=world.alice,
        merchant=world.shop,
        amount=700,
        ledger="USD",
        fee=7,
        idempotency_key="order-1",
    )
    again = await world.spend.pay(
        payer=world.alice,
        merchant=world.shop,
        amount=700,
        ledger="USD",
        fee=7,
        idempotency_key="order-1",
    )
    assert again.replayed and again.transfer_ids == first.transfer_ids
    assert (again.payment_id, again.refundable_account_id) == (
        first.payment_id,
        first.refundable_account_id,
    )
    assert (await world.balance(world.alice)).posted == 10_000 - 707
    assert await world.spend.refundable_amount(first.payment_id) == 700
    with pytest.raises(IdempotencyConflictError):
        await world.spend.pay(
            payer=world.alice,
            merchant=world.shop,
            amount=700,
            ledger="USD",
            fee=8,
            idempotency_key="order-1",
        )


async def test_a_payment_id_cannot_name_another_payment(world: World) -> None:
    await world.spend.pay(
        payer=world.alice, merchant=world.shop, amount=100, ledger="USD", payment_id="P-1"
    )
    with pytest.raises(IdempotencyConflictError):
        await world.spend.pay(
            payer=world.alice, merchant=world.bob, amount=100, ledger="USD", payment_id="P-1"
        )


# -- refunds --------------------------------------------------------------------------------------


async def paid(world: World, amount: int = 2_000, **kw: object) -> PaymentResult:
    return await world.spend.pay(
        payer=world.alice,
        merchant=world.shop,
        amount=amount,
        ledger="USD",
        **kw,  # type: ignore[arg-type]
    )


async def test_refunds_partial_then_full_return_at_most_the_payment(world: World) -> None:
    payment = await paid(world, fee=100)
    part = await world.spend.refund(payment_id=payment.payment_id, amount=Decimal("5.00"))
    assert (part.amount, part.payer_id, part.merchant_id) == (500, world.alice, world.shop)
    assert part.payment_id == payment.payment_id and part.event_id != payment.event_id
    rest = await world.spend.refund(payment_id=payment.payment_id)
    assert rest.amount == 1_500
    # The fee is not refunded: the ceiling is what was paid for the goods.
    assert (await world.balance(world.alice)).posted == 10_000 - 100
    assert (await world.balance(world.shop)).posted == 0
    assert await world.spend.refundable_amount(payment.payment_id) == 0
    with pytest.raises(RefundExceedsPaymentError) as caught:
        await world.spend.refund(payment_id=payment.payment_id)
    assert caught.value.code == "nothing_to_refund"


async def test_a_refund_beyond_the_payment_is_refused_by_the_engine(world: World) -> None:
    payment = await paid(world)
    await world.spend.deposit(
        account=world.shop, amount=10_000, ledger="USD"
    )  # the merchant could pay it
    await world.spend.refund(payment_id=payment.payment_id, amount=1_500)
    with pytest.raises(RefundExceedsPaymentError) as caught:
        await world.spend.refund(payment_id=payment.payment_id, amount=501)
    assert (caught.value.refundable, caught.value.requested) == (500, 501)
    assert caught.value.code == "exceeds_credits"
    assert (await world.balance(world.alice)).posted == 10_000 - 2_000 + 1_500


async def test_concurrent_refunds_never_exceed_the_payment(world: World) -> None:
    payment = await paid(world, 1_000)
    outcomes = await asyncio.gather(
        *(world.spend.refund(payment_id=payment.payment_id, amount=300) for _ in range(5)),
        return_exceptions=True,
    )
    refunded = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, RefundExceedsPaymentError)]
    assert (len(refunded), len(refused)) == (3, 2)
    assert await world.spend.refundable_amount(payment.payment_id) == 100
    assert (await world.balance(world.shop)).posted == 100


async def test_a_refund_the_merchant_cannot_cover_is_refused(world: World) -> None:
    payment = await paid(world)
    await world.spend.settle_merchant(merchant=world.shop, ledger="USD")
    with pytest.raises(InsufficientBalanceError) as caught:
        await world.spend.refund(payment_id=payment.payment_id, amount=100)
    assert caught.value.details["leg"] == "refund"
    assert await world.spend.refundable_amount(payment.payment_id) == 2_000


async def test_a_refund_touching_a_frozen_account_is_refused(world: World) -> None:
    payment = await paid(world)
    await world.freeze(world.alice)
    with pytest.raises(AccountFrozenError):
        await world.spend.refund(payment_id=payment.payment_id, amount=100)
    assert await world.spend.refundable_amount(payment.payment_id) == 2_000


async def test_a_refund_of_an_unknown_payment_is_refused(world: World) -> None:
    before = await world.intents()
    with pytest.raises(UnknownReferenceError) as caught:
        await world.spend.refund(payment_id="no-such-payment", amount=1)
    assert caught.value.code == "payment_not_found"
    assert isinstance(caught.value, LookupError)
    assert await world.intents() == before


@pytest.mark.parametrize("amount", [0, -1, 1.0, True, "0.001", Decimal("0.001"), "1", "x"])
async def test_a_bad_refund_amount_is_refused_before_anything_is_written(
    world: World, amount: object
) -> None:
    payment = await paid(world)
    before = await world.intents()
    with pytest.raises(AmountError):
        await world.spend.refund(payment_id=payment.payment_id, amount=amount)  # type: ignore[arg-type]
    assert await world.intents() == before


async def test_a_replayed_refund_moves_money_once(world: World) -> None:
    payment = await paid(world)
    first = await world.spend.refund(
        payment_id=payment.payment_id, amount=400, idempotency_key="rf-1"
    )
    again = await world.spend.refund(
        payment_id=payment.payment_id, amount=400, idempotency_key="rf-1"
    )
    assert again.replayed and again.transfer_ids == first.transfer_ids
    assert await world.spend.refundable_amount(payment.payment_id) == 1_600


async def test_a_replayed_full_refund_replays_the_amount_it_refunded(world: World) -> None:
    payment = await paid(world)
    first = await world.spend.refund(payment_id=payment.payment_id, idempotency_key="rf-all")
    # Nothing is left to refund now, yet the replay is the same request, not a refusal.
    again = await world.spend.refund(payment_id=payment.payment_id, idempotency_key="rf-all")
    assert again.replayed and (again.amount, again.transfer_ids) == (2_000, first.transfer_ids)
    assert (await world.balance(world.alice)).posted == 10_000
