"""The embedded ClientAsync behaves like the official one and keeps the event loop responsive."""

from __future__ import annotations

import asyncio
import time

import pytest
import tigerbeetle as tb

from tbledger.embedded import ClientAsync
from tests.support.filters import account_filter

CREATED = tb.CreateTransferStatus.CREATED


async def test_async_client_round_trip(tmp_path: object) -> None:
    for path in (None, f"{tmp_path}/l.tbj"):
        async with ClientAsync(cluster_id=0, path=path) as client:
            results = await client.create_accounts(
                [tb.Account(id=1, ledger=1, code=1), tb.Account(id=2, ledger=1, code=1)]
            )
            assert [r.status for r in results] == [tb.CreateAccountStatus.CREATED] * 2
            t = tb.Transfer(
                id=9, debit_account_id=1, credit_account_id=2, amount=5, ledger=1, code=1
            )
            assert (await client.create_transfers([t]))[0].status == CREATED
            assert [x.amount for x in await client.lookup_transfers([9])] == [5]


async def test_integer_overflow_is_raised_when_the_coroutine_runs() -> None:
    async with ClientAsync(cluster_id=0) as client:
        pending = client.create_transfers([tb.Transfer(id=-1)])
        with pytest.raises(tb.IntegerOverflowError):
            await pending


async def test_closed_client_raises_client_closed_error() -> None:
    client = ClientAsync(cluster_id=0)
    await client.close()
    with pytest.raises(tb.ClientClosedError):
        await client.lookup_accounts([1])


async def test_a_full_batch_does_not_hold_the_event_loop() -> None:
    """While 8189 transfers are applied, a ticker on the loop keeps running."""
    async with ClientAsync(cluster_id=0) as client:
        ids = [tb.id() for _ in range(1000)]
        await client.create_accounts([tb.Account(id=i, ledger=1, code=1) for i in ids])
        batch = [
            tb.Transfer(
                id=tb.id(),
                debit_account_id=ids[k % 1000],
                credit_account_id=ids[(k + 1) % 1000],
                amount=1,
                ledger=1,
                code=1,
            )
            for k in range(8189)
        ]
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        started = time.perf_counter()
        results = await client.create_transfers(batch)
        elapsed = time.perf_counter() - started
        task.cancel()
        assert all(r.status == CREATED for r in results)
        # The loop ticked during the batch: the work ran on the engine's worker thread.
        assert len(gaps) >= 2
        assert max(gaps) < elapsed


async def test_concurrent_durable_writes_share_fsyncs_and_all_survive(tmp_path: object) -> None:
    """Group commit: concurrent writers on a durable engine share journal appends (one fsync per
    group), every caller gets its own results, and everything is there after a reopen."""
    path = f"{tmp_path}/l.tbj"
    async with ClientAsync(cluster_id=0, path=path) as client:
        await client.create_accounts(
            [tb.Account(id=1, ledger=1, code=1), tb.Account(id=2, ledger=1, code=1)]
        )
        journal = client.replica.journal
        assert journal is not None
        appends = 0
        original_append = journal.append

        def counting_append(records: list[bytes]) -> None:
            nonlocal appends
            appends += 1
            original_append(records)

        journal.append = counting_append  # type: ignore[method-assign]
        ids = [tb.id() for _ in range(200)]
        results = await asyncio.gather(
            *(
                client.create_transfers(
                    [
                        tb.Transfer(
                            id=i,
                            debit_account_id=1,
                            credit_account_id=2,
                            amount=1,
                            ledger=1,
                            code=1,
                        )
                    ]
                )
                for i in ids
            )
        )
        assert [r[0].status for r in results] == [CREATED] * 200
        assert appends < 200
    async with ClientAsync(cluster_id=0, path=path) as reopened:
        assert len(await reopened.lookup_transfers(ids)) == 200
        assert (await reopened.lookup_accounts([2]))[0].credits_posted == 200


async def test_stored_transfers_give_the_garbage_collector_little_to_visit() -> None:
    # A full collection visits every tracked container and pauses the process meanwhile; the
    # engine's state grows with every transfer, so it must stay lean: one tracked object per
    # transfer (its record), none for its entries on the two accounts.
    import gc

    async with ClientAsync(cluster_id=0) as client:
        flags = tb.AccountFlags.HISTORY
        await client.create_accounts(
            [tb.Account(id=1, ledger=1, code=1, flags=flags), tb.Account(id=2, ledger=1, code=1)]
        )
        batch = [
            tb.Transfer(
                id=tb.id(), debit_account_id=1, credit_account_id=2, amount=1, ledger=1, code=1
            )
            for _ in range(4000)
        ]
        gc.collect()
        before = len(gc.get_objects())
        assert all(r.status == CREATED for r in await client.create_transfers(batch))
        del batch
        gc.collect()
        gc.collect()
        grown = len(gc.get_objects()) - before
        assert grown < 4000 * 1.1, f"{grown} tracked objects for 4000 transfers"
        # History balances are still there, exactly.
        rows = await client.get_account_balances(
            account_filter(account_id=1, limit=3, flags=tb.AccountFilterFlags.DEBITS)
        )
        assert [r.debits_posted for r in rows] == [1, 2, 3]
