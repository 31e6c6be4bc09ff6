"""`tbledger serve` publishes the embedded engine's change stream when `cdc_publish_url` is set,
and a real cluster is never mistaken for the embedded engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import tigerbeetle
from tigerbeetle import Account, Transfer

from tbledger.api import create_app
from tbledger.cdc import decode
from tbledger.embedded import ClientAsync
from tbledger.engine import embedded_replica
from tbledger.service import LedgerService
from tbledger.store import Store
from tests.cdc.support import AMQP_URL, amqp_reason, new_cluster_id, stream


async def test_serve_publishes_the_embedded_engines_change_stream(tmp_path: Path) -> None:
    reason = await amqp_reason()
    if reason is not None:
        pytest.skip(reason)
    cluster = new_cluster_id()
    engine = ClientAsync(cluster_id=cluster)
    store = await Store.connect(f"sqlite:///{tmp_path}/s.db", migrate=True)
    async with stream((cluster,)) as s:
        service = LedgerService(
            engine=engine,
            store=store,
            cdc_publish_url=AMQP_URL,
            cdc_exchange=s.exchange,
            cdc_publish_idle_interval_s=0.05,
        )
        try:
            app = create_app(service=service)
            async with app.router.lifespan_context(app):
                ids = (1 << 120) + 1, (1 << 120) + 2
                accounts = [Account(id=i, ledger=999, code=1) for i in ids]
                assert all(
                    r.status.name == "CREATED" for r in await engine.create_accounts(accounts)
                )
                (result,) = await engine.create_transfers(
                    [
                        Transfer(
                            id=77,
                            debit_account_id=ids[0],
                            credit_account_id=ids[1],
                            amount=3,
                            ledger=999,
                            code=1,
                        )
                    ]
                )
                assert result.status.name == "CREATED"
                events = [decode(m.body) for m in await s.collect(1)]
                assert [(e.transfer.id, e.transfer.amount) for e in events] == [(77, 3)]
        finally:
            await service.close()
            await store.close()
            await engine.close()


async def test_a_real_cluster_has_no_embedded_replica() -> None:
    with tigerbeetle.ClientSync(cluster_id=0, replica_addresses="127.0.0.1:1") as client:
        assert embedded_replica(client) is None
    async with ClientAsync(cluster_id=0) as twin:
        assert embedded_replica(twin) is twin.replica
