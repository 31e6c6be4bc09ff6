"""System accounts: created once, found again by unique name, with the documented flags."""

from __future__ import annotations

import asyncio

import pytest
import tigerbeetle as tb

from tbledger.balances import AccountType
from tbledger.errors import ConfigurationError, UnknownLedgerError, ValidationError
from tbledger.flows import SpendEngine
from tbledger.service import LedgerService
from tests.flows.conftest import USD

F = tb.AccountFlags
NOT_OVERDRAWN = F.DEBITS_MUST_NOT_EXCEED_CREDITS | F.HISTORY
NOT_OVERISSUED = F.CREDITS_MUST_NOT_EXCEED_DEBITS | F.HISTORY

EXPECTED = {
    # role: (account type, engine flags)
    "treasury": (AccountType.TREASURY, NOT_OVERISSUED),
    "fee_pool": (AccountType.FEE_POOL, NOT_OVERDRAWN),
    "buffer": (AccountType.SYSTEM_BUFFER, NOT_OVERISSUED),
    "liquidity": (AccountType.SYSTEM_BUFFER, NOT_OVERDRAWN),
    "anchor": (AccountType.ANCHOR, NOT_OVERDRAWN),
}


async def test_every_ledger_gets_the_accounts_it_needs(
    spend: SpendEngine, service: LedgerService
) -> None:
    systems = await spend.ensure_system_accounts()
    assert set(systems) == {ledger.code for ledger in spend.chart.ledgers}
    usd, eur, grocery = systems[USD], systems[2], systems[1001]
    assert None not in (usd.treasury, usd.fee_pool, usd.buffer, usd.liquidity, usd.anchor)
    # Only USD has obligations settling in it; obligation ledgers hold records, not money.
    assert eur.anchor is None and eur.treasury is not None
    assert (grocery.treasury, grocery.fee_pool, grocery.liquidity) == (None, None, None)
    assert None not in (grocery.buffer, grocery.anchor)
    for role, (account_type, flags) in EXPECTED.items():
        account_id = getattr(usd, role)
        record = await service.store.get_account(account_id)
        assert record is not None
        assert (record.name, record.account_type, record.ledger) == (
            f"system:{role}:{USD}",
            account_type,
            USD,
        )
        (account,) = await service.engine.lookup_accounts([account_id])
        assert account.flags == flags, role


async def test_users_and_merchants_cannot_be_overdrawn(spend: SpendEngine) -> None:
    user = (await spend.open_account("u", ledger="USD")).id
    merchant = (await spend.open_account("m", ledger="EUR", account_type="merchant")).id
    engine = spend.service.engine
    for account in await engine.lookup_accounts([user, merchant]):
        assert account.flags & F.DEBITS_MUST_NOT_EXCEED_CREDITS
    with pytest.raises(ValidationError):
        await spend.open_account("x", ledger="USD", account_type="treasury")
    with pytest.raises(ValidationError):
        await spend.open_account("x", ledger="USD", account_type="wizard")
    with pytest.raises(UnknownLedgerError):
        await spend.open_account("x", ledger="XYZ")


async def test_system_accounts_are_created_once_and_found_again(
    spend: SpendEngine, service: LedgerService
) -> None:
    first = await spend.ensure_system_accounts(["USD", "EUR"])
    again = await spend.ensure_system_accounts([1, "eur"])
    assert first == again
    # Another engine (another process) finds them by name instead of creating new ones.
    other = SpendEngine(service)
    assert await other.ensure_system_accounts(["USD", "EUR"]) == first


async def test_concurrent_creators_agree_on_one_account_per_name(service: LedgerService) -> None:
    engines = [SpendEngine(service) for _ in range(4)]
    found = await asyncio.gather(
        *(e.ensure_system_accounts(["USD", "GROCERY_OBLIGATION"]) for e in engines for _ in (1, 2))
    )
    assert all(f == found[0] for f in found)


async def test_a_name_taken_by_another_kind_of_account_is_a_configuration_error(
    spend: SpendEngine, service: LedgerService
) -> None:
    await service.create_account(
        owner_id=None, account_type="user", ledger=USD, name=f"system:treasury:{USD}"
    )
    with pytest.raises(ConfigurationError):
        await spend.ensure_system_accounts(["USD"])
