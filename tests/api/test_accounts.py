"""Accounts and balances over HTTP: create, read, list, freeze / unfreeze / close."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api, transfer_body


async def test_admin_creates_an_account(api: Api) -> None:
    r = await api.http.post(
        "/v1/accounts",
        json={"ledger": "EUR", "owner_id": "alice", "metadata": {"tier": "gold", "n": [1, 2]}},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text
    account = r.json()
    assert account["id"].startswith("0x") and len(account["id"]) == 34
    assert account["account_type"] == "user"
    assert (account["owner_id"], account["ledger"], account["ledger_name"]) == ("alice", 2, "EUR")
    assert account["status"] == "active"
    assert account["metadata"] == {"tier": "gold", "n": [1, 2]}
    # Admin keys open system accounts and name them.
    r = await api.http.post(
        "/v1/accounts",
        json={"ledger": "USD", "account_type": "escrow", "name": "escrow-test"},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text
    assert (r.json()["account_type"], r.json()["name"], r.json()["owner_id"]) == (
        "escrow",
        "escrow-test",
        None,
    )
    # Ledgers are named or numbered.
    r = await api.http.post(
        "/v1/accounts", json={"ledger": "1", "owner_id": "a"}, headers=api.admin
    )
    assert (r.status_code, r.json()["ledger_name"]) == (201, "USD")


async def test_owner_key_opens_accounts_for_itself_only(api: Api) -> None:
    alice = await api.owner("alice")
    r = await api.http.post("/v1/accounts", json={"ledger": "USD"}, headers=alice)
    assert r.status_code == 201, r.text
    assert r.json()["owner_id"] == "alice"
    r = await api.http.post(
        "/v1/accounts",
        json={"ledger": "USD", "owner_id": "alice", "account_type": "merchant"},
        headers=alice,
    )
    assert (r.status_code, r.json()["account_type"]) == (201, "merchant")
    refused = [
        {"ledger": "USD", "owner_id": "bob"},
        {"ledger": "USD", "account_type": "treasury"},
        {"ledger": "USD", "account_type": "control"},
        {"ledger": "USD", "account_type": "escrow", "owner_id": "alice"},
        {"ledger": "USD", "account_type": "fee_pool"},
        {"ledger": "USD", "name": "system:control:1"},
    ]
    before = api.engine_requests()
    for body in refused:
        r = await api.http.post("/v1/accounts", json=body, headers=alice)
        assert r.status_code == 403, (body, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    assert api.engine_requests() == before
    r = await api.http.get("/v1/accounts", params={"owner_id": "bob"}, headers=api.admin)
    assert r.json()["accounts"] == []


async def test_idempotency_key_replays_the_account(api: Api) -> None:
    body = {"ledger": "USD", "owner_id": "carol", "metadata": {"ref": "signup-1"}}
    headers = {**api.admin, "Idempotency-Key": "open-carol-1"}
    first = await api.http.post("/v1/accounts", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await api.http.post("/v1/accounts", json=body, headers=headers)
    assert again.status_code in (200, 201), again.text
    assert again.json() == first.json()
    r = await api.http.get("/v1/accounts", params={"owner_id": "carol"}, headers=api.admin)
    assert [a["id"] for a in r.json()["accounts"]] == [first.json()["id"]]
    # The same key for a different account is a conflict, whatever the difference.
    for changed in (
        {**body, "ledger": "EUR"},
        {**body, "owner_id": "dave"},
        {**body, "account_type": "merchant"},
        {**body, "metadata": {"ref": "signup-2"}},
        {**body, "name": "carol's"},
    ):
        r = await api.http.post("/v1/accounts", json=changed, headers=headers)
        assert r.status_code == 409, (changed, r.text)
        assert r.json()["error"]["code"] == "idempotency_conflict", r.text
    # Another key opens another account; keys are per API key, so another caller's key with the
    # same text is independent.
    other = await api.http.post(
        "/v1/accounts", json=body, headers={**api.admin, "Idempotency-Key": "open-carol-2"}
    )
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    owner = await api.http.post(
        "/v1/accounts",
        json={"ledger": "USD"},
        headers={**(await api.owner("carol")), "Idempotency-Key": "open-carol-1"},
    )
    assert owner.status_code == 201 and owner.json()["id"] not in (
        first.json()["id"],
        other.json()["id"],
    )


async def test_get_account_with_balance(api: Api) -> None:
    alice = await api.account("alice", metadata={"k": "v"})
    await api.deposit(alice, "10.00")
    r = await api.http.get(f"/v1/accounts/{alice}", headers=api.admin)
    assert r.status_code == 200, r.text
    account = r.json()
    assert (account["id"], account["owner_id"], account["metadata"]) == (alice, "alice", {"k": "v"})
    balance = account["balance"]
    assert (balance["posted"], balance["available"], balance["pending"]) == (
        "10.00",
        "10.00",
        "0.00",
    )
    assert (balance["posted_minor"], balance["normal_side"], balance["closed"]) == (
        "1000",
        "credit",
        False,
    )
    # The owner's key reads it too; ids are accepted in any spelling and answered in hex.
    r = await api.http.get(f"/v1/accounts/{int(alice, 16)}", headers=await api.owner("alice"))
    assert (r.status_code, r.json()["id"]) == (200, alice)


async def test_list_accounts_by_owner(api: Api) -> None:
    first = await api.account("alice")
    second = await api.account("alice", ledger="EUR")
    await api.account("bob")
    await api.deposit(first, "3.00")
    r = await api.http.get("/v1/accounts", params={"owner_id": "alice"}, headers=api.admin)
    assert r.status_code == 200, r.text
    accounts = r.json()["accounts"]
    assert sorted(a["id"] for a in accounts) == sorted([first, second])
    assert {a["id"]: a["balance"]["posted"] for a in accounts} == {first: "3.00", second: "0.00"}
    alice = await api.owner("alice")
    r = await api.http.get("/v1/accounts", params={"owner_id": "alice"}, headers=alice)
    assert sorted(a["id"] for a in r.json()["accounts"]) == sorted([first, second])
    # Another owner's list is empty for an owner key, exactly as for an owner with no accounts.
    r = await api.http.get("/v1/accounts", params={"owner_id": "bob"}, headers=alice)
    assert (r.status_code, r.json()) == (200, {"accounts": [], "next_cursor": None})
    r = await api.http.get("/v1/accounts", params={"owner_id": "nobody"}, headers=api.admin)
    assert r.json()["accounts"] == []


async def test_list_accounts_pages_past_the_limit(api: Api) -> None:
    """More accounts than `limit` is a page and a cursor, not an error."""
    opened = sorted([await api.account("dora") for _ in range(5)])
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"owner_id": "dora", "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        r = await api.http.get("/v1/accounts", params=params, headers=api.admin)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["accounts"]) <= 2
        seen += [a["id"] for a in page["accounts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == opened
    r = await api.http.get("/v1/accounts", params={"owner_id": "dora"}, headers=api.admin)
    assert ([a["id"] for a in r.json()["accounts"]], r.json()["next_cursor"]) == (opened, None)


async def test_freeze_refuses_transfers_until_unfrozen(api: Api) -> None:
    alice = await api.account("alice")
    bob = await api.account("bob")
    await api.deposit(alice, "10.00")
    r = await api.http.post(f"/v1/accounts/{alice}/freeze", headers=api.admin)
    assert (r.status_code, r.json()["status"]) == (200, "frozen")
    owner = await api.owner("alice")
    r = await api.http.post("/v1/transfers", json=transfer_body(alice, bob, "1.00"), headers=owner)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "account_frozen"
    r = await api.http.post(
        "/v1/transfers", json=transfer_body(bob, alice, "1.00"), headers=api.admin
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "account_frozen"
    # The money is still there, and reads still work.
    r = await api.http.get(f"/v1/accounts/{alice}", headers=owner)
    assert (r.json()["status"], r.json()["balance"]["posted"]) == ("frozen", "10.00")
    # Freezing twice is a no-op.
    r = await api.http.post(f"/v1/accounts/{alice}/freeze", headers=api.admin)
    assert (r.status_code, r.json()["status"]) == (200, "frozen")
    r = await api.http.post(f"/v1/accounts/{alice}/unfreeze", headers=api.admin)
    assert (r.status_code, r.json()["status"]) == (200, "active")
    r = await api.http.post("/v1/transfers", json=transfer_body(alice, bob, "1.00"), headers=owner)
    assert (r.status_code, r.json()["status"]) == (201, "created"), r.text
    r = await api.http.get(f"/v1/balances/{alice}", headers=owner)
    assert r.json()["posted"] == "9.00"


async def test_close_sweeps_the_balance(api: Api) -> None:
    alice = await api.account("alice")
    bob = await api.account("bob")
    carol = await api.account("carol")
    await api.deposit(alice, "10.00")
    await api.deposit(carol, "4.00")
    # To the ledger's control account by default.
    r = await api.http.post(f"/v1/accounts/{alice}/close", headers=api.admin)
    assert (r.status_code, r.json()["status"]) == (200, "closed"), r.text
    r = await api.http.get(f"/v1/balances/{alice}", headers=api.admin)
    assert (r.json()["posted"], r.json()["closed"]) == ("0.00", True)
    # To a chosen account.
    r = await api.http.post(
        f"/v1/accounts/{carol}/close", json={"sweep_to": bob}, headers=api.admin
    )
    assert (r.status_code, r.json()["status"]) == (200, "closed"), r.text
    r = await api.http.get(
        "/v1/balances", params=[("account_id", carol), ("account_id", bob)], headers=api.admin
    )
    assert [b["posted"] for b in r.json()["balances"]] == ["0.00", "4.00"]
    # Closed for good: no transfers, no reopening.
    r = await api.http.post(
        "/v1/transfers", json=transfer_body(bob, alice, "1.00"), headers=api.admin
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "credit_account_already_closed")
    r = await api.http.post(f"/v1/accounts/{alice}/unfreeze", headers=api.admin)
    assert r.status_code == 422
    r = await api.http.post(f"/v1/accounts/{alice}/close", headers=api.admin)
    assert (r.status_code, r.json()["status"]) == (200, "closed")


async def test_status_changes_need_an_admin_key_and_an_existing_account(api: Api) -> None:
    alice = await api.account("alice")
    owner = await api.owner("alice")
    for action in ("freeze", "unfreeze", "close"):
        r = await api.http.post(f"/v1/accounts/{alice}/{action}", headers=owner)
        assert r.status_code == 403, (action, r.text)
        r = await api.http.post(f"/v1/accounts/0x77/{action}", headers=api.admin)
        assert r.status_code == 404, (action, r.text)
    r = await api.http.get(f"/v1/accounts/{alice}", headers=api.admin)
    assert r.json()["status"] == "active"


async def test_balances_one_and_many(api: Api) -> None:
    alice = await api.account("alice")
    bob = await api.account("bob")
    euro = await api.account("bob", ledger="EUR")
    await api.deposit(alice, "10.00")
    await api.deposit(euro, "0.05", ledger="EUR")
    r = await api.http.post(
        "/v1/transfers", json=transfer_body(alice, bob, "2.50"), headers=api.admin
    )
    assert r.status_code == 201, r.text
    r = await api.http.get(f"/v1/balances/{alice}", headers=api.admin)
    assert r.status_code == 200
    one = r.json()
    assert (one["account_id"], one["posted"], one["available"]) == (alice, "7.50", "7.50")
    assert (one["ledger"], one["ledger_name"], one["asset_scale"]) == (1, "USD", 2)
    assert (one["credits_posted"], one["debits_posted"]) == ("1000", "250")
    r = await api.http.get(
        "/v1/balances",
        params=[("account_id", bob), ("account_id", euro), ("account_id", alice)],
        headers=api.admin,
    )
    assert r.status_code == 200, r.text
    many = r.json()["balances"]
    assert [b["account_id"] for b in many] == [bob, euro, alice]
    assert [(b["posted"], b["ledger_name"]) for b in many] == [
        ("2.50", "USD"),
        ("0.05", "EUR"),
        ("7.50", "USD"),
    ]
    # The owner key of bob reads bob's two, but not a list that includes alice's.
    owner = await api.owner("bob")
    r = await api.http.get(
        "/v1/balances", params=[("account_id", bob), ("account_id", euro)], headers=owner
    )
    assert [b["posted"] for b in r.json()["balances"]] == ["2.50", "0.05"]
    r = await api.http.get(
        "/v1/balances", params=[("account_id", bob), ("account_id", alice)], headers=owner
    )
    assert r.status_code == 404
