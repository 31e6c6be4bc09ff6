"""Transfers over HTTP: single, holds (post, partial post, void, expiry), batches, reads, listings
and idempotency."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api, transfer_body


async def _funded(api: Api, amount: str = "10.00") -> tuple[str, str]:
    alice = await api.account("alice")
    bob = await api.account("bob")
    await api.deposit(alice, amount)
    return alice, bob


async def _posted(api: Api, *ids: str) -> list[str]:
    r = await api.http.get(
        "/v1/balances", params=[("account_id", i) for i in ids], headers=api.admin
    )
    assert r.status_code == 200, r.text
    return [b["posted"] for b in r.json()["balances"]]


async def _balance(api: Api, account_id: str) -> dict[str, Any]:
    r = await api.http.get(f"/v1/balances/{account_id}", headers=api.admin)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_createtransfer_body(api: Api) -> None:
    alice, bob = await _funded(api)
    r = await api.http.post(
        "/v1/transfers",
        json=transfer_body(
            alice,
            bob,
            "2.50",
            payment_id="pay-1",
            event_id="evt-1",
            metadata={"order": 42},
            user_data_64=7,
        ),
        headers=await api.owner("alice"),
    )
    assert r.status_code == 201, r.text
    result = r.json()
    assert (result["status"], result["ok"], result["replayed"]) == ("created", True, False)
    assert result["timestamp"] is not None
    assert await _posted(api, alice, bob) == ["7.50", "2.50"]
    r = await api.http.get(f"/v1/transfers/{result['id']}", headers=api.admin)
    assert r.status_code == 200, r.text
    transfer = r.json()
    assert (transfer["debit_account_id"], transfer["credit_account_id"]) == (alice, bob)
    assert (transfer["amount"], transfer["amount_minor"], transfer["ledger_name"]) == (
        "2.50",
        "250",
        "USD",
    )
    assert (transfer["payment_id"], transfer["event_id"], transfer["metadata"]) == (
        "pay-1",
        "evt-1",
        {"order": 42},
    )
    assert (transfer["status"], transfer["flags"], transfer["timestamp"]) == (
        "posted",
        [],
        result["timestamp"],
    )
    # Minor units, and a chosen id.
    r = await api.http.post(
        "/v1/transfers",
        json=transfer_body(alice, bob, "5", amount_unit="minor", transfer_id="0xabc"),
        headers=api.admin,
    )
    assert (r.status_code, r.json()["id"]) == (201, f"0x{0xABC:032x}"), r.text
    assert await _posted(api, alice, bob) == ["7.45", "2.55"]
    # Refused by the engine: a 409 named by the engine's status, with what was available.
    r = await api.http.post(
        "/v1/transfers", json=transfer_body(alice, bob, "100.00"), headers=api.admin
    )
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "exceeds_credits"
    assert await _posted(api, alice, bob) == ["7.45", "2.55"]


async def test_pending_then_post_in_full(api: Api) -> None:
    alice, bob = await _funded(api)
    r = await api.http.post(
        "/v1/transfers/pending",
        json=transfer_body(alice, bob, "4.00", timeout_s=3600),
        headers=await api.owner("alice"),
    )
    assert r.status_code == 201, r.text
    hold = r.json()["id"]
    held = await _balance(api, alice)
    assert (held["posted"], held["available"], held["held"]) == ("10.00", "6.00", "4.00")
    r = await api.http.get(f"/v1/transfers/{hold}", headers=api.admin)
    assert (r.json()["flags"], r.json()["timeout_s"], r.json()["status"]) == (
        ["pending"],
        3600,
        "pending",
    )
    # The receiving side posts it.
    r = await api.http.post(f"/v1/transfers/{hold}/post", headers=await api.owner("bob"))
    assert r.status_code == 201, r.text
    post_id = r.json()["id"]
    assert post_id != hold
    assert await _posted(api, alice, bob) == ["6.00", "4.00"]
    assert (await _balance(api, alice))["held"] == "0.00"
    r = await api.http.get(f"/v1/transfers/{post_id}", headers=api.admin)
    assert (r.json()["pending_id"], r.json()["flags"]) == (hold, ["post_pending_transfer"])
    # Posting twice is refused by the engine.
    r = await api.http.post(f"/v1/transfers/{hold}/post", headers=api.admin)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "pending_transfer_already_posted")


async def test_partial_post_releases_the_rest(api: Api) -> None:
    alice, bob = await _funded(api)
    r = await api.http.post(
        "/v1/transfers/pending", json=transfer_body(alice, bob, "5.00"), headers=api.admin
    )
    hold = r.json()["id"]
    r = await api.http.post(
        f"/v1/transfers/{hold}/post", json={"amount": "6.00"}, headers=api.admin
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "exceeds_pending_transfer_amount")
    r = await api.http.post(
        f"/v1/transfers/{hold}/post",
        json={"amount": "300", "amount_unit": "minor", "event_id": "capture-1"},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text
    after = await _balance(api, alice)
    assert (after["posted"], after["available"], after["held"]) == ("7.00", "7.00", "0.00")
    assert await _posted(api, bob) == ["3.00"]
    r = await api.http.get(f"/v1/transfers/{r.json()['id']}", headers=api.admin)
    assert (r.json()["amount"], r.json()["event_id"]) == ("3.00", "capture-1")


async def test_void_releases_the_hold(api: Api) -> None:
    alice, bob = await _funded(api)
    r = await api.http.post(
        "/v1/transfers/pending", json=transfer_body(alice, bob, "5.00"), headers=api.admin
    )
    hold = r.json()["id"]
    assert (await _balance(api, alice))["available"] == "5.00"
    r = await api.http.post(
        f"/v1/transfers/{hold}/void", json={"metadata": {"why": "cancelled"}}, headers=api.admin
    )
    assert r.status_code == 201, r.text
    after = await _balance(api, alice)
    assert (after["posted"], after["available"], after["held"]) == ("10.00", "10.00", "0.00")
    assert await _posted(api, bob) == ["0.00"]
    r = await api.http.get(f"/v1/transfers/{hold}", headers=api.admin)
    assert r.json()["status"] == "voided"
    r = await api.http.post(f"/v1/transfers/{hold}/post", headers=api.admin)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "pending_transfer_already_voided")


async def test_hold_expires_after_its_timeout(api: Api) -> None:
    alice, bob = await _funded(api)
    r = await api.http.post(
        "/v1/transfers/pending",
        json=transfer_body(alice, bob, "5.00", timeout_s=60),
        headers=api.admin,
    )
    hold = r.json()["id"]
    r = await api.http.post("/v1/admin/recover", headers=api.admin)
    assert (r.status_code, r.json()["expired"]) == (200, 0)
    api.clock.advance(61)
    r = await api.http.post("/v1/admin/recover", headers=api.admin)
    assert r.status_code == 200, r.text
    assert r.json()["expired"] == 1
    r = await api.http.get(f"/v1/transfers/{hold}", headers=api.admin)
    transfer = r.json()
    assert transfer["status"] == "expired"
    assert [e["kind"] for e in transfer["audit"]][-1] == "expired"
    after = await _balance(api, alice)
    assert (after["posted"], after["available"], after["held"]) == ("10.00", "10.00", "0.00")
    r = await api.http.post(f"/v1/transfers/{hold}/post", headers=api.admin)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "pending_transfer_expired")
    # Recorded once.
    assert await api.service.expire_holds() == 0


async def test_a_hold_past_its_timeout_reads_expired_without_a_recovery_pass(api: Api) -> None:
    alice, bob = await _funded(api)
    holds = []
    for n in range(4):
        r = await api.http.post(
            "/v1/transfers/pending",
            json=transfer_body(alice, bob, "1.00", timeout_s=60, event_id=f"expiring-{n}"),
            headers=api.admin,
        )
        assert r.status_code == 201, r.text
        holds.append(r.json()["id"])
    r = await api.http.get(f"/v1/transfers/{holds[0]}", headers=api.admin)
    assert r.json()["status"] == "pending"
    api.clock.advance(61)
    # Each read path, the first to look at its hold after the engine's clock passed it.
    r = await api.http.get(f"/v1/transfers/{holds[0]}", headers=api.admin)
    assert r.json()["status"] == "expired"
    assert [e["kind"] for e in r.json()["audit"]] == ["submitted", "pending", "expired"]
    r = await api.http.get("/v1/transfers", params={"event_id": "expiring-1"}, headers=api.admin)
    assert [t["status"] for t in r.json()["transfers"]] == ["expired"]
    r = await api.http.get(f"/v1/accounts/{alice}/transfers", headers=api.admin)
    listed = {t["id"]: t["status"] for t in r.json()["transfers"]}
    assert [listed[h] for h in holds] == ["expired"] * 4
    r = await api.http.get(f"/v1/accounts/{bob}/activity", headers=api.admin)
    assert {e["transfer_id"]: e["status"] for e in r.json()["entries"]} == dict.fromkeys(
        holds, "expired"
    )
    after = await _balance(api, alice)
    assert (after["posted"], after["available"], after["held"]) == ("10.00", "10.00", "0.00")
    # Recorded once each, and nothing left for the recovery pass.
    r = await api.http.post("/v1/admin/recover", headers=api.admin)
    assert r.json()["expired"] == 0
    for hold in holds:
        r = await api.http.get(f"/v1/transfers/{hold}", headers=api.admin)
        assert [e["kind"] for e in r.json()["audit"]].count("expired") == 1


async def test_a_partly_captured_hold_shows_what_was_captured_and_released(api: Api) -> None:
    alice, bob = await _funded(api, "50.00")
    r = await api.http.post(
        "/v1/transfers/pending",
        json=transfer_body(alice, bob, "30.00", event_id="captured-1"),
        headers=api.admin,
    )
    hold = r.json()["id"]
    r = await api.http.get(f"/v1/transfers/{hold}", headers=api.admin)
    assert (r.json()["status"], r.json()["captured_amount"], r.json()["released_amount"]) == (
        "pending",
        None,
        None,
    )
    r = await api.http.post(
        f"/v1/transfers/{hold}/post", json={"amount": "12.00"}, headers=api.admin
    )
    assert r.status_code == 201, r.text
    post = r.json()["id"]
    captured = {
        "amount": "30.00",
        "status": "posted",
        "captured_amount": "12.00",
        "captured_amount_minor": "1200",
        "released_amount": "18.00",
        "released_amount_minor": "1800",
    }
    r = await api.http.get(f"/v1/transfers/{hold}", headers=api.admin)
    assert {k: r.json()[k] for k in captured} == captured
    r = await api.http.get("/v1/transfers", params={"event_id": "captured-1"}, headers=api.admin)
    [listed] = r.json()["transfers"]
    assert {k: listed[k] for k in captured} == captured
    r = await api.http.get(f"/v1/accounts/{alice}/transfers", headers=api.admin)
    by_id = {t["id"]: t for t in r.json()["transfers"]}
    assert {k: by_id[hold][k] for k in captured} == captured
    # The post itself moved 12.00; it captured nothing of its own.
    assert (by_id[post]["amount"], by_id[post]["captured_amount"]) == ("12.00", None)
    r = await api.http.get(f"/v1/accounts/{alice}/activity", headers=api.admin)
    [entry] = [e for e in r.json()["entries"] if e["transfer_id"] == hold]
    assert (entry["captured_amount"], entry["released_amount"]) == ("12.00", "18.00")
    assert entry["released_amount_minor"] == "1800"
    assert await _posted(api, alice, bob) == ["38.00", "12.00"]


async def test_batch_returns_one_result_pertransfer_body(api: Api) -> None:
    alice, bob = await _funded(api)
    r = await api.http.post(
        "/v1/transfers/batch",
        json={
            "transfers": [
                transfer_body(alice, bob, "1.00"),
                transfer_body(alice, bob, "100.00"),
                transfer_body(alice, bob, "2.00"),
            ]
        },
        headers=api.admin,
    )
    assert r.status_code == 200, r.text
    batch = r.json()
    assert (batch["created"], batch["failed"]) == (2, 1)
    assert [(x["status"], x["ok"]) for x in batch["results"]] == [
        ("created", True),
        ("exceeds_credits", False),
        ("created", True),
    ]
    assert await _posted(api, alice, bob) == ["7.00", "3.00"]
    # The failing transfer is on record with its refusal.
    r = await api.http.get(f"/v1/transfers/{batch['results'][1]['id']}", headers=api.admin)
    assert (r.json()["status"], r.json()["timestamp"]) == ("failed", None)
    assert r.json()["audit"][-1]["status"] == "exceeds_credits"


async def test_pending_batch(api: Api) -> None:
    alice, bob = await _funded(api)
    r = await api.http.post(
        "/v1/transfers/batch",
        json={"transfers": [transfer_body(alice, bob, "1.00")] * 3, "pending": True},
        headers=api.admin,
    )
    assert (r.status_code, r.json()["created"]) == (200, 3), r.text
    assert (await _balance(api, alice))["held"] == "3.00"


async def test_atomic_batch_is_all_or_nothing(api: Api) -> None:
    alice, bob = await _funded(api)
    body = {
        "transfers": [
            transfer_body(alice, bob, "1.00"),
            transfer_body(alice, bob, "100.00"),
            transfer_body(alice, bob, "2.00"),
        ],
        "atomic": True,
    }
    r = await api.http.post("/v1/transfers/batch", json=body, headers=api.admin)
    assert r.status_code == 200, r.text
    batch = r.json()
    assert (batch["created"], batch["failed"]) == (0, 3)
    statuses = [x["status"] for x in batch["results"]]
    assert statuses[1] == "exceeds_credits"
    assert statuses[0] == statuses[2] == "linked_event_failed"
    assert await _posted(api, alice, bob) == ["10.00", "0.00"]
    body["transfers"][1] = transfer_body(alice, bob, "3.00")
    r = await api.http.post("/v1/transfers/batch", json=body, headers=api.admin)
    assert (r.json()["created"], r.json()["failed"]) == (3, 0)
    assert await _posted(api, alice, bob) == ["4.00", "6.00"]


async def test_batch_over_the_engine_limit_is_refused(api: Api) -> None:
    alice, bob = await _funded(api)
    before = api.engine_requests()
    r = await api.http.post(
        "/v1/transfers/batch",
        json={"transfers": [transfer_body(alice, bob, "0.01")] * 8190},
        headers=api.admin,
    )
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "limit_exceeded"
    assert api.engine_requests() == before
    assert await _posted(api, alice) == ["10.00"]


async def test_get_transfer_shows_its_audit_history(api: Api) -> None:
    alice, bob = await _funded(api)
    r = await api.http.post(
        "/v1/transfers/pending", json=transfer_body(alice, bob, "5.00"), headers=api.admin
    )
    hold = r.json()["id"]
    r = await api.http.post(
        f"/v1/transfers/{hold}/post", json={"amount": "1.00"}, headers=api.admin
    )
    post_id = r.json()["id"]
    r = await api.http.get(f"/v1/transfers/{hold}", headers=api.admin)
    assert r.status_code == 200
    audit = r.json()["audit"]
    assert [e["kind"] for e in audit] == ["submitted", "pending", "posted"]
    assert all(e["transfer_id"] == hold for e in audit)
    assert audit[1]["engine_timestamp"] == r.json()["timestamp"]
    seqs = [e["seq"] for e in audit]
    assert seqs == sorted(seqs)
    r = await api.http.get(f"/v1/transfers/{post_id}", headers=api.admin)
    assert [e["kind"] for e in r.json()["audit"]] == ["submitted", "posted"]
    # Missing: 404.
    r = await api.http.get("/v1/transfers/0x1234", headers=api.admin)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "transfer_not_found")


async def test_list_transfers_by_event_id(api: Api) -> None:
    alice, bob = await _funded(api)
    ids = []
    for event_id in ("order-7", "order-7", "order-8"):
        r = await api.http.post(
            "/v1/transfers",
            json=transfer_body(alice, bob, "1.00", event_id=event_id),
            headers=api.admin,
        )
        ids.append(r.json()["id"])
    r = await api.http.get("/v1/transfers", params={"event_id": "order-7"}, headers=api.admin)
    assert r.status_code == 200, r.text
    listed = r.json()["transfers"]
    assert sorted(t["id"] for t in listed) == sorted(ids[:2])
    assert {(t["event_id"], t["status"], t["amount"]) for t in listed} == {
        ("order-7", "posted", "1.00")
    }
    r = await api.http.get(
        "/v1/transfers", params={"event_id": "order-7"}, headers=await api.owner("bob")
    )
    assert len(r.json()["transfers"]) == 2
    r = await api.http.get("/v1/transfers", params={"event_id": "order-9"}, headers=api.admin)
    assert r.json()["transfers"] == []
    # More transfers than `limit`: a page and a cursor, not an error.
    r = await api.http.get(
        "/v1/transfers", params={"event_id": "order-7", "limit": 1}, headers=api.admin
    )
    assert r.status_code == 200, r.text
    first = r.json()
    assert len(first["transfers"]) == 1 and first["next_cursor"] is not None
    r = await api.http.get(
        "/v1/transfers",
        params={"event_id": "order-7", "limit": 1, "cursor": first["next_cursor"]},
        headers=api.admin,
    )
    second = r.json()
    assert second["next_cursor"] is None
    assert [t["id"] for t in first["transfers"] + second["transfers"]] == sorted(ids[:2])


async def test_list_account_transfers_pages(api: Api) -> None:
    alice, bob = await _funded(api)
    made = []
    for cents in range(1, 6):
        r = await api.http.post(
            "/v1/transfers",
            json=transfer_body(alice, bob, str(cents), amount_unit="minor"),
            headers=api.admin,
        )
        made.append(r.json()["id"])
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        r = await api.http.get(f"/v1/accounts/{bob}/transfers", params=params, headers=api.admin)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["transfers"]) <= 2
        seen += [t["id"] for t in page["transfers"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made
    # Newest first, and the debit side sees the deposit too.
    r = await api.http.get(
        f"/v1/accounts/{bob}/transfers", params={"reverse": "true"}, headers=api.admin
    )
    assert [t["id"] for t in r.json()["transfers"]] == made[::-1]
    r = await api.http.get(f"/v1/accounts/{alice}/transfers", headers=await api.owner("alice"))
    listed = r.json()["transfers"]
    assert len(listed) == 6 and [t["id"] for t in listed[1:]] == made
    assert all(t["status"] == "posted" for t in listed)


async def test_idempotency_key_replays_atransfer_body(api: Api) -> None:
    alice, bob = await _funded(api)
    headers = {**(await api.owner("alice")), "Idempotency-Key": "pay-bob-1"}
    body = transfer_body(alice, bob, "2.00")
    first = await api.http.post("/v1/transfers", json=body, headers=headers)
    assert first.status_code == 201, first.text
    before = api.engine_requests()
    again = await api.http.post("/v1/transfers", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert (again.json()["id"], again.json()["status"], again.json()["replayed"]) == (
        first.json()["id"],
        "created",
        True,
    )
    assert api.engine_requests() == before
    assert await _posted(api, alice, bob) == ["8.00", "2.00"]
    r = await api.http.get(f"/v1/accounts/{bob}/transfers", headers=api.admin)
    assert [t["id"] for t in r.json()["transfers"]] == [first.json()["id"]]
    # The same key for another transfer: 409, nothing moves.
    r = await api.http.post(
        "/v1/transfers", json=transfer_body(alice, bob, "3.00"), headers=headers
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "idempotency_conflict")
    assert await _posted(api, alice, bob) == ["8.00", "2.00"]
    # A refusal replays as the same refusal.
    refused = {**headers, "Idempotency-Key": "pay-bob-2"}
    big = transfer_body(alice, bob, "50.00")
    r1 = await api.http.post("/v1/transfers", json=big, headers=refused)
    r2 = await api.http.post("/v1/transfers", json=big, headers=refused)
    assert (r1.status_code, r2.status_code) == (409, 409)
    assert r1.json()["error"]["code"] == r2.json()["error"]["code"] == "exceeds_credits"
    # Keys are per API key: the admin's "pay-bob-1" is a new transfer.
    r = await api.http.post(
        "/v1/transfers", json=body, headers={**api.admin, "Idempotency-Key": "pay-bob-1"}
    )
    assert (r.status_code, r.json()["replayed"]) == (201, False)
    assert r.json()["id"] != first.json()["id"]


async def test_idempotency_key_on_post_and_batch(api: Api) -> None:
    alice, bob = await _funded(api)
    r = await api.http.post(
        "/v1/transfers/pending", json=transfer_body(alice, bob, "5.00"), headers=api.admin
    )
    hold = r.json()["id"]
    headers = {**api.admin, "Idempotency-Key": "capture-1"}
    first = await api.http.post(
        f"/v1/transfers/{hold}/post", json={"amount": "2.00"}, headers=headers
    )
    again = await api.http.post(
        f"/v1/transfers/{hold}/post", json={"amount": "2.00"}, headers=headers
    )
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json()["id"] == first.json()["id"] and again.json()["replayed"]
    r = await api.http.post(f"/v1/transfers/{hold}/post", json={"amount": "1.00"}, headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "idempotency_conflict")
    assert await _posted(api, alice, bob) == ["8.00", "2.00"]
    batch = {"transfers": [transfer_body(alice, bob, "1.00"), transfer_body(alice, bob, "0.50")]}
    headers = {**api.admin, "Idempotency-Key": "batch-1"}
    first = await api.http.post("/v1/transfers/batch", json=batch, headers=headers)
    again = await api.http.post("/v1/transfers/batch", json=batch, headers=headers)
    assert [x["id"] for x in again.json()["results"]] == [x["id"] for x in first.json()["results"]]
    assert all(x["replayed"] for x in again.json()["results"])
    assert await _posted(api, alice, bob) == ["6.50", "3.50"]
