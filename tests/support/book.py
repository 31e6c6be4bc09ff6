"""Sets of accounts a test opens for itself, at the two levels the tests drive money through.

`Book` sits on a bare engine client (the embedded twin or a real TigerBeetle, sync interface): a
fresh ledger of its own, accounts opened by their flags, and shorthands to build, submit and read
transfers, so a conformance case reads as the rule it checks. `ServiceBook` sits on a
`LedgerService`: a treasury that issues money and named user wallets on one ledger, opened the way
the product opens them (account types, owners, the store's records), so service and failover tests
start from the same chart a customer would have. They are two things rather than one with a
switch: the first speaks the engine's wire types and statuses, the second the service's requests
and results, and neither has a use for the other's shorthands.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tigerbeetle import (
    Account,
    AccountFlags,
    CreateAccountStatus,
    CreateTransferStatus,
    Transfer,
    TransferFlags,
)

from tbledger.service import LedgerService

S = CreateTransferStatus
F = TransferFlags
AF = AccountFlags


class Book:
    """A fresh ledger on the engine under test, with shorthands to open accounts and transfer.

    `engine` is the conformance suite's engine under test: a sync `client`, `ids(n)` for fresh ids
    and `ledger()` for a ledger number no other test uses, since a real server is shared.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.client = engine.client
        self.ledger = engine.ledger()

    def open(self, *flags: AF, ledger: int | None = None) -> list[int]:
        """One account per flag set, on this book's ledger unless `ledger` names another."""
        ids = self.engine.ids(len(flags))
        accounts = [
            Account(id=i, ledger=ledger or self.ledger, code=1, flags=f)
            for i, f in zip(ids, flags, strict=True)
        ]
        results = self.client.create_accounts(accounts)
        assert [r.status for r in results] == [CreateAccountStatus.CREATED] * len(ids)
        return ids

    def fresh(self) -> int:
        return self.engine.ids(1)[0]

    # -- building transfers ---------------------------------------------------------------------

    def t(self, dr: int, cr: int, amount: int = 1, **fields: Any) -> Transfer:
        """A transfer on this ledger with code 1 and a fresh id, unless `fields` say otherwise."""
        base = {"id": self.fresh(), "ledger": self.ledger, "code": 1}
        base.update(fields)
        return Transfer(debit_account_id=dr, credit_account_id=cr, amount=amount, **base)

    def pending(self, dr: int, cr: int, amount: int, **fields: Any) -> Transfer:
        """A pending transfer, already created (extra `flags` are added to `PENDING`)."""
        transfer = self.t(dr, cr, amount, flags=F.PENDING | fields.pop("flags", F.NONE), **fields)
        self.ok(transfer)
        return transfer

    def resolve(self, p: Transfer | int, flag: F, amount: int = 0, **fields: Any) -> Transfer:
        """A post/void of `p` (a transfer or its id) that leaves every inheritable field zero
        unless `fields` set it."""
        pending_id = p if isinstance(p, int) else p.id
        base = {"id": self.fresh(), "pending_id": pending_id, "flags": flag}
        base.update(fields)
        return Transfer(amount=amount, **base)

    # -- submitting ------------------------------------------------------------------------------

    def submit(self, *transfers: Transfer) -> list[S]:
        return [r.status for r in self.client.create_transfers(list(transfers))]

    def ok(self, *transfers: Transfer) -> None:
        assert self.submit(*transfers) == [S.CREATED] * len(transfers)

    # -- reading back ----------------------------------------------------------------------------

    def balance(self, account_id: int) -> tuple[int, int, int, int]:
        """(debits_pending, debits_posted, credits_pending, credits_posted)"""
        (a,) = self.client.lookup_accounts([account_id])
        return (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)

    def closed(self, account_id: int) -> bool:
        (a,) = self.client.lookup_accounts([account_id])
        return bool(a.flags & AF.CLOSED)

    def stored(self, transfer_id: int) -> Transfer:
        (t,) = self.client.lookup_transfers([transfer_id])
        return t

    def amount_of(self, transfer_id: int) -> int:
        return self.stored(transfer_id).amount

    def found(self, *transfers: Transfer) -> list[int]:
        """The ids of `transfers` the engine holds, in order: a rolled-back member is missing."""
        return [t.id for t in self.client.lookup_transfers([t.id for t in transfers])]


@dataclass(frozen=True)
class ServiceBook:
    """On one ledger: a treasury (debit-normal, issues money) and user wallets (credit-normal).

    `users` maps each owner to their wallet, in the order they were opened; `alice` and `bob` name
    the two wallets most service tests pay between.
    """

    ledger: int
    treasury: int
    users: dict[str, int]

    @property
    def alice(self) -> int:
        return self.users["alice"]

    @property
    def bob(self) -> int:
        return self.users["bob"]

    @property
    def wallets(self) -> list[int]:
        return list(self.users.values())

    @property
    def accounts(self) -> list[int]:
        return [self.treasury, *self.users.values()]


async def open_service_book(
    service: LedgerService, *, ledger: int = 1, owners: Iterable[str] = ("alice", "bob")
) -> ServiceBook:
    """Open a treasury and one wallet per owner on `ledger` through the service."""
    treasury = await service.create_account(
        owner_id=None, account_type="treasury", ledger=ledger, name=f"treasury:{ledger}"
    )
    users: dict[str, int] = {}
    for owner in owners:
        account = await service.create_account(owner_id=owner, account_type="user", ledger=ledger)
        users[owner] = account.id
    return ServiceBook(ledger=ledger, treasury=treasury.id, users=users)
