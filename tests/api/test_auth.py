"""Keys and visibility: every route needs a valid key, owner keys stay inside their own accounts,
admin routes refuse owner keys, and each key is rate limited."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from tbledger.api import mint_key
from tests.support.api import Api, transfer_body

OPEN = {"/healthz", "/readyz", "/openapi.json", "/docs"}

# Routes only admin keys may use (the rest are open to owner keys, within their own accounts).
ADMIN_ONLY = {
    ("POST", "/v1/accounts/{account_id}/freeze"),
    ("POST", "/v1/accounts/{account_id}/unfreeze"),
    ("POST", "/v1/accounts/{account_id}/close"),
    ("GET", "/metrics"),
    ("POST", "/v1/admin/recover"),
    ("GET", "/v1/events"),
    ("POST", "/v1/flows/deposit"),
    ("POST", "/v1/rates"),
    ("PUT", "/v1/fees/merchants/{account_id}"),
}


def _routes(api: Api) -> list[tuple[str, str]]:
    """Every (method, path) of the app's OpenAPI, path parameters filled with a valid id."""
    routes = []
    for template, operations in api.app.openapi()["paths"].items():
        path = re.sub(r"\{[^}]+\}", "0x1", template)
        for method in operations:
            if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                routes.append((method.upper(), path, template))
    return [(m, p) for m, p, t in routes if t not in OPEN] + [
        (m, p) for m, p, t in routes if t in OPEN
    ]


async def _revoked_key(api: Api) -> str:
    minted = mint_key(name="revoked", scope="admin")
    await api.store.create_api_key(minted.record)
    await api.store.revoke_api_key(minted.record.id)
    return minted.token


async def test_every_route_needs_a_valid_key(api: Api) -> None:
    wellformed_unknown = f"tbl_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
    key_id = api.admin_key.split("_")[1]
    wrong_secret = f"tbl_{key_id}_{secrets.token_urlsafe(32)}"
    bad: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": f"Basic {api.admin_key}"},
        {"Authorization": f"Bearer {api.admin_key}x"},
        {"Authorization": f"Bearer {api.admin_key[:-1]}"},
        {"Authorization": f"Bearer {wellformed_unknown}"},
        {"Authorization": f"Bearer {wrong_secret}"},
        {"Authorization": f"Bearer {await _revoked_key(api)}"},
        {"X-API-Key": "tbl_x"},
        {"X-API-Key": wellformed_unknown},
        {"X-API-Key": await _revoked_key(api)},
    ]
    routes = _routes(api)
    checked = 0
    before = api.engine_requests()
    for method, path in routes:
        if path in OPEN:
            continue
        for headers in bad:
            r = await api.http.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.status_code, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["WWW-Authenticate"] == "Bearer"
            checked += 1
    assert checked >= 15 * len(bad)
    assert api.engine_requests() == before
    # The open routes answer without a key.
    for path in sorted(OPEN):
        r = await api.http.get(path)
        assert r.status_code == 200, (path, r.text)
    # The same key is accepted in either header.
    r = await api.http.get("/v1/accounts", params={"owner_id": "a"}, headers=api.admin)
    assert r.status_code == 200
    r = await api.http.get(
        "/v1/accounts", params={"owner_id": "a"}, headers={"X-API-Key": api.admin_key}
    )
    assert r.status_code == 200


async def test_a_revoked_key_stops_working(api: Api) -> None:
    minted = mint_key(name="soon revoked", scope="owner", owner_id="alice")
    await api.store.create_api_key(minted.record)
    headers = {"Authorization": f"Bearer {minted.token}"}
    r = await api.http.get("/v1/accounts", params={"owner_id": "alice"}, headers=headers)
    assert r.status_code == 200
    await api.store.revoke_api_key(minted.record.id)
    # Verified keys are cached for API_KEY_CACHE_TTL_S; a process told of the revocation (or a
    # fresh one) sees it at once.
    api.app.state.ctx.keys.forget(minted.record.id)
    r = await api.http.get("/v1/accounts", params={"owner_id": "alice"}, headers=headers)
    assert r.status_code == 401


async def test_a_key_created_after_a_miss_works_once_the_ring_forgets_it(api: Api) -> None:
    minted = mint_key(name="late", scope="owner", owner_id="alice")
    headers = {"Authorization": f"Bearer {minted.token}"}
    r = await api.http.get("/v1/accounts", params={"owner_id": "alice"}, headers=headers)
    assert r.status_code == 401
    await api.store.create_api_key(minted.record)
    # The miss is cached for API_KEY_NEGATIVE_TTL_S; forgetting every key drops it as well.
    api.app.state.ctx.keys.forget()
    r = await api.http.get("/v1/accounts", params={"owner_id": "alice"}, headers=headers)
    assert r.status_code == 200, r.text


async def test_admin_routes_refuse_owner_keys(api: Api) -> None:
    alice = await api.account("alice")
    owner = await api.owner("alice")
    for method, path in _routes(api):
        template = path.replace("0x1", "{account_id}")
        if (method, template) in ADMIN_ONLY:
            real = path.replace("0x1", alice)
            body: Any = (
                {"account_id": alice, "amount": "1.00", "ledger": "USD"}
                if path.endswith("deposit")
                else None
            )
            r = await api.http.request(method, real, headers=owner, json=body)
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error"]["code"] == "forbidden"
        elif not path.startswith("/v1/flows/"):
            r = await api.http.request(method, path, headers=owner)
            assert r.status_code != 403, (method, path, r.text)
    r = await api.http.get(f"/v1/accounts/{alice}", headers=api.admin)
    assert (r.json()["status"], r.json()["balance"]["posted"]) == ("active", "0.00")


def _as_missing(body: dict[str, Any], real: str, missing: str) -> dict[str, Any]:
    """`body` with the id of the hidden record spelled as the missing one."""
    error = dict(body["error"])
    error["message"] = error["message"].replace(real, missing)
    return {"error": error}


async def test_owner_keys_see_and_move_only_their_own_accounts(api: Api) -> None:
    alice = await api.account("alice")
    bob = await api.account("bob")
    carol = await api.account("carol")
    await api.deposit(alice, "10.00")
    await api.deposit(carol, "10.00")
    missing = f"0x{0x7777:032x}"
    bob_key = await api.owner("bob")

    async def hidden(method: str, path: str, real: str, **kw: Any) -> None:
        """`real` is answered exactly as `missing` is (the same request with that id)."""
        r = await api.http.request(method, path, headers=bob_key, **kw)
        assert r.status_code == 404, (path, r.text)
        swapped = json.loads(json.dumps(kw).replace(real, missing))
        r_missing = await api.http.request(
            method, path.replace(real, missing), headers=bob_key, **swapped
        )
        assert r_missing.status_code == 404, (path, r_missing.text)
        assert _as_missing(r.json(), real, missing) == r_missing.json()

    # Reads of another owner's account: exactly as for a missing one.
    await hidden("GET", f"/v1/accounts/{alice}", alice)
    await hidden("GET", f"/v1/balances/{alice}", alice)
    await hidden("GET", "/v1/balances", alice, params=[("account_id", alice)])
    await hidden("GET", f"/v1/accounts/{alice}/transfers", alice)
    r = await api.http.get("/v1/accounts", params={"owner_id": "alice"}, headers=bob_key)
    assert r.json()["accounts"] == []
    # Moving another owner's money: the debit account is not found.
    before = api.engine_requests()
    await hidden("POST", "/v1/transfers", alice, json=transfer_body(alice, bob))
    await hidden("POST", "/v1/transfers/pending", alice, json=transfer_body(alice, bob))
    r = await api.http.post(
        "/v1/transfers/batch",
        json={"transfers": [transfer_body(bob, alice, "0.01"), transfer_body(alice, bob)]},
        headers=bob_key,
    )
    assert r.status_code == 404, r.text
    assert api.engine_requests() == before
    # Paying into another owner's account is allowed (the credit side may be anyone's)...
    await api.deposit(bob, "1.00")
    r = await api.http.post(
        "/v1/transfers", json=transfer_body(bob, alice, "0.25"), headers=bob_key
    )
    assert r.status_code == 201, r.text
    paid = r.json()["id"]
    # ...and bob then sees that transfer, but not alice's account.
    r = await api.http.get(f"/v1/transfers/{paid}", headers=bob_key)
    assert r.status_code == 200
    # A hold between alice and carol: bob can neither post nor void it, nor read it.
    r = await api.http.post(
        "/v1/transfers/pending", json=transfer_body(alice, carol, "2.00"), headers=api.admin
    )
    hold = r.json()["id"]
    await hidden("POST", f"/v1/transfers/{hold}/post", hold)
    await hidden("POST", f"/v1/transfers/{hold}/void", hold)
    await hidden("GET", f"/v1/transfers/{hold}", hold)
    r = await api.http.post(
        "/v1/transfers",
        json={**transfer_body(alice, carol), "event_id": "ev-ac"},
        headers=api.admin,
    )
    between = r.json()["id"]
    await hidden("GET", f"/v1/transfers/{between}", between)
    r = await api.http.get("/v1/transfers", params={"event_id": "ev-ac"}, headers=bob_key)
    assert r.json()["transfers"] == []
    r = await api.http.get("/v1/transfers", params={"event_id": "ev-ac"}, headers=api.admin)
    assert [t["id"] for t in r.json()["transfers"]] == [between]
    # The payer cannot void its own authorization; the payee can.
    alice_key = await api.owner("alice")
    r = await api.http.post(f"/v1/transfers/{hold}/void", headers=alice_key)
    assert r.status_code == 404, r.text
    r = await api.http.post(f"/v1/transfers/{hold}/void", headers=await api.owner("carol"))
    assert r.status_code == 201, r.text
    r = await api.http.get(
        "/v1/balances", params=[("account_id", alice), ("account_id", carol)], headers=api.admin
    )
    assert [b["posted"] for b in r.json()["balances"]] == ["9.25", "11.00"]


async def test_rate_limit_answers_429_with_retry_after(api: Api) -> None:
    limited = await api.owner("x", rate_per_s=1, burst=2)
    statuses = []
    for _ in range(3):
        r = await api.http.get("/v1/accounts", params={"owner_id": "x"}, headers=limited)
        statuses.append(r.status_code)
    assert statuses == [200, 200, 429]
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1
    # Another key is not affected.
    r = await api.http.get("/v1/accounts", params={"owner_id": "x"}, headers=await api.owner("x"))
    assert r.status_code == 200
    r = await api.http.get("/metrics", headers=api.admin)
    assert "tbledger_rate_limited_total 1.0" in r.text
