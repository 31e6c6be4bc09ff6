"""The alert rules and the dashboard in monitoring/ are well formed and name only real metrics.

Every ``tbledger_*`` name in a PromQL expression of monitoring/alerts.yml or
monitoring/grafana-dashboard.json must be a metric the app exposes on /metrics, after the
exposition suffixes are taken off: ``_total`` (counters), ``_bucket``/``_sum``/``_count``
(histograms). docs/monitoring.md must document each of those metrics and each alert.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.api import Api

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "monitoring" / "alerts.yml"
DASHBOARD = ROOT / "monitoring" / "grafana-dashboard.json"
MONITORING_DOC = ROOT / "docs" / "monitoring.md"

_METRIC = re.compile(r"\btbledger_[a-z0-9_]+\b")
_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\w+)$", re.MULTILINE)
_SUFFIXES = ("_bucket", "_sum", "_count", "_total")


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
    return panels


def _expressions() -> dict[str, str]:
    """Every PromQL expression, by where it comes from."""
    found = {f"alert {rule['alert']}": str(rule["expr"]) for rule in _rules()}
    for panel in _panels(_dashboard()):
        for target in panel.get("targets", []):
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    return found


def _family(name: str) -> str:
    """The metric family of an exposed or queried series name."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_alert_rules_have_the_prometheus_rule_group_shape() -> None:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    assert document["groups"], "no rule groups"
    names = set()
    for group in document["groups"]:
        assert isinstance(group["name"], str) and group["name"]
        assert group["rules"], f"group {group['name']} has no rules"
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert isinstance(rule["alert"], str) and re.fullmatch(r"[A-Za-z0-9_]+", rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert re.fullmatch(r"\d+[smhd]", rule.get("for", "0s")), rule["alert"]
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"]
            assert rule["alert"] not in names, f"alert {rule['alert']} is defined twice"
            names.add(rule["alert"])
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


def test_the_dashboard_is_grafana_json_with_a_prometheus_datasource_variable() -> None:
    dashboard = _dashboard()
    assert dashboard["title"] and dashboard["uid"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = _panels(dashboard)
    assert len(panels) >= 8
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel.get("type") == "row":
            continue
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]


def test_every_alert_and_metric_is_documented() -> None:
    doc = MONITORING_DOC.read_text(encoding="utf-8")
    for rule in _rules():
        assert f"`{rule['alert']}`" in doc, f"docs/monitoring.md does not document {rule['alert']}"
    queried = {_family(m) for expr in _expressions().values() for m in _METRIC.findall(expr)}
    for family in queried:
        assert family in doc, f"docs/monitoring.md does not document {family}"


async def test_every_queried_metric_is_exposed(api: Api) -> None:
    alice = await api.account("alice")
    bob = await api.account("bob")
    await api.deposit(alice, "10.00")
    for amount in ("2.50", "1000.00"):  # one transfer, one refusal
        await api.http.post(
            "/v1/transfers",
            json={
                "debit_account_id": alice,
                "credit_account_id": bob,
                "amount": amount,
                "ledger": "USD",
            },
            headers=await api.owner("alice"),
        )
    response = await api.http.get("/metrics", headers=api.admin)
    assert response.status_code == 200, response.text
    # Counters are typed under their _total name by prometheus_client; compare families.
    exposed = {_family(n) if k == "counter" else n: k for n, k in _TYPE_LINE.findall(response.text)}
    samples = set(re.findall(r"^(tbledger_[a-z0-9_]+)[{ ]", response.text, re.MULTILINE))
    assert "tbledger_http_requests_total" in samples
    assert "tbledger_http_request_duration_seconds_bucket" in samples
    assert "tbledger_transfer_errors_total" in samples
    for where, expr in _expressions().items():
        for name in _METRIC.findall(expr):
            family = _family(name)
            kind = exposed.get(family)
            assert kind is not None, f"{where}: {name} is not exposed by /metrics"
            if name.endswith(("_bucket", "_sum", "_count")):
                assert kind == "histogram", f"{where}: {name} needs a histogram, {family} is {kind}"
            if name.endswith("_total"):
                assert kind == "counter", f"{where}: {name} needs a counter, {family} is {kind}"
            else:
                assert kind != "counter", f"{where}: counter {family} is queried without _total"
            assert name in samples or name == family, f"{where}: no samples of {name}"


def test_fastapi_telemetry_is_off_unless_asked_for() -> None:
    # FastAPI looks for an OpenTelemetry provider on every request while its native telemetry is
    # on; the app exports Prometheus metrics itself and turns it on only when asked.
    from tbledger.api import create_app

    off = create_app()._native_telemetry
    assert not off.enabled()
    assert not (off.config["tracing"] or off.config["metrics"] or off.config["logs"])
    on = create_app(telemetry=True)._native_telemetry
    assert on.config["tracing"] and on.config["metrics"] and on.config["logs"]
