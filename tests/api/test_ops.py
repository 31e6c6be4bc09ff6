"""Operations: probes, metrics, the audit event stream and recovery."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tbledger.api import create_app
from tbledger.embedded import ClientAsync, ManualClock
from tbledger.service import LedgerService
from tests.support.api import SETTINGS, Api


async def test_liveness_and_readiness(api: Api) -> None:
    r = await api.http.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    r = await api.http.get("/readyz")
    assert r.status_code == 200
    ready = r.json()
    assert (ready["ready"], ready["engine"], ready["database"], ready["breaker"]) == (
        True,
        True,
        True,
        "closed",
    )
    assert ready["detail"] == {}


async def test_readiness_fails_when_the_engine_is_gone(api: Api) -> None:
    engine = ClientAsync(cluster_id=0, clock=ManualClock())
    service = LedgerService(engine=engine, store=api.store, **SETTINGS)
    app = create_app(service=service, background=False)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                assert (await http.get("/readyz")).status_code == 200
                await engine.close()
                r = await http.get("/readyz")
                assert r.status_code == 503, r.text
                body = r.json()
                assert (body["ready"], body["engine"], body["database"]) == (False, False, True)
                # The reason stays in the logs, not in a public answer.
                assert body["detail"] == {"engine": "unavailable"}
                assert (await http.get("/healthz")).status_code == 200
    finally:
        await service.close()
        await engine.close()


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name{labels}` in Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head == name and not labels:
            return float(value)
        if head.startswith(name + "{") and all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return None


async def test_metrics(api: Api) -> None:
    alice = await api.account("alice")
    bob = await api.account("bob")
    await api.deposit(alice, "1.00")
    r = await api.http.post(
        "/v1/transfers",
        json={
            "debit_account_id": alice,
            "credit_account_id": bob,
            "amount": "5.00",
            "ledger": "USD",
        },
        headers=api.admin,
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "exceeds_credits")
    r = await api.http.get("/metrics", headers=api.admin)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in (
        "tbledger_http_request_duration_seconds",
        "tbledger_engine_request_duration_seconds",
        "tbledger_engine_events_per_request",
        "tbledger_circuit_breaker_state",
        "tbledger_recovery_backlog",
        "tbledger_audit_lag_seconds",
        "tbledger_transfer_errors_total",
        "tbledger_http_requests_total",
    ):
        assert f"# TYPE {name}" in text, name
    assert _sample(text, "tbledger_transfer_errors_total", status="exceeds_credits") == 1.0
    assert _sample(text, "tbledger_circuit_breaker_state") == 0.0
    assert _sample(text, "tbledger_recovery_backlog") == 0.0
    assert _sample(text, "tbledger_audit_lag_seconds") == 0.0
    # Requests are labelled by route template, not by the ids in them.
    assert (
        _sample(
            text,
            "tbledger_http_requests_total",
            route="/v1/transfers",
            method="POST",
            status="409",
        )
        == 1.0
    )
    assert alice not in text
    events = _sample(text, "tbledger_engine_events_per_request_count", operation="create_transfers")
    assert events is not None and events >= 1
    # Owner keys may not scrape.
    r = await api.http.get("/metrics", headers=await api.owner("alice"))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")


def _parse_sse(text: str) -> list[dict[str, Any]]:
    """Server-sent events as dicts of their fields (`data` parsed as JSON)."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events


async def test_event_stream_replays_the_audit_log(api: Api) -> None:
    alice = await api.account("alice")
    bob = await api.account("bob")
    await api.deposit(alice, "3.00")
    r = await api.http.post(
        "/v1/transfers/pending",
        json={
            "debit_account_id": alice,
            "credit_account_id": bob,
            "amount": "1.00",
            "ledger": "USD",
        },
        headers=api.admin,
    )
    hold = r.json()["id"]
    await api.http.post(f"/v1/transfers/{hold}/void", headers=api.admin)
    r = await api.http.get("/v1/events", params={"follow": "false"}, headers=api.admin)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.startswith("retry: ")
    events = _parse_sse(r.text)
    assert events
    seqs = [int(e["id"]) for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for event in events:
        assert event["event"] == event["data"]["kind"]
        assert int(event["id"]) == event["data"]["seq"]
    mine = [e["event"] for e in events if e["data"]["transfer_id"] == hold]
    assert mine == ["submitted", "pending", "voided"]
    assert "account_created" in {e["event"] for e in events}
    # Resume after a seq: with `since`, or with Last-Event-ID as an EventSource does.
    middle = seqs[len(seqs) // 2]
    r = await api.http.get(
        "/v1/events", params={"follow": "false", "since": middle}, headers=api.admin
    )
    assert [int(e["id"]) for e in _parse_sse(r.text)] == [s for s in seqs if s > middle]
    r = await api.http.get(
        "/v1/events",
        params={"follow": "false"},
        headers={**api.admin, "Last-Event-ID": str(middle)},
    )
    assert [int(e["id"]) for e in _parse_sse(r.text)] == [s for s in seqs if s > middle]
    r = await api.http.get(
        "/v1/events", params={"follow": "false", "since": seqs[-1]}, headers=api.admin
    )
    assert _parse_sse(r.text) == []
    r = await api.http.get("/v1/events", params={"follow": "false"}, headers=await api.owner("a"))
    assert r.status_code == 403


async def test_recover_returns_a_report(api: Api) -> None:
    r = await api.http.post("/v1/admin/recover", headers=api.admin)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "examined": 0,
        "found_in_engine": 0,
        "resubmitted": 0,
        "failed": 0,
        "expired": 0,
        "unresolved": 0,
    }
    r = await api.http.post("/v1/admin/recover", headers=await api.owner("alice"))
    assert r.status_code == 403
