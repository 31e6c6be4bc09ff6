"""Discovery over HTTP: accounts listed and named, transfers found by metadata, per key.

An admin key lists every account, the platform's own (treasury, fee pool, liquidity) among them,
filtered by type, ledger, status and owner, a page at a time; an owner key lists and names only
its own owner's accounts, and another owner's answers as missing (an empty listing, a 404 by
name). Transfers are found by ``metadata[KEY]=VALUE``: the admin finds all, an owner those with
its accounts on either side, anyone else nothing.
"""

from __future__ import annotations

from typing import Any

from tbledger.limits import HTTP_PAGE_LIMIT_MAX
from tests.api.conftest import Api


async def _listing(api: Api, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every page of an account listing, each page's accounts in order, all together."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = dict(params, **({} if cursor is None else {"cursor": cursor}))
        r = await api.http.get("/v1/accounts", params=query, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["accounts"]) <= int(params.get("limit", 100))
        found.extend(body["accounts"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


async def test_an_admin_lists_the_platforms_own_accounts(api: Api) -> None:
    everything = await _listing(api, api.admin)
    system = [a for a in everything if a["owner_id"] is None]
    assert {"treasury", "fee_pool"} <= {a["account_type"] for a in system}
    assert all(a["name"].startswith("system:") for a in system)
    treasuries = await _listing(api, api.admin, account_type="treasury")
    assert treasuries and {a["account_type"] for a in treasuries} == {"treasury"}
    usd = await _listing(api, api.admin, account_type="treasury", ledger="USD")
    assert [a["ledger_name"] for a in usd] == ["USD"]
    assert usd == await _listing(api, api.admin, account_type="treasury", ledger="1")
    assert usd[0]["balance"]["account_id"] == usd[0]["id"]
    # In id order, across pages of any size.
    ids = [a["id"] for a in everything]
    assert ids == sorted(ids, key=lambda i: int(i, 16))
    assert [a["id"] for a in await _listing(api, api.admin, limit=3)] == ids


async def test_filters_combine_and_follow_status_changes(api: Api) -> None:
    alice_usd = await api.account("alice")
    alice_eur = await api.account("alice", ledger="EUR")
    shop = await api.account("alice", account_type="merchant")
    await api.account("bob")

    async def ids(**params: Any) -> list[str]:
        return [a["id"] for a in await _listing(api, api.admin, **params)]

    assert await ids(owner_id="alice") == [alice_usd, alice_eur, shop]
    assert await ids(owner_id="alice", ledger="USD") == [alice_usd, shop]
    assert await ids(owner_id="alice", account_type="merchant") == [shop]
    r = await api.http.post(f"/v1/accounts/{alice_eur}/freeze", headers=api.admin)
    assert r.status_code == 200, r.text
    assert await ids(owner_id="alice", status="frozen") == [alice_eur]
    assert alice_eur in await ids(status="frozen")
    assert alice_eur not in await ids(status="active")


async def test_an_owner_key_lists_only_its_owners_accounts(api: Api) -> None:
    mine = [await api.account("alice"), await api.account("alice", ledger="EUR")]
    bobs = await api.account("bob")
    alice = await api.owner("alice")
    assert [a["id"] for a in await _listing(api, alice)] == mine
    assert [a["id"] for a in await _listing(api, alice, owner_id="alice", limit=1)] == mine
    assert [a["id"] for a in await _listing(api, alice, ledger="EUR")] == mine[1:]
    # Another owner's accounts, or the platform's, read as none at all.
    assert await _listing(api, alice, owner_id="bob") == []
    assert await _listing(api, alice, account_type="treasury") == []
    assert await _listing(api, await api.owner("carol")) == []
    assert [a["id"] for a in await _listing(api, await api.owner("bob"))] == [bobs]


async def test_a_page_never_exceeds_the_limit(api: Api) -> None:
    r = await api.http.get("/v1/accounts", params={"limit": 1}, headers=api.admin)
    assert r.status_code == 200
    assert len(r.json()["accounts"]) == 1 and r.json()["next_cursor"] is not None
    r = await api.http.get(
        "/v1/accounts", params={"limit": HTTP_PAGE_LIMIT_MAX + 1}, headers=api.admin
    )
    assert r.status_code == 422


async def test_accounts_by_name_per_key(api: Api) -> None:
    named = await api.account("alice", name="Alice's wallet/USD")
    path = "/v1/accounts/by-name/Alice%27s%20wallet%2FUSD"
    for headers in (api.admin, await api.owner("alice")):
        r = await api.http.get(path, headers=headers)
        assert r.status_code == 200, r.text
        assert (r.json()["id"], r.json()["name"]) == (named, "Alice's wallet/USD")
        assert r.json()["balance"]["account_id"] == named
    # Another owner's name, the platform's, and no such name answer alike.
    bob = await api.owner("bob")
    answers = []
    for segment, name, headers in (
        ("Alice's wallet%2FUSD", "Alice's wallet/USD", bob),
        ("system:treasury:1", "system:treasury:1", bob),
        ("nobody", "nobody", bob),
        ("nobody", "nobody", api.admin),
    ):
        r = await api.http.get(f"/v1/accounts/by-name/{segment}", headers=headers)
        assert r.status_code == 404, r.text
        error = r.json()["error"]
        message = error["message"].replace(repr(name), "NAME")
        answers.append((error["code"], message, error["details"]))
    assert answers == [("account_not_found", "no account named NAME", {})] * 4
    r = await api.http.get("/v1/accounts/by-name/system:treasury:1", headers=api.admin)
    assert (r.status_code, r.json()["account_type"]) == (200, "treasury")


async def _pay(api: Api, debit: str, credit: str, metadata: dict[str, Any], key: str) -> str:
    r = await api.http.post(
        "/v1/transfers",
        json={
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount": "1.00",
            "ledger": "USD",
            "metadata": metadata,
        },
        headers=await api.owner(key),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _found(api: Api, headers: dict[str, str], params: Any) -> list[str]:
    r = await api.http.get("/v1/transfers", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["transfers"]]


async def test_transfers_by_metadata_per_key(api: Api) -> None:
    alice, bob, carol = [await api.account(owner) for owner in ("alice", "bob", "carol")]
    for account in (alice, bob):
        await api.deposit(account, "10.00")
    a17 = await _pay(api, alice, bob, {"order": "A-17", "channel": "web"}, "alice")
    b17 = await _pay(api, bob, carol, {"order": "A-17"}, "bob")
    await _pay(api, alice, bob, {"order": "A-18"}, "alice")
    order = {"metadata[order]": "A-17"}
    assert await _found(api, api.admin, order) == [a17, b17]
    assert await _found(api, await api.owner("alice"), order) == [a17]
    assert await _found(api, await api.owner("bob"), order) == [a17, b17]
    assert await _found(api, await api.owner("carol"), order) == [b17]
    assert await _found(api, await api.owner("dave"), order) == []
    both = [("metadata[order]", "A-17"), ("metadata[channel]", "web")]
    assert await _found(api, api.admin, both) == [a17]
    # The listing's rows carry the transfer as the engine holds it, with its metadata.
    r = await api.http.get("/v1/transfers", params=order, headers=api.admin)
    first = r.json()["transfers"][0]
    assert (first["status"], first["amount"], first["metadata"]["channel"]) == (
        "posted",
        "1.00",
        "web",
    )


async def test_transfers_by_metadata_page_and_combine_with_an_event(api: Api) -> None:
    alice, bob = await api.account("alice"), await api.account("bob")
    await api.deposit(alice, "10.00")
    ids = [await _pay(api, alice, bob, {"batch": "b-1"}, "alice") for _ in range(3)]
    r = await api.http.post(
        "/v1/transfers",
        json={
            "debit_account_id": alice,
            "credit_account_id": bob,
            "amount": "1.00",
            "ledger": "USD",
            "event_id": "payout-9",
            "metadata": {"batch": "b-1"},
        },
        headers=api.admin,
    )
    evented = r.json()["id"]
    pages, cursor = [], None
    while True:
        params = {"metadata[batch]": "b-1", "limit": "2"}
        if cursor is not None:
            params["cursor"] = cursor
        r = await api.http.get("/v1/transfers", params=params, headers=await api.owner("alice"))
        pages.append([t["id"] for t in r.json()["transfers"]])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [ids[:2], [ids[2], evented]]
    with_event = {"metadata[batch]": "b-1", "event_id": "payout-9"}
    assert await _found(api, api.admin, with_event) == [evented]
    assert await _found(api, api.admin, {"event_id": "payout-9"}) == [evented]
