"""Settlement: sweep a merchant's balance to the treasury; reverse a settlement at most once."""

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
    UnknownReferenceError,
    ValidationError,
)
from tests.flows.conftest import USD, World


async def merchant_with(world: World, amount: int) -> None:
    await world.spend.pay(payer=world.alice, merchant=world.shop, amount=amount, ledger="USD")


async def test_a_settlement_sweeps_the_whole_available_balance(world: World) -> None:
    await merchant_with(world, 2_500)
    result = await world.spend.settle_merchant(merchant=world.shop, ledger="USD")
    assert (result.amount, result.merchant_id) == (2_500, world.shop)
    assert result.settlement_id == result.transfer_ids[0]
    assert (await world.balance(world.shop)).posted == 0
    system = (await world.spend.ensure_system_accounts(["USD"]))[USD]
    (intent,) = await world.service.get_transfers_by_event_id(result.event_id)
    assert (intent.debit_account_id, intent.credit_account_id, intent.code) == (
        world.shop,
        system.treasury,
        30,
    )


async def test_a_settlement_of_nothing_moves_nothing(world: World) -> None:
    # The sweep is one balancing transfer; with nothing available the engine clamps it to 0.
    before = await world.spend.service.get_balance(world.shop)
    result = await world.spend.settle_merchant(merchant=world.shop, ledger="USD")
    assert result.amount == 0
    assert [t.status for t in result.transfers] == ["created"]
    assert await world.spend.service.get_balance(world.shop) == before


async def test_a_partial_settlement_and_one_beyond_the_balance(world: World) -> None:
    await merchant_with(world, 1_000)
    assert (
        await world.spend.settle_merchant(merchant=world.shop, ledger="USD", amount=400)
    ).amount == 400
    with pytest.raises(InsufficientBalanceError) as caught:
        await world.spend.settle_merchant(merchant=world.shop, ledger="USD", amount=601)
    assert (caught.value.available, caught.value.requested) == (600, 601)


async def test_concurrent_sweeps_never_overdraw_the_merchant(world: World) -> None:
    await merchant_with(world, 1_000)
    outcomes = await asyncio.gather(
        *(world.spend.settle_merchant(merchant=world.shop, ledger="USD") for _ in range(3)),
        return_exceptions=True,
    )
    # Each read the same balance; the engine let one sweep it and refused the rest.
    settled = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert sum(s.amount for s in settled) == 1_000
    assert all(isinstance(o, InsufficientBalanceError) for o in refused)
    assert (await world.balance(world.shop)).posted == 0


async def test_settling_a_frozen_or_unknown_merchant_is_refused(world: World) -> None:
    await merchant_with(world, 1_000)
    await world.freeze(world.shop)
    with pytest.raises(AccountFrozenError):
        await world.spend.settle_merchant(merchant=world.shop, ledger="USD")
    before = await world.intents()
    with pytest.raises(AccountNotFoundError):
        await world.spend.settle_merchant(merchant=tb.id(), ledger="USD")
    assert await world.intents() == before


@pytest.mark.parametrize("amount", [0, -1, 0.5, "0.001", Decimal("0.001"), "1", False])
async def test_a_bad_settlement_amount_is_refused(world: World, amount: object) -> None:
    await merchant_with(world, 1_000)
    before = await world.intents()
    with pytest.raises(AmountError):
        await world.spend.settle_merchant(merchant=world.shop, ledger="USD", amount=amount)  # type: ignore[arg-type]
    assert await world.intents() == before


async def test_a_replayed_settlement_replays_the_amount_it_swept(world: World) -> None:
    await merchant_with(world, 1_000)
    first = await world.spend.settle_merchant(
        merchant=world.shop, ledger="USD", idempotency_key="s-1"
    )
    await merchant_with(world, 50)
    again = await world.spend.settle_merchant(
        merchant=world.shop, ledger="USD", idempotency_key="s-1"
    )
    assert again.replayed and (again.amount, again.settlement_id) == (1_000, first.settlement_id)
    assert (await world.balance(world.shop)).posted == 50


async def test_a_reversal_gives_the_settlement_back_at_most_once(world: World) -> None:
    await merchant_with(world, 1_000)
    settlement = await world.spend.settle_merchant(merchant=world.shop, ledger="USD")
    assert settlement.settlement_id is not None
    reversal = await world.spend.reverse_settlement(settlement_id=settlement.settlement_id)
    assert (reversal.amount, reversal.merchant_id) == (1_000, world.shop)
    assert reversal.payment_id == settlement.payment_id
    again = await world.spend.reverse_settlement(settlement_id=f"0x{settlement.settlement_id:032x}")
    assert again.replayed and again.reversal_id == reversal.reversal_id
    concurrent = await asyncio.gather(
        *(world.spend.reverse_settlement(settlement_id=settlement.settlement_id) for _ in range(3))
    )
    assert {r.reversal_id for r in concurrent} == {reversal.reversal_id}
    assert (await world.balance(world.shop)).posted == 1_000
    with pytest.raises(IdempotencyConflictError):
        await world.spend.reverse_settlement(
            settlement_id=settlement.settlement_id, event_id="another"
        )
    (intent,) = await world.service.get_transfers_by_event_id(reversal.event_id)
    assert intent.code == 31


async def test_a_reversal_refused_by_a_freeze_can_be_retried_after(world: World) -> None:
    await merchant_with(world, 1_000)
    settlement = await world.spend.settle_merchant(merchant=world.shop, ledger="USD")
    assert settlement.settlement_id is not None
    await world.freeze(world.shop)
    with pytest.raises(AccountFrozenError):
        await world.spend.reverse_settlement(settlement_id=settlement.settlement_id)
    await world.unfreeze(world.shop)
    reversal = await world.spend.reverse_settlement(settlement_id=settlement.settlement_id)
    assert not reversal.replayed
    assert (await world.spend.reverse_settlement(settlement_id=settlement.settlement_id)).replayed
    assert (await world.balance(world.shop)).posted == 1_000


async def test_reversing_what_is_not_a_settlement_is_refused(world: World) -> None:
    deposit = await world.spend.deposit(account=world.bob, amount=1, ledger="USD")
    for reference in (tb.id(), deposit.transfer_ids[0]):
        with pytest.raises(UnknownReferenceError):
            await world.spend.reverse_settlement(settlement_id=reference)
    # A settlement the engine refused did not happen, so there is nothing to reverse.
    await merchant_with(world, 1_000)
    await world.freeze(world.shop)
    with pytest.raises(AccountFrozenError):
        await world.spend.settle_merchant(
            merchant=world.shop, ledger="USD", event_id="refused-sweep"
        )
    (refused,) = await world.service.get_transfers_by_event_id("refused-sweep")
    with pytest.raises(ValidationError):
        await world.spend.reverse_settlement(settlement_id=refused.id)


async def test_an_anchor_is_paid_out_by_settling_it(world: World) -> None:
    auth = await world.spend.authorize_anchor(
        user=world.alice, amount=700, obligation="grocery", timeout_s=60
    )
    await world.spend.fulfill_anchor(authorization=auth)
    anchor = (await world.spend.ensure_system_accounts(["USD"]))[USD].anchor
    assert anchor is not None
    result = await world.spend.settle_merchant(merchant=anchor, ledger="USD")
    assert result.amount == 700
    balance = await world.balance(anchor)
    assert (balance.credits_posted, balance.debits_posted) == (700, 700)
