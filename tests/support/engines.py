"""Engine clients that wrap another one, for tests that need the engine port to be slow.

`JitteredEngine` satisfies the engine port (`tbledger.engine.EngineClient`) by delegating every
operation to the client it wraps, and sleeps a random few milliseconds before and after each
`create_transfers`. Handed to a `LedgerService` as its `engine`, it widens the two windows of the
write protocol in which a crash leaves work for recovery, without reaching into the service: the
sleep before is a window in which the intents are persisted and not yet submitted, and the sleep
after one in which the engine has applied the transfers and their outcome is not yet recorded.
"""

from __future__ import annotations

import asyncio
import random

import tigerbeetle as tb

from tbledger.engine import EngineClient

__all__ = ["JitteredEngine"]


class JitteredEngine:
    """`inner`, with `create_transfers` delayed by up to `jitter_s` on each side (drawn from
    `rng`, so a seeded run repeats its delays)."""

    def __init__(self, inner: EngineClient, *, jitter_s: float, rng: random.Random) -> None:
        self._inner = inner
        self._jitter_s = jitter_s
        self._rng = rng

    async def _pause(self) -> None:
        if self._jitter_s > 0:
            await asyncio.sleep(self._rng.uniform(0, self._jitter_s))

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        await self._pause()  # persisted, not yet submitted
        results = await self._inner.create_transfers(transfers)
        await self._pause()  # applied, outcome not yet recorded
        return results

    async def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountResult]:
        return await self._inner.create_accounts(accounts)

    async def lookup_accounts(self, accounts: list[int]) -> list[tb.Account]:
        return await self._inner.lookup_accounts(accounts)

    async def lookup_transfers(self, transfers: list[int]) -> list[tb.Transfer]:
        return await self._inner.lookup_transfers(transfers)

    async def get_account_transfers(self, filter: tb.AccountFilter) -> list[tb.Transfer]:
        return await self._inner.get_account_transfers(filter)

    async def get_account_balances(self, filter: tb.AccountFilter) -> list[tb.AccountBalance]:
        return await self._inner.get_account_balances(filter)

    async def query_accounts(self, query_filter: tb.QueryFilter) -> list[tb.Account]:
        return await self._inner.query_accounts(query_filter)

    async def query_transfers(self, query_filter: tb.QueryFilter) -> list[tb.Transfer]:
        return await self._inner.query_transfers(query_filter)

    async def close(self) -> None:
        await self._inner.close()
