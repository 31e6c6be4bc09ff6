"""Deposits (treasury -> user) and withdrawals (user -> treasury): one transfer each.

Every flow refuses bad input before anything is written, is refused by the engine for a frozen or
unknown account, and replays with the same idempotency key without moving money twice.
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
    UnknownLedgerError,
    ValidationError,
)
from tests.flows.conftest import USD, World

# Strings are refused whatever they say (the flows read ints and Decimals); the Decimals are
# refused for their value.
BAD_AMOUNTS = [
    *(0, -1, 1.5, True, None, "12.50", "1.234", "-1", "1e3", " 1", "abc"),
    *(Decimal("1.234"), Decimal("-1"), Decimal("-0"), Decimal("NaN"), Decimal("Infinity")),
]


async def test_a_deposit_credits_the_user_from_the_treasury(world: World) -> None:
    result = await world.spend.deposit(
        account=world.bob, amount=Decimal("12.50"), ledger="USD", payment_id="p-1"
    )
    assert (result.amount, result.ledger, result.account_id) == (1250, USD, world.bob)
    assert len(result.transfers) == 1 and result.transfers[0].ok and not result.replayed
    assert (await world.balance(world.bob)).posted == 1250
    (intent,) = await world.service.get_transfers_by_event_id(result.event_id)
    assert (intent.payment_id, intent.code, intent.amount) == ("p-1", 1, 1250)
    assert intent.control == {"flow": "deposit", "leg": "deposit"}
    assert intent.metadata == {}
    system = (await world.spend.ensure_system_accounts(["USD"]))[USD]
    assert (intent.debit_account_id, intent.credit_account_id) == (system.treasury, world.bob)


async def test_an_int_amount_is_minor_units_and_a_decimal_is_major_units(world: World) -> None:
    await world.spend.deposit(account=world.bob, amount=7, ledger=USD)
    await world.spend.deposit(account=world.bob, amount=Decimal("0.03"), ledger="usd")
    assert (await world.balance(world.bob)).posted == 10


async def test_a_deposit_needs_no_funds_the_treasury_issues_money(world: World) -> None:
    # The deposit's "insufficient funds" case: the treasury is the issuer, never short.
    system = (await world.spend.ensure_system_accounts(["USD"]))[USD]
    before = await world.balance(system.treasury)  # type: ignore[arg-type]
    await world.spend.deposit(account=world.bob, amount=Decimal("1000000.00"), ledger="USD")
    after = await world.balance(system.treasury)  # type: ignore[arg-type]
    assert after.debits_posted - before.debits_posted == 100_000_000


async def test_a_deposit_to_a_frozen_account_is_refused_by_the_engine(world: World) -> None:
    await world.freeze(world.bob)
    with pytest.raises(AccountFrozenError) as caught:
        await world.spend.deposit(account=world.bob, amount=100, ledger="USD")
    assert caught.value.code == "account_frozen"
    assert (await world.balance(world.bob)).posted == 0


async def test_a_deposit_to_an_unknown_account_is_refused(world: World) -> None:
    with pytest.raises(AccountNotFoundError) as caught:
        await world.spend.deposit(account=tb.id(), amount=100, ledger="USD")
    assert caught.value.code == "credit_account_not_found"


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
async def test_a_bad_deposit_amount_is_refused_before_anything_is_written(
    world: World, amount: object
) -> None:
    before = await world.intents()
    with pytest.raises(AmountError):
        await world.spend.deposit(account=world.bob, amount=amount, ledger="USD")  # type: ignore[arg-type]
    assert await world.intents() == before


async def test_bad_ledgers_and_ids_are_refused_before_anything_is_written(world: World) -> None:
    before = await world.intents()
    with pytest.raises(UnknownLedgerError):
        await world.spend.deposit(account=world.bob, amount=1, ledger="XYZ")
    with pytest.raises(ValidationError):
        await world.spend.deposit(account=world.bob, amount=1, ledger="GROCERY_OBLIGATION")
    with pytest.raises(ValidationError):
        await world.spend.deposit(account=0, amount=1, ledger="USD")
    with pytest.raises(ValidationError):
        await world.spend.deposit(account="-5", amount=1, ledger="USD")
    with pytest.raises(ValidationError):
        await world.spend.deposit(account=world.bob, amount=1, ledger="USD", idempotency_key="")
    assert await world.intents() == before


async def test_a_replayed_deposit_moves_money_once(world: World) -> None:
    first = await world.spend.deposit(
        account=world.bob, amount=500, ledger="USD", idempotency_key="dep-1"
    )
    again = await world.spend.deposit(
        account=world.bob, amount=500, ledger="USD", idempotency_key="dep-1"
    )
    assert again.replayed and not first.replayed
    assert (again.transfer_ids, again.event_id, again.payment_id) == (
        first.transfer_ids,
        first.event_id,
        first.payment_id,
    )
    assert (await world.balance(world.bob)).posted == 500
    with pytest.raises(IdempotencyConflictError):
        await world.spend.deposit(
            account=world.bob, amount=501, ledger="USD", idempotency_key="dep-1"
        )


async def test_a_withdrawal_debits_the_user_to_the_treasury(world: World) -> None:
    result = await world.spend.withdraw(account=world.alice, amount=Decimal("40.00"), ledger="USD")
    assert result.amount == 4000 and result.transfers[0].ok
    assert (await world.balance(world.alice)).posted == 6000


async def test_a_withdrawal_beyond_the_balance_is_refused(world: World) -> None:
    with pytest.raises(InsufficientBalanceError) as caught:
        await world.spend.withdraw(account=world.alice, amount=Decimal("100.01"), ledger="USD")
    assert (caught.value.available, caught.value.requested) == (10_000, 10_001)
    assert caught.value.code == "exceeds_credits"
    assert (await world.balance(world.alice)).posted == 10_000


async def test_a_withdrawal_from_a_frozen_account_is_refused(world: World) -> None:
    await world.freeze(world.alice)
    with pytest.raises(AccountFrozenError):
        await world.spend.withdraw(account=world.alice, amount=1, ledger="USD")
    await world.unfreeze(world.alice)
    assert (await world.spend.withdraw(account=world.alice, amount=1, ledger="USD")).transfers[0].ok


async def test_a_withdrawal_from_an_unknown_account_is_refused(world: World) -> None:
    with pytest.raises(AccountNotFoundError):
        await world.spend.withdraw(account=tb.id(), amount=1, ledger="USD")


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
async def test_a_bad_withdrawal_amount_is_refused_before_anything_is_written(
    world: World, amount: object
) -> None:
    before = await world.intents()
    with pytest.raises(AmountError):
        await world.spend.withdraw(account=world.alice, amount=amount, ledger="USD")  # type: ignore[arg-type]
    assert await world.intents() == before


async def test_a_replayed_withdrawal_moves_money_once(world: World) -> None:
    first = await world.spend.withdraw(
        account=world.alice, amount=300, ledger="USD", idempotency_key="w-1"
    )
    again = await world.spend.withdraw(
        account=world.alice, amount=300, ledger="USD", idempotency_key="w-1"
    )
    assert again.replayed and again.transfer_ids == first.transfer_ids
    assert (await world.balance(world.alice)).posted == 9_700


async def test_a_replayed_refusal_is_the_same_refusal(world: World) -> None:
    with pytest.raises(InsufficientBalanceError):
        await world.spend.withdraw(
            account=world.alice, amount=20_000, ledger="USD", idempotency_key="w-2"
        )
    await world.spend.deposit(account=world.alice, amount=20_000, ledger="USD")
    # The key names that request, and its outcome is final, as TigerBeetle's own ids are.
    with pytest.raises(InsufficientBalanceError):
        await world.spend.withdraw(
            account=world.alice, amount=20_000, ledger="USD", idempotency_key="w-2"
        )
