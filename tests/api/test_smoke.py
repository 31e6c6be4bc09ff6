"""The app starts, answers its probes and moves money end to end."""

from __future__ import annotations

from tests.support.api import Api


async def test_health_probes_need_no_key(api: Api) -> None:
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}
    ready = await api.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True


async def test_a_transfer_moves_money(api: Api) -> None:
    alice = await api.account("alice")
    bob = await api.account("bob")
    await api.deposit(alice, "10.00")
    r = await api.http.post(
        "/v1/transfers",
        json={
            "debit_account_id": alice,
            "credit_account_id": bob,
            "amount": "2.50",
            "ledger": "USD",
        },
        headers=await api.owner("alice"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "created"
    balance = (await api.http.get(f"/v1/balances/{bob}", headers=api.admin)).json()
    assert (balance["posted"], balance["posted_minor"]) == ("2.50", "250")


async def test_serve_freezes_the_start_up_heap_out_of_the_collectors_sight(
    tmp_path: object,
) -> None:
    # tbledger serve builds its app with freeze_gc: once started, what start-up allocated is
    # no longer visited by every full collection (each one pauses all requests).
    import gc

    from tbledger.api import create_app
    from tbledger.embedded import ClientAsync
    from tbledger.service import LedgerService
    from tbledger.store import Store

    engine = ClientAsync(cluster_id=0)
    store = await Store.connect(f"sqlite:///{tmp_path}/s.db", migrate=True)
    service = LedgerService(engine=engine, store=store)
    try:
        for freeze in (False, True):
            app = create_app(service=service, freeze_gc=freeze)
            async with app.router.lifespan_context(app):
                frozen = gc.get_freeze_count()
            gc.unfreeze()
            assert (frozen > 0) is freeze
    finally:
        gc.unfreeze()
        await service.close()
        await store.close()
        await engine.close()
