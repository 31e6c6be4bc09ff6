"""The batcher merges concurrent calls into full engine requests without changing what any
caller's events mean: each caller gets exactly the results it would have got alone."""

from __future__ import annotations

import asyncio

import pytest
import tigerbeetle as tb

from tbledger.embedded import ClientAsync
from tbledger.engine.batcher import Batcher

CREATED = tb.CreateTransferStatus.CREATED
LINKED = tb.TransferFlags.LINKED


def transfer(id_: int, flags: tb.TransferFlags = tb.TransferFlags.NONE, **kw: int) -> tb.Transfer:
    fields = {"debit_account_id": 1, "credit_account_id": 2, "amount": 1, "ledger": 1, "code": 1}
    fields.update(kw)
    return tb.Transfer(id=id_, flags=flags, **fields)


@pytest.fixture
async def client():
    async with ClientAsync(cluster_id=0) as c:
        await c.create_accounts(
            [tb.Account(id=1, ledger=1, code=1), tb.Account(id=2, ledger=1, code=1)]
        )
        yield c


async def test_concurrent_single_calls_share_requests(client: ClientAsync) -> None:
    batcher = Batcher(client)
    ids = [tb.id() for _ in range(1000)]
    results = await asyncio.gather(*(batcher.create_transfers([transfer(i)]) for i in ids))
    assert [r[0].status for r in results] == [CREATED] * 1000
    # Each caller got the result of its own transfer: the engine stamped them in order.
    timestamps = [r[0].timestamp for r in results]
    assert timestamps == sorted(timestamps)
    assert batcher.stats.events == 1000
    assert batcher.stats.requests < 1000
    assert batcher.stats.events_per_request > 1
    assert len(await client.lookup_transfers(ids)) == 1000


async def test_results_are_split_back_per_caller(client: ClientAsync) -> None:
    batcher = Batcher(client)
    a, b, c = tb.id(), tb.id(), tb.id()
    first, second = await asyncio.gather(
        batcher.create_transfers([transfer(a), transfer(b, ledger=0)]),
        batcher.create_transfers([transfer(c)]),
    )
    assert [r.status for r in first] == [CREATED, tb.CreateTransferStatus.LEDGER_MUST_NOT_BE_ZERO]
    assert [r.status for r in second] == [CREATED]


async def test_an_open_chain_never_links_into_another_callers_events(client: ClientAsync) -> None:
    batcher = Batcher(client)
    open_chain = [transfer(tb.id(), flags=LINKED), transfer(tb.id(), flags=LINKED)]
    other = [transfer(tb.id())]
    chain_results, other_results = await asyncio.gather(
        batcher.create_transfers(open_chain), batcher.create_transfers(other)
    )
    assert [r.status for r in chain_results] == [
        tb.CreateTransferStatus.LINKED_EVENT_FAILED,
        tb.CreateTransferStatus.LINKED_EVENT_CHAIN_OPEN,
    ]
    assert [r.status for r in other_results] == [CREATED]


async def test_closed_chains_are_merged_and_still_atomic(client: ClientAsync) -> None:
    batcher = Batcher(client)
    good = [transfer(tb.id(), flags=LINKED), transfer(tb.id())]
    bad = [transfer(tb.id(), flags=LINKED), transfer(tb.id(), ledger=0)]
    good_results, bad_results = await asyncio.gather(
        batcher.create_transfers(good), batcher.create_transfers(bad)
    )
    assert [r.status for r in good_results] == [CREATED, CREATED]
    assert [r.status for r in bad_results] == [
        tb.CreateTransferStatus.LINKED_EVENT_FAILED,
        tb.CreateTransferStatus.LEDGER_MUST_NOT_BE_ZERO,
    ]


async def test_imported_and_non_imported_events_never_share_a_request(client: ClientAsync) -> None:
    sizes: list[int] = []
    batcher = Batcher(client, on_request=sizes.append)
    imported = [transfer(tb.id(), flags=tb.TransferFlags.IMPORTED, timestamp=1)]
    plain = [transfer(tb.id())]
    imported_results, plain_results = await asyncio.gather(
        batcher.create_transfers(imported), batcher.create_transfers(plain)
    )
    # Alone, the imported event is judged on its own timestamp (here: older than the accounts).
    assert imported_results[0].status != tb.CreateTransferStatus.IMPORTED_EVENT_NOT_EXPECTED
    assert plain_results[0].status == CREATED
    assert sizes == [1, 1]


async def test_engine_faults_reach_every_caller_of_the_request() -> None:
    client = ClientAsync(cluster_id=0)
    await client.close()
    batcher = Batcher(client)
    calls = [batcher.create_transfers([transfer(tb.id())]) for _ in range(3)]
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(o, tb.ClientClosedError) for o in outcomes)


async def test_a_call_above_the_batch_limit_is_refused(client: ClientAsync) -> None:
    batcher = Batcher(client, batch_events_max=10)
    with pytest.raises(tb.TooMuchDataError):
        await batcher.create_transfers([transfer(tb.id()) for _ in range(11)])
    assert await batcher.create_transfers([]) == []


async def test_requests_never_exceed_the_batch_limit(client: ClientAsync) -> None:
    sizes: list[int] = []
    batcher = Batcher(client, batch_events_max=100, on_request=sizes.append)
    calls = [batcher.create_transfers([transfer(tb.id()) for _ in range(30)]) for _ in range(20)]
    results = await asyncio.gather(*calls)
    assert all(r.status == CREATED for rs in results for r in rs)
    assert max(sizes) <= 100
    assert sum(sizes) == 600
