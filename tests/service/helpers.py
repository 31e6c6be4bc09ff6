"""Small helpers shared by the service tests: requests, deposits, listeners, engine wrappers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tigerbeetle as tb

from tbledger.events import LedgerEvent
from tbledger.service import LedgerService, TransferRequest, TransferResult
from tests.support.book import ServiceBook

LEDGER = 1
DEPOSIT = 1
PAYMENT = 2


def request(debit: int | str, credit: int | str, amount: int, **kw: Any) -> TransferRequest:
    kw.setdefault("ledger", LEDGER)
    kw.setdefault("code", PAYMENT)
    return TransferRequest(debit_account_id=debit, credit_account_id=credit, amount=amount, **kw)


async def deposit(
    service: LedgerService, book: ServiceBook, account: int, amount: int
) -> TransferResult:
    return await service.create_transfer(request(book.treasury, account, amount, code=DEPOSIT))


class Recorder:
    """A sync listener that keeps every event it is given."""

    def __init__(self) -> None:
        self.events: list[LedgerEvent] = []

    def __call__(self, event: LedgerEvent) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e.name.value for e in self.events]

    def of(self, subject_id: int) -> list[str]:
        return [e.name.value for e in self.events if e.subject_id == subject_id]


async def wait_until(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout_s: float = 5.0
) -> None:
    """Poll `condition` (sync or async) until it holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = condition()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.01)


async def engine_account(client: Any, account_id: int) -> tb.Account:
    (account,) = await client.lookup_accounts([account_id])
    return account


class EngineWrapper:
    """Delegates to an engine client; `create_transfers` can be made slow, hung or failing.

    * `delay_s`: sleep after the engine has answered (the request was applied; the answer is late).
    * `answer_gate`: when set to an unset `asyncio.Event`, the engine applies requests at once and
      their answers wait for it: late for as long as the test says, not for a time.
    * `gate`: when set to an unset `asyncio.Event`, requests wait for it before reaching the engine.
    * `fault`: an exception to raise instead of reaching the engine.

    `create_transfers_calls` counts requests that reached this wrapper; `applied` those that
    reached the engine.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.delay_s = 0.0
        self.answer_gate: asyncio.Event | None = None
        self.gate: asyncio.Event | None = None
        self.fault: BaseException | None = None
        self.create_transfers_calls = 0
        self.applied = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create_transfers(self, transfers: list[tb.Transfer]) -> list[tb.CreateTransferResult]:
        self.create_transfers_calls += 1
        if self.fault is not None:
            raise self.fault
        if self.gate is not None:
            await self.gate.wait()
        results = await self._inner.create_transfers(transfers)
        self.applied += 1
        if self.answer_gate is not None:
            await self.answer_gate.wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return results

    async def close(self) -> None:
        await self._inner.close()


# For behaviour the engine alone decides (flags, balances, refusals, reads of money): the store
# only records it, so one store is enough and the PostgreSQL case would only cost time.
one_store = pytest.mark.parametrize("store_kind", ["sqlite"])
