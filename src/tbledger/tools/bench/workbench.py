"""One engine client with its accounts, and the timed calls every section is made of.

Accounts are of type ``system_buffer`` (no balance limits, so random transfers never fail), made
in bulk in the engine with the code and flags `LedgerService.create_account` gives that type, and
mapped in bulk in every store a service uses. Transfers move amount 1 (ledger 1, code 1) between
two distinct accounts drawn from a seeded RNG: uniformly, or ``hot`` (every transfer touches the
first account). ``Transfer`` and ``TransferRequest`` objects are built before each timed region;
the service mints the transfer ids itself, inside the timed region, as for any caller. Every
result must be ``created``, and `Workbench.verify` checks that the accounts' posted debits add up
to the transfers sent.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import tigerbeetle as tb

from tbledger.service import LedgerService, TransferRequest
from tbledger.store import AccountRecord, Store, StoreOptions
from tbledger.tools.bench.common import (
    ACCOUNT_TYPE,
    BATCH_EVENTS_MAX,
    CODE,
    LEDGER,
    BenchmarkError,
    check_engine_replies,
    check_service_replies,
    chunks,
    hot_pairs,
    timed_concurrent,
    timed_sequential,
    transfers_for,
    uniform_pairs,
)
from tbledger.tools.bench.env import Postgres, RealServer

__all__ = ["Run", "Workbench", "engine_client", "open_service"]

TWIN_MEMORY = "twin_memory"
TWIN_DURABLE = "twin_durable"
REAL = "real"
ENGINE_LABELS = {
    TWIN_MEMORY: "twin (memory)",
    TWIN_DURABLE: "twin (durable journal)",
    REAL: "official client, real server",
}
# Every engine a section measures, in this order (the real server only when there is one).
ENGINE_KINDS = tuple(ENGINE_LABELS)


@dataclass(frozen=True)
class Run:
    """One timed run: transfers sent, calls made, seconds, and engine requests they became."""

    transfers: int
    calls: int
    seconds: float
    engine_requests: int | None = None
    cpu_seconds: float | None = None  # CPU time of this process over the run

    @property
    def rate(self) -> float:
        return self.transfers / self.seconds


@contextlib.asynccontextmanager
async def engine_client(kind: str, folder: str, real: RealServer | None) -> AsyncIterator[Any]:
    """An async engine client: the twin in memory, the twin with a fresh journal in `folder`,
    or the official client on the real server."""
    if kind == REAL:
        if real is None or real.addresses is None:
            raise BenchmarkError("no real server")
        async with tb.ClientAsync(
            cluster_id=real.cluster_id, replica_addresses=real.addresses
        ) as client:
            yield client
        return
    from tbledger.embedded import ClientAsync  # noqa: PLC0415

    path = None
    if kind == TWIN_DURABLE:
        path = os.path.join(folder, f"bench-{random.getrandbits(32):08x}.tbj")
    async with ClientAsync(cluster_id=0, path=path) as twin:
        yield twin


async def open_store(
    kind: str, folder: str, postgres: Postgres | None, purpose: str
) -> tuple[Store, str]:
    """A fresh, migrated store: ``postgresql`` (a new schema) or ``sqlite`` (a new file); with
    a description of where it is."""
    if kind == "postgresql":
        if postgres is None or postgres.url is None:
            raise BenchmarkError("no PostgreSQL")
        schema = postgres.new_schema(purpose)
        store = await Store.connect(postgres.url, migrate=True, options=StoreOptions(schema=schema))
        return store, f"PostgreSQL schema {schema}"
    path = os.path.join(folder, f"{purpose}-{random.getrandbits(32):08x}.db")
    return await Store.connect(f"sqlite:///{path}", migrate=True), f"SQLite file {path}"


@contextlib.asynccontextmanager
async def open_service(
    bench: Workbench,
    store_kind: str,
    *,
    audit: bool,
    folder: str,
    postgres: Postgres | None,
    purpose: str,
) -> AsyncIterator[LedgerService]:
    """A connected service over the bench's engine client and a fresh store holding the bench's
    account mappings."""
    store, _ = await open_store(store_kind, folder, postgres, purpose)
    try:
        await bench.map_accounts(store)
        service = LedgerService(engine=bench.client, store=store, audit=audit)
        await service.connect()
        try:
            yield service
        finally:
            await service.close()
    finally:
        await store.close()


class Workbench:
    """One engine client, its accounts, and what was sent through it."""

    def __init__(self, client: Any, name: str, seed: int) -> None:
        self.client = client
        self.name = name
        self.rng = random.Random(f"{seed}:{name}")
        self.account_ids: list[int] = []
        self.code = 0
        self.sent = 0

    async def create_accounts(self, count: int) -> None:
        from tbledger.balances import ACCOUNT_TYPE_CODES, AccountType, default_flags  # noqa: PLC0415

        self.code = ACCOUNT_TYPE_CODES[AccountType(ACCOUNT_TYPE)]
        flags = default_flags(ACCOUNT_TYPE)
        accounts = [
            tb.Account(id=tb.id(), ledger=LEDGER, code=self.code, flags=flags) for _ in range(count)
        ]
        created = tb.CreateAccountStatus.CREATED
        for batch in chunks(accounts, BATCH_EVENTS_MAX):
            results = await self.client.create_accounts(batch)
            bad = [r.status for r in results if r.status != created]
            if len(results) != len(batch) or bad:
                raise BenchmarkError(f"{self.name}: create_accounts: {bad[:5]}")
        self.account_ids = [a.id for a in accounts]

    async def map_accounts(self, store: Store) -> None:
        records = [
            AccountRecord(
                id=account_id,
                account_type=ACCOUNT_TYPE,
                ledger=LEDGER,
                code=self.code,
                owner_id=f"bench-{i}",
            )
            for i, account_id in enumerate(self.account_ids)
        ]
        for batch in chunks(records, BATCH_EVENTS_MAX):
            await store.create_accounts(batch)

    async def verify(self) -> None:
        total = 0
        for ids in chunks(self.account_ids, BATCH_EVENTS_MAX):
            found = await self.client.lookup_accounts(ids)
            if len(found) != len(ids):
                raise BenchmarkError(f"{self.name}: lookup_accounts found {len(found)}/{len(ids)}")
            total += sum(a.debits_posted for a in found)
        if total != self.sent:
            raise BenchmarkError(
                f"{self.name}: accounts show {total} debits posted, {self.sent} sent"
            )

    # -- workload ---------------------------------------------------------------------------------

    def pairs(self, count: int, *, hot: bool = False) -> list[tuple[int, int]]:
        if hot:
            return hot_pairs(self.rng, self.account_ids, count)
        return uniform_pairs(self.rng, self.account_ids, count)

    def transfers(self, count: int, *, hot: bool = False) -> list[tb.Transfer]:
        return transfers_for(self.pairs(count, hot=hot))

    def requests(self, count: int, *, hot: bool = False) -> list[TransferRequest]:
        return [
            TransferRequest(
                debit_account_id=debit, credit_account_id=credit, amount=1, ledger=LEDGER, code=CODE
            )
            for debit, credit in self.pairs(count, hot=hot)
        ]

    # -- timed calls ------------------------------------------------------------------------------

    async def raw_sequential(self, count: int, batch_size: int, *, hot: bool = False) -> Run:
        """`create_transfers` with batches of `batch_size`, one call after another."""
        requests = chunks(self.transfers(count, hot=hot), batch_size)
        replies, seconds, cpu = await timed_sequential(self.client.create_transfers, requests)
        sizes = [len(r) for r in requests]
        check_engine_replies(f"{self.name}: batches of {batch_size}", replies, sizes)
        self.sent += count
        return Run(count, len(requests), seconds, len(requests), cpu)

    async def raw_concurrent(
        self,
        count: int,
        concurrency: int,
        *,
        call: Callable[[list[tb.Transfer]], Awaitable[Any]] | None = None,
        hot: bool = False,
    ) -> Run:
        """`concurrency` tasks, each awaiting single-transfer `call`s (default: the client's
        `create_transfers`) one after another."""
        requests = [[t] for t in self.transfers(count, hot=hot)]
        replies, seconds, cpu = await timed_concurrent(
            call or self.client.create_transfers, requests, concurrency
        )
        check_engine_replies(f"{self.name}: concurrent singles", replies, [1] * count)
        self.sent += count
        return Run(count, count, seconds, None, cpu)

    async def service_sequential(
        self, service: LedgerService, count: int, batch_size: int, *, hot: bool = False
    ) -> Run:
        """`service.create_transfers` with lists of `batch_size`, one call after another."""
        calls = chunks(self.requests(count, hot=hot), batch_size)
        before = _counters(service)
        replies, seconds, cpu = await timed_sequential(service.create_transfers, calls)
        check_service_replies(
            f"{self.name}: service batches of {batch_size}", replies, [len(c) for c in calls]
        )
        self._check_stats(service, before)
        self.sent += count
        return Run(count, len(calls), seconds, service.batcher.stats.requests - before[1], cpu)

    async def service_concurrent(
        self, service: LedgerService, count: int, concurrency: int, *, hot: bool = False
    ) -> Run:
        """`concurrency` tasks, each awaiting `service.create_transfer` one after another."""
        calls = self.requests(count, hot=hot)
        before = _counters(service)
        replies, seconds, cpu = await timed_concurrent(service.create_transfer, calls, concurrency)
        check_service_replies(
            f"{self.name}: service concurrent singles", [[r] for r in replies], [1] * count
        )
        self._check_stats(service, before)
        self.sent += count
        return Run(count, count, seconds, service.batcher.stats.requests - before[1], cpu)

    def _check_stats(self, service: LedgerService, before: tuple[dict[str, int], int]) -> None:
        # The service reports success when the engine applied a transfer even if writing its
        # outcome to the audit trail failed (recovery writes it later): count those as failures.
        grew = {k: v - before[0].get(k, 0) for k, v in service.stats.items()}
        grew = {k: v for k, v in grew.items() if v}
        if grew:
            raise BenchmarkError(f"{self.name}: the service counted {grew} during the run")


def _counters(service: LedgerService) -> tuple[dict[str, int], int]:
    return dict(service.stats), service.batcher.stats.requests


def events_per_request(runs: Sequence[Run]) -> float | None:
    requests = [r.engine_requests for r in runs]
    if not runs or any(r is None for r in requests):
        return None
    total = sum(r for r in requests if r is not None)
    return sum(r.transfers for r in runs) / total if total else None
