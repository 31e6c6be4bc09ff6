"""Section 4, baseline: the ledger a team would build without TigerBeetle, in PostgreSQL alone.

The PostgreSQL-only ledger, in a fresh schema (dropped at the end):

* ``accounts (id bigint primary key, balance bigint not null check (balance >= 0))``;
* ``entries (id bigserial, debit_account_id, credit_account_id`` (foreign keys to accounts),
  ``amount, created_at)``;
* one transaction per transfer, through asyncpg: lock both account rows with
  ``SELECT ... ORDER BY id FOR UPDATE`` (id order, so two transfers never deadlock), update both
  balances, insert the entry, commit (durably: the server's own ``synchronous_commit``).

It runs at the same concurrency as the TigerBeetle path it is compared with (N asyncio tasks,
each awaiting one transfer after another, over a pool of connections), for the same number of
transfers, in two modes: uniform (random pairs over many accounts) and hot (every transfer
touches one hot account, on a random side).

The TigerBeetle path: ``LedgerService`` with its audit trail in the same PostgreSQL server (a fresh
schema), on the real server when there is one (else the twin in memory): concurrent single calls
through the coalescer (``service.create_transfer``, same N tasks, same count), and the batch path
(``service.create_transfers``, 8189 per call), in both modes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tbledger.service import LedgerService
from tbledger.tools.bench.common import BATCH_EVENTS_MAX, BenchmarkError, Section, split
from tbledger.tools.bench.context import Context
from tbledger.tools.bench.env import asyncpg_dsn
from tbledger.tools.bench.workbench import (
    ENGINE_LABELS,
    REAL,
    TWIN_MEMORY,
    Run,
    Workbench,
    engine_client,
    open_service,
)

__all__ = ["run_baseline"]

INITIAL_BALANCE = 10**12


class PostgresLedger:
    """The double-entry ledger in PostgreSQL alone, in schema `schema`."""

    def __init__(self, pool: Any, schema: str, accounts: int, seed: int) -> None:
        self.pool = pool
        self.schema = schema
        self.ids = list(range(1, accounts + 1))
        self.rng = random.Random(f"{seed}:postgresql-ledger")
        self.sent = 0
        s = f'"{schema}"'
        self.lock_sql = (
            f"SELECT id FROM {s}.accounts WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE"
        )
        self.debit_sql = f"UPDATE {s}.accounts SET balance = balance - $2 WHERE id = $1"
        self.credit_sql = f"UPDATE {s}.accounts SET balance = balance + $2 WHERE id = $1"
        self.entry_sql = (
            f"INSERT INTO {s}.entries (debit_account_id, credit_account_id, amount) "
            "VALUES ($1, $2, $3)"
        )

    @staticmethod
    async def create(connection: Any, schema: str, accounts: int) -> None:
        s = f'"{schema}"'
        await connection.execute(f"CREATE SCHEMA {s}")
        await connection.execute(
            f"CREATE TABLE {s}.accounts (id bigint PRIMARY KEY, "
            "balance bigint NOT NULL CHECK (balance >= 0))"
        )
        await connection.execute(
            f"CREATE TABLE {s}.entries (id bigserial PRIMARY KEY, "
            f"debit_account_id bigint NOT NULL REFERENCES {s}.accounts (id), "
            f"credit_account_id bigint NOT NULL REFERENCES {s}.accounts (id), "
            "amount bigint NOT NULL CHECK (amount > 0), "
            "created_at timestamptz NOT NULL DEFAULT now())"
        )
        await connection.copy_records_to_table(
            "accounts",
            schema_name=schema,
            records=[(i, INITIAL_BALANCE) for i in range(1, accounts + 1)],
            columns=["id", "balance"],
        )
        await connection.execute(f"ANALYZE {s}.accounts")

    async def transfer(self, pair: tuple[int, int]) -> None:
        debit, credit = pair
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await conn.fetch(self.lock_sql, [debit, credit])
            if len(locked) != 2:
                raise BenchmarkError(f"postgresql ledger: accounts {debit}, {credit} not found")
            await conn.execute(self.debit_sql, debit, 1)
            await conn.execute(self.credit_sql, credit, 1)
            await conn.execute(self.entry_sql, debit, credit, 1)

    def pairs(self, count: int, *, hot: bool) -> list[tuple[int, int]]:
        from tbledger.tools.bench.common import hot_pairs, uniform_pairs  # noqa: PLC0415

        if hot:
            return hot_pairs(self.rng, self.ids, count)
        return uniform_pairs(self.rng, self.ids, count)

    async def run(self, count: int, concurrency: int, *, hot: bool) -> Run:
        import asyncio  # noqa: PLC0415

        pairs = self.pairs(count, hot=hot)

        async def worker(share: list[tuple[int, int]]) -> None:
            for pair in share:
                await self.transfer(pair)

        start = time.perf_counter()
        done = await asyncio.gather(
            *(worker(share) for share in split(pairs, concurrency)), return_exceptions=True
        )
        seconds = time.perf_counter() - start
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
        self.sent += count
        return Run(count, count, seconds)

    async def verify(self) -> None:
        s = f'"{self.schema}"'
        async with self.pool.acquire() as conn:
            total = await conn.fetchval(f"SELECT sum(balance) FROM {s}.accounts")
            entries = await conn.fetchval(f"SELECT count(*) FROM {s}.entries")
        if total != INITIAL_BALANCE * len(self.ids) or entries != self.sent:
            raise BenchmarkError(
                f"postgresql ledger: balances sum to {total}, "
                f"{entries} entries for {self.sent} sent"
            )


Call = Callable[[int], Awaitable[Run]]


def _calls(
    ledger: PostgresLedger, bench: Workbench, service: LedgerService, n: int, hot: bool
) -> tuple[Call, Call, Call]:
    """The three timed calls of one mode (uniform or hot), each taking a transfer count."""

    async def pg_run(count: int) -> Run:
        return await ledger.run(count, n, hot=hot)

    async def conc_run(count: int) -> Run:
        return await bench.service_concurrent(service, count, n, hot=hot)

    async def batch_run(count: int) -> Run:
        return await bench.service_sequential(service, count, BATCH_EVENTS_MAX, hot=hot)

    return pg_run, conc_run, batch_run


async def run_baseline(ctx: Context) -> Section:
    import asyncpg  # noqa: PLC0415

    plan = ctx.plan
    section = Section("baseline", "Baseline: a PostgreSQL-only ledger vs the TigerBeetle path")
    kind = REAL if ctx.real.addresses is not None else TWIN_MEMORY
    count = plan.baseline_transfers
    batch_count = plan.baseline_batch_transfers
    section.settings = {
        "accounts": plan.baseline_accounts,
        "concurrency": plan.baseline_concurrency,
        "postgresql_pool_connections": plan.baseline_pool,
        "transfers_per_run": count,
        "batch_path_transfers_per_run": batch_count,
        "repeat": plan.repeat,
        "tigerbeetle_engine": ENGINE_LABELS[kind],
        "postgresql": ctx.postgres.as_json(),
    }
    if ctx.postgres.url is None:
        section.status = "skipped"
        section.reason = f"no PostgreSQL: {ctx.postgres.reason}"
        return section
    schema = ctx.postgres.new_schema("pgledger")
    dsn = asyncpg_dsn(ctx.postgres.url)
    ctx.steps("baseline: creating the PostgreSQL-only ledger")
    connection = await asyncpg.connect(dsn)
    try:
        await PostgresLedger.create(connection, schema, plan.baseline_accounts)
    finally:
        await connection.close()
    pool = await asyncpg.create_pool(dsn, min_size=plan.baseline_pool, max_size=plan.baseline_pool)
    try:
        ledger = PostgresLedger(pool, schema, plan.baseline_accounts, ctx.seed)
        async with engine_client(kind, ctx.folder, ctx.real) as client:
            bench = Workbench(client, f"{kind}-baseline", ctx.seed)
            await bench.create_accounts(plan.baseline_accounts)
            async with open_service(
                bench,
                "postgresql",
                audit=True,
                folder=ctx.folder,
                postgres=ctx.postgres,
                purpose="baseline_tb",
            ) as service:
                n = plan.baseline_concurrency
                engine = ENGINE_LABELS[kind]
                modes: dict[str, tuple[str, Callable[[int], Awaitable[Run]]]] = {}
                for hot in (False, True):
                    mode = "hot" if hot else "uniform"
                    pg_run, conc_run, batch_run = _calls(ledger, bench, service, n, hot)
                    modes[f"postgresql.{mode}"] = (
                        f"PostgreSQL-only ledger, {mode}: one transaction per transfer, "
                        f"{n} tasks over {plan.baseline_pool} connections",
                        pg_run,
                    )
                    modes[f"tigerbeetle.concurrent.{mode}"] = (
                        f"service.create_transfer (coalescer), audit PostgreSQL, {engine}, "
                        f"{mode}, {n} tasks",
                        conc_run,
                    )
                    modes[f"tigerbeetle.batch.{mode}"] = (
                        f"service.create_transfers, audit PostgreSQL, {engine}, {mode}, "
                        f"{min(batch_count, BATCH_EVENTS_MAX)}/call",
                        batch_run,
                    )
                figures = {
                    key: section.figure(key, label, concurrency=n)
                    for key, (label, _) in modes.items()
                }
                for key, (_, call) in modes.items():
                    ctx.steps(f"baseline: warm-up {key}")
                    await call(
                        max(n, count // 10) if ".batch." not in key else min(batch_count, 2_000)
                    )
                for round_ in range(plan.repeat):
                    for key, (_, call) in modes.items():
                        ctx.steps(f"baseline: {key}, round {round_ + 1}/{plan.repeat}")
                        done = await call(batch_count if ".batch." in key else count)
                        figures[key].runs.append(done.rate)
                        figures[key].params.update(transfers_per_run=done.transfers)
            await bench.verify()
        await ledger.verify()
    finally:
        await pool.close()
    for mode in ("uniform", "hot"):
        section.ratio(
            f"concurrent.{mode}",
            f"TigerBeetle path (coalescer) / PostgreSQL-only, {mode}, same concurrency",
            f"tigerbeetle.concurrent.{mode}",
            f"postgresql.{mode}",
            target=10.0 if mode == "uniform" else 20.0,
        )
        section.ratio(
            f"batch.{mode}",
            f"TigerBeetle batch path / PostgreSQL-only, {mode}",
            f"tigerbeetle.batch.{mode}",
            f"postgresql.{mode}",
            target=20.0,
        )
    section.ratio(
        "postgresql.hot/uniform",
        "PostgreSQL-only ledger: hot / uniform",
        "postgresql.hot",
        "postgresql.uniform",
    )
    section.ratio(
        "tigerbeetle.concurrent.hot/uniform",
        "TigerBeetle path (coalescer): hot / uniform",
        "tigerbeetle.concurrent.hot",
        "tigerbeetle.concurrent.uniform",
        target=0.8,
        attach=False,
    )
    section.ratio(
        "tigerbeetle.batch.hot/uniform",
        "TigerBeetle batch path: hot / uniform",
        "tigerbeetle.batch.hot",
        "tigerbeetle.batch.uniform",
        target=0.8,
        attach=False,
    )
    section.notes.append(
        f"PostgreSQL {ctx.postgres.version} ({ctx.postgres.origin}), settings "
        + ", ".join(f"{k}={v}" for k, v in ctx.postgres.settings.items())
        + "; the PostgreSQL-only ledger and the audit trail share this server."
    )
    section.notes.append(
        "Each PostgreSQL-only transfer is BEGIN, SELECT ... FOR UPDATE, two UPDATEs, one INSERT, "
        "COMMIT: six round trips, as written by hand with asyncpg (prepared statements cached)."
    )
    return section
