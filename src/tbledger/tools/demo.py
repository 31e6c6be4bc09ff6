"""A short demonstration on the embedded engine: accounts, transfers, a two-phase hold, balances.

It uses only the engine port (the official client's API), so the same code runs against a real
TigerBeetle cluster by changing the engine URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import tigerbeetle as tb

from tbledger.engine import connect

USD = 1  # ledger
USER, MERCHANT, TREASURY = 1, 2, 3  # account codes
DEPOSIT, PAYMENT = 1, 3  # transfer codes


def _table(accounts: list[tb.Account], names: dict[int, str]) -> str:
    rows = [f"{'account':<10} {'debits':>10} {'credits':>10} {'held':>8} {'available':>10}"]
    for a in accounts:
        # Credit-normal view: what the owner has, and what holds leave spendable.
        posted = a.credits_posted - a.debits_posted
        available = posted - a.debits_pending
        rows.append(
            f"{names[a.id]:<10} {a.debits_posted:>10} {a.credits_posted:>10} "
            f"{a.debits_pending:>8} {available:>10}"
        )
    return "\n".join(rows)


async def run_demo(url: str = "memory://", out: Callable[[str], None] = print) -> None:
    client = await connect(url)
    try:
        alice, shop, treasury = tb.id(), tb.id(), tb.id()
        names = {alice: "alice", shop: "shop", treasury: "treasury"}
        limited = tb.AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | tb.AccountFlags.HISTORY
        account_results = await client.create_accounts(
            [
                tb.Account(id=alice, ledger=USD, code=USER, flags=limited),
                tb.Account(id=shop, ledger=USD, code=MERCHANT, flags=limited),
                tb.Account(id=treasury, ledger=USD, code=TREASURY),
            ]
        )
        out(f"created accounts: {[r.status.name for r in account_results]}")

        deposit, overdraft, hold, capture = tb.id(), tb.id(), tb.id(), tb.id()
        results = await client.create_transfers(
            [
                tb.Transfer(
                    id=deposit,
                    debit_account_id=treasury,
                    credit_account_id=alice,
                    amount=10_000,
                    ledger=USD,
                    code=DEPOSIT,
                ),
                # Alice cannot spend more than she has: the engine refuses it.
                tb.Transfer(
                    id=overdraft,
                    debit_account_id=alice,
                    credit_account_id=shop,
                    amount=50_000,
                    ledger=USD,
                    code=PAYMENT,
                ),
                # A two-phase hold of 2,500 for at most an hour.
                tb.Transfer(
                    id=hold,
                    debit_account_id=alice,
                    credit_account_id=shop,
                    amount=2_500,
                    ledger=USD,
                    code=PAYMENT,
                    flags=tb.TransferFlags.PENDING,
                    timeout=3600,
                ),
            ]
        )
        out(f"deposit, overdraft, hold: {[r.status.name for r in results]}")
        out(_table(await client.lookup_accounts([alice, shop, treasury]), names))

        # Capture 2,000 of the 2,500 held; the rest goes back to Alice.
        results = await client.create_transfers(
            [
                tb.Transfer(
                    id=capture,
                    pending_id=hold,
                    amount=2_000,
                    flags=tb.TransferFlags.POST_PENDING_TRANSFER,
                )
            ]
        )
        out(f"partial capture: {[r.status.name for r in results]}")
        out(_table(await client.lookup_accounts([alice, shop, treasury]), names))
    finally:
        await client.close()


def main() -> None:
    asyncio.run(run_demo())
