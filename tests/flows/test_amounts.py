"""How every flow reads money: an ``int`` is minor units, a `Decimal` is major units, and a
``str`` is refused, so the same call can no longer move amounts 100 times apart on the Python
type of its amount (``100`` was 1.00 USD while ``"100"`` was 100.00 USD).

Text is read where it arrives (the HTTP API, the command line), by the shell that knows its unit.
A refused amount writes nothing, and its message says what to pass instead. `open_account`
answers what `LedgerService.create_account` answers: an `AccountInfo`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from tbledger.errors import AmountError
from tbledger.flows import SpendEngine
from tbledger.service import AccountInfo, LedgerService
from tests.flows.conftest import USD, World


async def test_an_int_is_minor_units_a_decimal_major_units_and_a_str_is_refused(
    world: World,
) -> None:
    minor = await world.spend.deposit(account=world.bob, amount=100, ledger="USD")
    major = await world.spend.deposit(account=world.bob, amount=Decimal("100"), ledger="USD")
    assert (minor.amount, major.amount) == (100, 10_000)
    before = await world.intents()
    with pytest.raises(AmountError) as caught:
        await world.spend.deposit(account=world.bob, amount="100", ledger="USD")  # type: ignore[arg-type]
    message = str(caught.value)
    assert "'100' is a str" in message
    assert "int of minor units" in message and "Decimal of major units" in message
    assert await world.intents() == before
    assert (await world.balance(world.bob)).posted == 10_100


async def test_a_decimal_is_read_exactly_at_the_ledger_scale_and_never_rounded(
    world: World,
) -> None:
    result = await world.spend.deposit(account=world.bob, amount=Decimal("0.07"), ledger=USD)
    assert result.amount == 7
    with pytest.raises(AmountError, match="decimal places"):
        await world.spend.deposit(account=world.bob, amount=Decimal("0.075"), ledger=USD)


async def test_a_long_str_amount_is_quoted_short(world: World) -> None:
    with pytest.raises(AmountError) as caught:
        await world.spend.deposit(account=world.bob, amount="9" * 500, ledger="USD")  # type: ignore[arg-type]
    assert len(str(caught.value)) < 400


FlowCall = Callable[[SpendEngine, dict[str, Any], Any], Awaitable[object]]

# Every money parameter of every flow, called with a str where the amount goes.
MONEY_PARAMETERS: dict[str, FlowCall] = {
    "deposit": lambda s, w, a: s.deposit(account=w["bob"], amount=a, ledger="USD"),
    "withdraw": lambda s, w, a: s.withdraw(account=w["alice"], amount=a, ledger="USD"),
    "fund_liquidity": lambda s, w, a: s.fund_liquidity(amount=a, ledger="EUR"),
    "pay amount": lambda s, w, a: s.pay(
        payer=w["alice"], merchant=w["shop"], amount=a, ledger="USD"
    ),
    "pay fee": lambda s, w, a: s.pay(
        payer=w["alice"], merchant=w["shop"], amount=100, ledger="USD", fee=a
    ),
    "refund": lambda s, w, a: s.refund(payment_id=w["payment_id"], amount=a),
    "authorize_anchor": lambda s, w, a: s.authorize_anchor(
        user=w["alice"], amount=a, obligation="grocery", timeout_s=60
    ),
    "fulfill_anchor": lambda s, w, a: s.fulfill_anchor(authorization=w["hold_id"], amount=a),
    "escrow_lock": lambda s, w, a: s.escrow_lock(
        contract_id="k-1", payer=w["alice"], amount=a, ledger="USD"
    ),
    "escrow_release": lambda s, w, a: s.escrow_release(
        contract_id="k-1", merchant=w["shop"], amount=a
    ),
    "escrow_void": lambda s, w, a: s.escrow_void(contract_id="k-1", amount=a),
    "settle_merchant": lambda s, w, a: s.settle_merchant(
        merchant=w["shop"], ledger="USD", amount=a
    ),
    "exchange": lambda s, w, a: s.exchange(
        source=w["alice"],
        target=w["alice_eur"],
        amount=a,
        source_ledger="USD",
        target_ledger="EUR",
        rate="0.9",
    ),
}


@pytest.mark.parametrize("text", ["12.50", "0"])
@pytest.mark.parametrize("flow", sorted(MONEY_PARAMETERS))
async def test_every_money_parameter_refuses_a_str_before_anything_is_written(
    world: World, flow: str, text: str
) -> None:
    spend = world.spend
    payment = await spend.pay(payer=world.alice, merchant=world.shop, amount=1_000, ledger="USD")
    hold = await spend.authorize_anchor(
        user=world.alice, amount=500, obligation="fuel", timeout_s=60
    )
    await spend.escrow_lock(contract_id="k-1", payer=world.alice, amount=500, ledger="USD")
    alice_eur = (await spend.open_account("alice", ledger="EUR")).id
    await spend.fund_liquidity(amount=10_000, ledger="EUR")
    names = {
        "alice": world.alice,
        "bob": world.bob,
        "shop": world.shop,
        "alice_eur": alice_eur,
        "payment_id": payment.payment_id,
        "hold_id": hold.hold_id,
    }
    before = await world.intents()
    with pytest.raises(AmountError, match="is a str"):
        await MONEY_PARAMETERS[flow](spend, names, text)
    assert await world.intents() == before


async def test_open_account_answers_as_create_account_does(
    spend: SpendEngine, service: LedgerService
) -> None:
    opened = await spend.open_account("alice", ledger="USD", metadata={"tier": "gold"})
    assert isinstance(opened, AccountInfo)
    assert (opened.record.owner_id, opened.record.account_type, opened.record.ledger) == (
        "alice",
        "user",
        USD,
    )
    assert opened.record.metadata == {"tier": "gold"}
    assert opened.id == opened.record.id
    found = await service.get_account(opened.id)
    assert found.record == opened.record
    merchant = await spend.open_account("shop", ledger="USD", account_type="merchant")
    assert isinstance(merchant, AccountInfo) and merchant.record.account_type == "merchant"
    # The id it carries is the account's: money moves to it.
    await spend.deposit(account=opened.id, amount=Decimal("1.25"), ledger="USD")
    assert (await service.get_balance(opened.id)).posted == 125
