"""The app starts, answers its probes and moves money end to end."""

from __future__ import annotations

from tests.api.conftest import Api


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
