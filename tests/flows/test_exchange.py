"""Currency exchange through liquidity accounts (TigerBeetle's recipe), rounding down.

user's account on A -> liquidity A (amount a), liquidity B -> user's account on B (amount b),
linked, with b = floor(a * rate * 10**(scale_B - scale_A)). The liquidity account on B pays out
only what it holds, so an exchange the platform cannot cover moves nothing at all.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import tigerbeetle as tb

from tbledger.errors import (
    AccountFrozenError,
    AccountNotFoundError,
    AmountError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InsufficientLiquidityError,
    ValidationError,
)
from tbledger.flows import exchange_amount
from tests.flows.conftest import EUR, USD, World


@pytest.mark.parametrize(
    ("amount", "rate", "source_scale", "target_scale", "expected"),
    [
        (1000, "0.9", 2, 2, 900),  # 10.00 USD -> 9.00 EUR
        (100, "0.915", 2, 2, 91),  # 0.915 EUR rounds down to 0.91
        (199, "0.5", 2, 2, 99),  # 0.995 rounds down
        (10_000, "0.0000153", 2, 8, 153_000),  # 100.00 USD -> 0.00153 BTC, in satoshi
        (153_000, "65359.47", 8, 2, 9_999),  # 0.00153 BTC -> 99.99998... USD, down to 99.99
        (1, "0.5", 2, 2, 0),  # half a cent is nothing
        (7, "3", 0, 0, 21),
        (10**30, "1", 18, 6, 10**18),  # wei to USDC micro-units, exact
    ],
)
def test_the_exchanged_amount_is_exact_and_rounded_down(
    amount: int, rate: str, source_scale: int, target_scale: int, expected: int
) -> None:
    assert exchange_amount(amount, Decimal(rate), source_scale, target_scale) == expected


async def open_eur(world: World, owner: str = "alice") -> int:
    return (await world.spend.open_account(owner, ledger="EUR")).id


async def test_an_exchange_moves_both_sides_through_liquidity(world: World) -> None:
    alice_eur = await open_eur(world)
    await world.spend.fund_liquidity(amount=Decimal("500.00"), ledger="EUR")
    result = await world.spend.exchange(
        source=world.alice,
        target=alice_eur,
        amount=Decimal("10.00"),
        source_ledger="USD",
        target_ledger="EUR",
        rate="0.915",
    )
    assert (result.ledger, result.amount, result.target_ledger, result.target_amount) == (
        USD,
        1_000,
        EUR,
        915,
    )
    assert result.rate == Decimal("0.915")
    assert (await world.balance(world.alice)).posted == 9_000
    assert (await world.balance(alice_eur)).posted == 915
    assert await world.spend.liquidity_available("EUR") == 50_000 - 915
    assert await world.spend.liquidity_available("USD") == 1_000
    legs = await world.service.get_transfers_by_event_id(result.event_id)
    assert [(leg.ledger, leg.control["leg"], leg.control["rate"]) for leg in legs] == [
        (USD, "exchange_out", "0.915"),
        (EUR, "exchange_in", "0.915"),
    ]


async def test_an_exchange_the_platform_cannot_cover_moves_nothing(world: World) -> None:
    alice_eur = await open_eur(world)
    await world.spend.fund_liquidity(amount=500, ledger="EUR")
    with pytest.raises(InsufficientLiquidityError) as caught:
        await world.spend.exchange(
            source=world.alice,
            target=alice_eur,
            amount=1_000,
            source_ledger="USD",
            target_ledger="EUR",
            rate=1,
        )
    assert (caught.value.available, caught.value.requested) == (500, 1_000)
    assert (await world.balance(world.alice)).posted == 10_000
    assert await world.spend.liquidity_available("USD") == 0


async def test_an_exchange_beyond_the_users_balance_is_refused(world: World) -> None:
    alice_eur = await open_eur(world)
    await world.spend.fund_liquidity(amount=1_000_000, ledger="EUR")
    with pytest.raises(InsufficientBalanceError) as caught:
        await world.spend.exchange(
            source=world.alice,
            target=alice_eur,
            amount=10_001,
            source_ledger="USD",
            target_ledger="EUR",
            rate="0.9",
        )
    assert not isinstance(caught.value, InsufficientLiquidityError)
    assert await world.spend.liquidity_available("EUR") == 1_000_000


async def test_frozen_and_unknown_accounts_are_refused(world: World) -> None:
    alice_eur = await open_eur(world)
    await world.spend.fund_liquidity(amount=1_000, ledger="EUR")
    await world.freeze(alice_eur)
    with pytest.raises(AccountFrozenError):
        await world.spend.exchange(
            source=world.alice,
            target=alice_eur,
            amount=100,
            source_ledger="USD",
            target_ledger="EUR",
            rate=1,
        )
    with pytest.raises(AccountNotFoundError):
        await world.spend.exchange(
            source=world.alice,
            target=tb.id(),
            amount=100,
            source_ledger="USD",
            target_ledger="EUR",
            rate=1,
        )
    assert (await world.balance(world.alice)).posted == 10_000


@pytest.mark.parametrize("amount", [0, -1, 0.5, True, "0.001", Decimal("0.001"), "5"])
async def test_bad_amounts_are_refused_before_anything_is_written(
    world: World, amount: object
) -> None:
    alice_eur = await open_eur(world)
    before = await world.intents()
    with pytest.raises(AmountError):
        await world.spend.exchange(
            source=world.alice,
            target=alice_eur,
            amount=amount,  # type: ignore[arg-type]
            source_ledger="USD",
            target_ledger="EUR",
            rate=1,
        )
    with pytest.raises(AmountError):
        await world.spend.fund_liquidity(amount=amount, ledger="EUR")  # type: ignore[arg-type]
    assert await world.intents() == before


@pytest.mark.parametrize(
    "rate", [0, "0", "-1", 0.9, True, "1e3", " 1", "abc", Decimal("NaN"), Decimal("-2"), "1" * 50]
)
async def test_bad_rates_are_refused_before_anything_is_written(world: World, rate: object) -> None:
    alice_eur = await open_eur(world)
    before = await world.intents()
    with pytest.raises(ValidationError):
        await world.spend.exchange(
            source=world.alice,
            target=alice_eur,
            amount=100,
            source_ledger="USD",
            target_ledger="EUR",
            rate=rate,  # type: ignore[arg-type]
        )
    assert await world.intents() == before


async def test_an_exchange_that_would_pay_out_nothing_is_refused(world: World) -> None:
    alice_eur = await open_eur(world)
    before = await world.intents()
    with pytest.raises(AmountError):
        await world.spend.exchange(
            source=world.alice,
            target=alice_eur,
            amount=1,
            source_ledger="USD",
            target_ledger="EUR",
            rate="0.5",
        )
    with pytest.raises(ValidationError):
        await world.spend.exchange(
            source=world.alice,
            target=world.bob,
            amount=1,
            source_ledger="USD",
            target_ledger="USD",
            rate=1,
        )
    assert await world.intents() == before


async def test_a_replayed_exchange_moves_money_once(world: World) -> None:
    alice_eur = await open_eur(world)
    await world.spend.fund_liquidity(amount=10_000, ledger="EUR", idempotency_key="fund")
    assert (
        await world.spend.fund_liquidity(amount=10_000, ledger="EUR", idempotency_key="fund")
    ).replayed
    first = await world.spend.exchange(
        source=world.alice,
        target=alice_eur,
        amount=500,
        source_ledger="USD",
        target_ledger="EUR",
        rate="1.1",
        idempotency_key="x-1",
    )
    again = await world.spend.exchange(
        source=world.alice,
        target=alice_eur,
        amount=500,
        source_ledger="USD",
        target_ledger="EUR",
        rate="1.1",
        idempotency_key="x-1",
    )
    assert again.replayed and again.transfer_ids == first.transfer_ids
    assert (await world.balance(alice_eur)).posted == 550
    with pytest.raises(IdempotencyConflictError):
        await world.spend.exchange(
            source=world.alice,
            target=alice_eur,
            amount=500,
            source_ledger="USD",
            target_ledger="EUR",
            rate="1.2",
            idempotency_key="x-1",
        )
