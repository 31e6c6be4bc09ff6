"""Escrow: one account per contract; lock, release to a merchant, void back to the payer.

The escrow account cannot be overdrawn, so the engine itself refuses releasing or voiding more
than was locked, whatever the interleaving of calls.
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
    UnknownReferenceError,
    ValidationError,
)
from tbledger.ids import format_id
from tests.flows.conftest import World


async def test_lock_then_release_part_and_void_the_rest(world: World) -> None:
    lock = await world.spend.escrow_lock(
        contract_id="c-1", payer=world.alice, amount=Decimal("60.00"), ledger="USD"
    )
    assert (lock.amount, lock.payer_id, lock.contract_id) == (6_000, world.alice, "c-1")
    assert (await world.balance(world.alice)).posted == 4_000
    assert (await world.balance(lock.escrow_account_id)).posted == 6_000
    record = await world.service.store.get_account(lock.escrow_account_id)
    assert record is not None and (record.flow_ref, record.account_type) == ("c-1", "escrow")
    assert record.control["payer"] == format_id(world.alice)
    released = await world.spend.escrow_release(
        contract_id="c-1", merchant=world.shop, amount=Decimal("25.00")
    )
    assert (released.amount, released.merchant_id) == (2_500, world.shop)
    voided = await world.spend.escrow_void(contract_id="c-1")
    assert (voided.amount, voided.payer_id) == (3_500, world.alice)
    assert (await world.balance(world.shop)).posted == 2_500
    assert (await world.balance(world.alice)).posted == 7_500
    assert (await world.balance(lock.escrow_account_id)).posted == 0
    legs = await world.service.get_transfers_by_event_id(released.event_id)
    assert [(leg.code, leg.control["contract_id"]) for leg in legs] == [(21, "c-1")]


async def test_more_locks_add_up_and_a_full_release_takes_everything(world: World) -> None:
    await world.spend.escrow_lock(contract_id="c-2", payer=world.alice, amount=1_000, ledger="USD")
    await world.spend.escrow_lock(contract_id="c-2", payer=world.alice, amount=500, ledger="USD")
    released = await world.spend.escrow_release(contract_id="c-2", merchant=world.shop)
    assert released.amount == 1_500
    with pytest.raises(ValidationError):
        await world.spend.escrow_release(contract_id="c-2", merchant=world.shop)  # nothing left


async def test_a_contract_belongs_to_one_payer(world: World) -> None:
    second = (await world.spend.open_account("alice", ledger="USD")).id
    await world.spend.deposit(account=second, amount=100, ledger="USD")
    await world.spend.escrow_lock(contract_id="c-3", payer=world.alice, amount=100, ledger="USD")
    with pytest.raises(ValidationError):
        await world.spend.escrow_lock(contract_id="c-3", payer=second, amount=100, ledger="USD")


async def test_contract_ids_are_scoped_to_the_payers_owner(world: World) -> None:
    # Bob's "c-3" is another contract than alice's: he can neither block nor join hers.
    await world.spend.deposit(account=world.bob, amount=100, ledger="USD")
    alices = await world.spend.escrow_lock(
        contract_id="c-3", payer=world.alice, amount=100, ledger="USD"
    )
    bobs = await world.spend.escrow_lock(
        contract_id="c-3", payer=world.bob, amount=60, ledger="USD"
    )
    assert alices.escrow_account_id != bobs.escrow_account_id
    with pytest.raises(ValidationError):  # two contracts share the id: name the payer
        await world.spend.escrow_void(contract_id="c-3")
    voided = await world.spend.escrow_void(contract_id="c-3", payer=world.bob)
    assert (voided.payer_id, voided.amount) == (world.bob, 60)
    assert (await world.balance(alices.escrow_account_id)).posted == 100


async def test_a_lock_beyond_the_balance_is_refused(world: World) -> None:
    with pytest.raises(InsufficientBalanceError):
        await world.spend.escrow_lock(
            contract_id="c-4", payer=world.alice, amount=10_001, ledger="USD"
        )
    assert (await world.balance(world.alice)).posted == 10_000


async def test_the_engine_refuses_releasing_more_than_was_locked(world: World) -> None:
    lock = await world.spend.escrow_lock(
        contract_id="c-5", payer=world.alice, amount=1_000, ledger="USD"
    )
    with pytest.raises(InsufficientBalanceError) as caught:
        await world.spend.escrow_release(contract_id="c-5", merchant=world.shop, amount=1_001)
    assert caught.value.details["debit_account_id"] == f"0x{lock.escrow_account_id:032x}"
    assert caught.value.available == 1_000
    with pytest.raises(InsufficientBalanceError):
        await world.spend.escrow_void(contract_id="c-5", amount=1_001)
    # Concurrent releases: the engine lets through exactly what was locked.
    outcomes = await asyncio.gather(
        *(
            world.spend.escrow_release(contract_id="c-5", merchant=world.shop, amount=400)
            for _ in range(4)
        ),
        return_exceptions=True,
    )
    assert sum(1 for o in outcomes if not isinstance(o, BaseException)) == 2
    assert all(
        isinstance(o, InsufficientBalanceError) for o in outcomes if isinstance(o, Exception)
    )
    assert (await world.balance(world.shop)).posted == 800


async def test_frozen_accounts_are_refused(world: World) -> None:
    await world.spend.escrow_lock(contract_id="c-6", payer=world.alice, amount=1_000, ledger="USD")
    await world.freeze(world.shop)
    with pytest.raises(AccountFrozenError):
        await world.spend.escrow_release(contract_id="c-6", merchant=world.shop, amount=100)
    await world.freeze(world.alice)
    with pytest.raises(AccountFrozenError):
        await world.spend.escrow_lock(
            contract_id="c-6", payer=world.alice, amount=100, ledger="USD"
        )
    with pytest.raises(AccountFrozenError):
        await world.spend.escrow_void(contract_id="c-6")


async def test_unknown_accounts_and_contracts_are_refused(world: World) -> None:
    with pytest.raises(AccountNotFoundError):
        await world.spend.escrow_lock(contract_id="c-7", payer=tb.id(), amount=100, ledger="USD")
    await world.spend.escrow_lock(contract_id="c-8", payer=world.alice, amount=100, ledger="USD")
    with pytest.raises(AccountNotFoundError):
        await world.spend.escrow_release(contract_id="c-8", merchant=tb.id(), amount=100)
    before = await world.intents()
    with pytest.raises(UnknownReferenceError) as caught:
        await world.spend.escrow_release(
            contract_id="no-such-contract", merchant=world.shop, amount=1
        )
    assert caught.value.code == "contract_not_found"
    with pytest.raises(UnknownReferenceError):
        await world.spend.escrow_void(contract_id="no-such-contract")
    assert await world.intents() == before


@pytest.mark.parametrize(
    "amount", [0, -1, 0.5, "1.001", Decimal("1.001"), Decimal("-1"), True, "1e2", "10"]
)
async def test_bad_amounts_are_refused_before_anything_is_written(
    world: World, amount: object
) -> None:
    await world.spend.escrow_lock(contract_id="c-9", payer=world.alice, amount=100, ledger="USD")
    before = await world.intents()
    with pytest.raises(AmountError):
        await world.spend.escrow_lock(
            contract_id="c-9",
            payer=world.alice,
            amount=amount,  # type: ignore[arg-type]
            ledger="USD",
        )
    with pytest.raises(AmountError):
        await world.spend.escrow_release(contract_id="c-9", merchant=world.shop, amount=amount)  # type: ignore[arg-type]
    with pytest.raises(AmountError):
        await world.spend.escrow_void(contract_id="c-9", amount=amount)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await world.spend.escrow_lock(contract_id="", payer=world.alice, amount=1, ledger="USD")
    assert await world.intents() == before


async def test_replayed_escrow_flows_move_money_once(world: World) -> None:
    lock = await world.spend.escrow_lock(
        contract_id="c-10", payer=world.alice, amount=900, ledger="USD", idempotency_key="l"
    )
    relock = await world.spend.escrow_lock(
        contract_id="c-10", payer=world.alice, amount=900, ledger="USD", idempotency_key="l"
    )
    assert relock.replayed and relock.transfer_ids == lock.transfer_ids
    release = await world.spend.escrow_release(
        contract_id="c-10", merchant=world.shop, amount=300, idempotency_key="r"
    )
    again = await world.spend.escrow_release(
        contract_id="c-10", merchant=world.shop, amount=300, idempotency_key="r"
    )
    assert again.replayed and again.transfer_ids == release.transfer_ids
    void = await world.spend.escrow_void(contract_id="c-10", idempotency_key="v")
    # The escrow is empty now; the replay replays the amount it voided.
    revoid = await world.spend.escrow_void(contract_id="c-10", idempotency_key="v")
    assert revoid.replayed and (revoid.amount, revoid.transfer_ids) == (600, void.transfer_ids)
    assert (await world.balance(world.alice)).posted == 10_000 - 300
    with pytest.raises(IdempotencyConflictError):
        await world.spend.escrow_release(
            contract_id="c-10", merchant=world.bob, amount=300, idempotency_key="r"
        )
