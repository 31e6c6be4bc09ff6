"""Accounts: creating them (engine first, then the mapping), reading them, and their balances.

An account exists twice: in the engine (money, flags) and in the store (type, owner, name,
status). `create_account` validates everything before the engine sees anything, fills in the code
and the engine flags of the account's type, and is idempotent with the same `account_id`.
Balances are read from the engine and derived on the account's normal side (DESIGN §5): a user's
wallet is credit-normal, a treasury debit-normal.
"""

from __future__ import annotations

import pytest
import tigerbeetle as tb

from tbledger.balances import ACCOUNT_TYPE_CODES, AccountType, NormalSide
from tbledger.errors import (
    AccountNotFoundError,
    DuplicateRecordError,
    InvalidIdError,
    TigerBeetleError,
    ValidationError,
)
from tbledger.service import LedgerService
from tbledger.store import AccountStatus, EventKind
from tests.service.conftest import Ledger
from tests.service.helpers import LEDGER, deposit, engine_account, one_store, request
from tests.support.book import open_service_book

_F = tb.AccountFlags
CREDIT_NORMAL_FLAGS = _F.DEBITS_MUST_NOT_EXCEED_CREDITS | _F.HISTORY


# -- create_account ------------------------------------------------------------------------------


@one_store
@pytest.mark.parametrize(
    ("account_type", "flags"),
    [
        ("user", CREDIT_NORMAL_FLAGS),
        ("merchant", CREDIT_NORMAL_FLAGS),
        ("escrow", CREDIT_NORMAL_FLAGS),
        ("fee_pool", CREDIT_NORMAL_FLAGS),
        ("treasury", _F.CREDITS_MUST_NOT_EXCEED_DEBITS | _F.HISTORY),
        ("anchor", _F.NONE),
        ("system_buffer", _F.NONE),
        ("control", _F.NONE),
    ],
)
async def test_each_account_type_gets_its_code_and_engine_flags(
    ledger: Ledger, account_type: str, flags: tb.AccountFlags
) -> None:
    info = await ledger.service.create_account(
        owner_id="o1", account_type=account_type, ledger=LEDGER
    )
    code = ACCOUNT_TYPE_CODES[AccountType(account_type)]
    assert (info.record.account_type, info.record.code, info.record.ledger) == (
        account_type,
        code,
        LEDGER,
    )
    assert info.status is AccountStatus.ACTIVE
    account = await engine_account(ledger.client, info.id)
    assert (account.ledger, account.code, account.flags) == (LEDGER, code, flags)


async def test_explicit_code_flags_and_user_data_reach_the_engine(ledger: Ledger) -> None:
    info = await ledger.service.create_account(
        owner_id="o1",
        account_type="user",
        ledger=LEDGER,
        code=77,
        flags=_F.HISTORY,
        user_data_128=5,
        user_data_64=6,
        user_data_32=7,
        name="special",
        metadata={"tier": "gold"},
    )
    account = await engine_account(ledger.client, info.id)
    assert (account.code, account.flags) == (77, _F.HISTORY)
    assert (account.user_data_128, account.user_data_64, account.user_data_32) == (5, 6, 7)
    stored = await ledger.store.get_account(info.id)
    assert stored is not None
    assert (stored.name, dict(stored.metadata)) == ("special", {"tier": "gold"})


async def test_an_unknown_account_type_needs_a_code(ledger: Ledger) -> None:
    with pytest.raises(ValidationError, match="code"):
        await ledger.service.create_account(owner_id="o", account_type="vault", ledger=LEDGER)
    info = await ledger.service.create_account(
        owner_id="o", account_type="vault", ledger=LEDGER, code=900
    )
    account = await engine_account(ledger.client, info.id)
    # Unknown types are treated as holders of money: credit-normal, never overdrawn.
    assert account.flags == CREDIT_NORMAL_FLAGS
    assert (await ledger.service.get_balance(info.id)).normal_side is NormalSide.CREDIT


async def test_create_account_is_idempotent_with_the_same_account_id(ledger: Ledger) -> None:
    account_id = tb.id()
    first = await ledger.service.create_account(
        owner_id="alice", account_type="user", ledger=LEDGER, account_id=account_id
    )
    again = await ledger.service.create_account(
        owner_id="alice", account_type="user", ledger=LEDGER, account_id=hex(account_id)
    )
    assert first.id == again.id == account_id
    assert again.record == first.record
    events = await ledger.store.events_since(0, 1000)
    created = [e for e in events if e.kind is EventKind.ACCOUNT_CREATED]
    assert [e.account_id for e in created] == [account_id]
    assert len(await ledger.client.lookup_accounts([account_id])) == 1


async def test_create_account_completes_a_half_created_account(ledger: Ledger) -> None:
    # A crash between the engine and the store left an engine account without a mapping.
    account_id = tb.id()
    code = ACCOUNT_TYPE_CODES[AccountType.USER]
    (result,) = await ledger.client.create_accounts(
        [tb.Account(id=account_id, ledger=LEDGER, code=code, flags=CREDIT_NORMAL_FLAGS)]
    )
    assert result.status is tb.CreateAccountStatus.CREATED
    info = await ledger.service.create_account(
        owner_id="alice", account_type="user", ledger=LEDGER, account_id=account_id
    )
    assert (await ledger.service.get_account(info.id)).record.owner_id == "alice"


async def test_reusing_an_account_id_for_another_owner_is_refused(ledger: Ledger) -> None:
    account_id = tb.id()
    await ledger.service.create_account(
        owner_id="alice", account_type="user", ledger=LEDGER, account_id=account_id
    )
    with pytest.raises(DuplicateRecordError):
        await ledger.service.create_account(
            owner_id="mallory", account_type="user", ledger=LEDGER, account_id=account_id
        )
    assert (await ledger.service.get_account(account_id)).record.owner_id == "alice"


async def test_reusing_an_account_id_with_other_engine_fields_is_refused_by_the_engine(
    ledger: Ledger,
) -> None:
    account_id = tb.id()
    await ledger.service.create_account(
        owner_id="alice", account_type="user", ledger=LEDGER, account_id=account_id
    )
    with pytest.raises(TigerBeetleError) as caught:
        await ledger.service.create_account(
            owner_id="alice", account_type="treasury", ledger=LEDGER, account_id=account_id
        )
    assert caught.value.code.startswith("exists_with_different_")


@one_store
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"ledger": 0}, ValidationError),
        ({"ledger": -1}, ValidationError),
        ({"ledger": 2**32}, ValidationError),
        ({"ledger": True}, ValidationError),
        ({"code": 0}, ValidationError),
        ({"code": 2**16}, ValidationError),
        ({"account_id": 0}, ValidationError),
        ({"account_id": 2**128 - 1}, ValidationError),
        ({"account_id": -5}, InvalidIdError),
        ({"account_id": 2**128}, InvalidIdError),
        ({"account_id": "not-an-id"}, InvalidIdError),
        ({"account_id": True}, InvalidIdError),
        ({"user_data_64": 2**64}, ValidationError),
        ({"flags": _F.LINKED}, ValidationError),
        ({"flags": _F.IMPORTED}, ValidationError),
        ({"owner_id": "x" * 256}, ValidationError),
        ({"metadata": {"bad": object()}}, ValidationError),
    ],
)
async def test_refused_input_never_reaches_the_engine(
    ledger: Ledger, kwargs: dict[str, object], error: type[Exception]
) -> None:
    fields: dict[str, object] = {"owner_id": "o", "account_type": "user", "ledger": LEDGER}
    fields.update(kwargs)
    probe_id = tb.id()
    if "account_id" not in kwargs:
        fields["account_id"] = probe_id
    with pytest.raises(error):
        await ledger.service.create_account(**fields)  # type: ignore[arg-type]
    assert await ledger.client.lookup_accounts([probe_id]) == []
    assert ledger.service.batcher.stats.requests == 0


# -- get_account, get_accounts_by_owner ----------------------------------------------------------


async def test_get_account_returns_the_mapping_and_the_engine_balance(
    service: LedgerService,
) -> None:
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 250)
    info = await service.get_account(book.alice)
    assert info.id == book.alice
    assert (info.record.owner_id, info.record.account_type) == ("alice", "user")
    assert info.balance is not None
    assert (info.balance.posted, info.balance.available) == (250, 250)
    # Any id spelling works.
    assert (await service.get_account(hex(book.alice))).id == book.alice
    assert (await service.get_account(str(book.alice))).id == book.alice


async def test_get_account_of_an_unknown_id_raises_account_not_found(
    service: LedgerService,
) -> None:
    with pytest.raises(AccountNotFoundError) as caught:
        await service.get_account(tb.id())
    assert caught.value.code == "account_not_found"
    assert isinstance(caught.value, LookupError)
    with pytest.raises(InvalidIdError):
        await service.get_account("0xnothex")


async def test_get_accounts_by_owner_lists_the_owners_accounts_with_balances(
    service: LedgerService,
) -> None:
    book = await open_service_book(service)
    savings = await service.create_account(owner_id="alice", account_type="user", ledger=LEDGER)
    await deposit(service, book, savings.id, 40)
    accounts = await service.get_accounts_by_owner("alice")
    assert [a.id for a in accounts] == sorted([book.alice, savings.id])
    balances = {a.id: a.balance.posted for a in accounts if a.balance is not None}
    assert balances == {book.alice: 0, savings.id: 40}
    assert await service.get_accounts_by_owner("nobody") == []


# -- balances ------------------------------------------------------------------------------------


@one_store
async def test_a_user_wallet_is_credit_normal_and_a_treasury_debit_normal(
    service: LedgerService,
) -> None:
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 1_000)
    await service.create_transfer(request(book.alice, book.bob, 300))
    treasury, alice, bob = await service.get_balances([book.treasury, book.alice, book.bob])
    assert treasury.normal_side is NormalSide.DEBIT
    assert (treasury.debits_posted, treasury.credits_posted, treasury.posted) == (1_000, 0, 1_000)
    assert alice.normal_side is NormalSide.CREDIT
    assert (alice.credits_posted, alice.debits_posted, alice.posted) == (1_000, 300, 700)
    assert (bob.posted, bob.available, bob.pending, bob.held) == (300, 300, 0, 0)
    assert (await service.get_balance(book.alice)) == alice


@one_store
async def test_a_hold_reduces_available_and_shows_as_pending_at_the_receiver(
    service: LedgerService,
) -> None:
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    await service.create_pending_transfer(request(book.alice, book.bob, 30))
    alice, bob = await service.get_balances([book.alice, book.bob])
    assert (alice.posted, alice.held, alice.available, alice.pending) == (100, 30, 70, 0)
    assert (bob.posted, bob.held, bob.available, bob.pending) == (0, 0, 0, 30)


@one_store
async def test_a_partial_post_settles_part_and_releases_the_rest(service: LedgerService) -> None:
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 30))
    await service.post_pending_transfer(hold.id, 20)
    alice, bob = await service.get_balances([book.alice, book.bob])
    assert (alice.posted, alice.held, alice.available) == (80, 0, 80)
    assert (bob.posted, bob.pending, bob.available) == (20, 0, 20)


@one_store
async def test_a_void_releases_the_whole_hold(service: LedgerService) -> None:
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    hold = await service.create_pending_transfer(request(book.alice, book.bob, 30))
    await service.void_pending_transfer(hold.id)
    alice, bob = await service.get_balances([book.alice, book.bob])
    assert (alice.posted, alice.held, alice.available) == (100, 0, 100)
    assert (bob.posted, bob.pending) == (0, 0)


@one_store
async def test_an_expired_hold_no_longer_counts(ledger: Ledger) -> None:
    service = ledger.service
    book = await open_service_book(service)
    await deposit(service, book, book.alice, 100)
    await service.create_pending_transfer(request(book.alice, book.bob, 30, timeout=1))
    assert (await service.get_balance(book.alice)).available == 70
    ledger.clock.advance(2)
    alice, bob = await service.get_balances([book.alice, book.bob])
    assert (alice.posted, alice.held, alice.available) == (100, 0, 100)
    assert bob.pending == 0


@one_store
async def test_get_balances_keeps_the_input_order(service: LedgerService) -> None:
    book = await open_service_book(service)
    await deposit(service, book, book.bob, 5)
    ids = [book.bob, book.treasury, book.alice, book.bob]
    balances = await service.get_balances(ids)
    assert [b.account_id for b in balances] == ids
    assert [b.posted for b in balances] == [5, 5, 0, 5]


@one_store
async def test_get_balances_of_an_unknown_account_raises(service: LedgerService) -> None:
    book = await open_service_book(service)
    with pytest.raises(AccountNotFoundError):
        await service.get_balances([book.alice, tb.id()])
    with pytest.raises(AccountNotFoundError):
        await service.get_balance(tb.id())


@one_store
async def test_get_balances_refuses_more_than_one_request_of_ids(service: LedgerService) -> None:
    with pytest.raises(ValidationError):
        await service.get_balances(list(range(1, 8191)))
