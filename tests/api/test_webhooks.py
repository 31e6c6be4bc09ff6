"""Webhook endpoints over HTTP: admin and owner keys, owner scoping, secrets shown once, replay,
the delivery log, and the metrics of lag and disabled endpoints."""

from __future__ import annotations

from tests.support.api import Api


async def test_an_admin_manages_every_endpoint_and_sees_a_secret_once(api: Api) -> None:
    r = await api.http.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/in", "subscription": {"kinds": ["posted"]}},
        headers=api.admin,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["secret"].startswith("whsec_")
    assert (created["owner_id"], created["subscription"]["kinds"]) == (None, ["posted"])
    endpoint_id = created["id"]
    listed = (await api.http.get("/v1/webhooks", headers=api.admin)).json()
    assert [e["id"] for e in listed] == [endpoint_id]
    assert "secret" not in listed[0]
    rotated = (await api.http.post(f"/v1/webhooks/{endpoint_id}/rotate", headers=api.admin)).json()
    assert rotated["secret"] != created["secret"]
    assert rotated["rotating_until"] is not None
    r = await api.http.post(
        f"/v1/webhooks/{endpoint_id}/replay", json={"from_seq": 1}, headers=api.admin
    )
    assert (r.status_code, r.json()["cursor"]) == (200, 0)
    r = await api.http.get(f"/v1/webhooks/{endpoint_id}/deliveries", headers=api.admin)
    assert (r.status_code, r.json()) == (200, [])
    r = await api.http.post(f"/v1/webhooks/{endpoint_id}/enable", headers=api.admin)
    assert r.json()["enabled"] is True
    r = await api.http.delete(f"/v1/webhooks/{endpoint_id}", headers=api.admin)
    assert r.json() == {"id": endpoint_id, "deleted": True}
    r = await api.http.get(f"/v1/webhooks/{endpoint_id}", headers=api.admin)
    assert r.status_code == 404


async def test_an_owner_key_manages_only_its_owners_endpoints(api: Api) -> None:
    alice, bob = await api.owner("alice"), await api.owner("bob")
    r = await api.http.post("/v1/webhooks", json={"url": "https://a.example/"}, headers=alice)
    assert r.status_code == 201, r.text
    mine = r.json()
    assert mine["owner_id"] == "alice"
    for body in (
        {"url": "https://a.example/", "owner_id": "bob"},
        {"url": "https://a.example/", "subscription": {"owners": ["bob"]}},
    ):
        r = await api.http.post("/v1/webhooks", json=body, headers=alice)
        assert r.status_code == 403, r.text
    assert [e["id"] for e in (await api.http.get("/v1/webhooks", headers=bob)).json()] == []
    for method, suffix in (
        ("GET", ""),
        ("DELETE", ""),
        ("POST", "/rotate"),
        ("POST", "/enable"),
        ("GET", "/deliveries"),
    ):
        r = await api.http.request(method, f"/v1/webhooks/{mine['id']}{suffix}", headers=bob)
        assert r.status_code == 404, (method, suffix, r.text)
    r = await api.http.get(f"/v1/webhooks/{mine['id']}", headers=alice)
    assert r.status_code == 200
    # The admin sees it too.
    listed = (await api.http.get("/v1/webhooks", headers=api.admin)).json()
    assert [e["id"] for e in listed] == [mine["id"]]


async def test_the_guard_refuses_bad_urls_when_registered(api: Api) -> None:
    for url in ("ftp://hooks.example.com/", "file:///etc/passwd", "http://u:p@h.example/"):
        r = await api.http.post("/v1/webhooks", json={"url": url}, headers=api.admin)
        assert r.status_code == 422, (url, r.text)


async def test_metrics_show_the_lag_and_disabled_endpoints(api: Api) -> None:
    r = await api.http.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/in"}, headers=api.admin
    )
    endpoint_id = r.json()["id"]
    await api.http.post(
        f"/v1/webhooks/{endpoint_id}/replay", json={"from_seq": 1}, headers=api.admin
    )
    latest = await api.store.latest_event_seq()
    text = (await api.http.get("/metrics", headers=api.admin)).text
    assert f'tbledger_webhook_lag_events{{endpoint="{endpoint_id}"}} {float(latest)}' in text
    assert "tbledger_webhook_endpoints_disabled 0.0" in text
