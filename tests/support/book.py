"""Accounts a test opens for itself on the engine under test, and shorthands to move money.

`Book` sits on a bare engine client (the embedded twin or a real TigerBeetle, sync interface): a
fresh ledger of its own, accounts opened by their flags, and shorthands to build, submit and read
transfers, so a conformance case reads as the rule it checks.
"""

from __future__ import annotations

from typing import Any

from tigerbeetle import (
    Account,
    AccountFlags,
    CreateAccountStatus,
    CreateTransferStatus,
    Transfer,
    TransferFlags,
)

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
