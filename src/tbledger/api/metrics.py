"""Prometheus metrics of one API process, in a registry of its own (so tests can run many apps).

Names (all prefixed ``tbledger_``), documented with the alert rules in ``monitoring/``:

* ``http_request_duration_seconds{route,method}`` and ``http_requests_total{route,method,status}``;
* ``engine_request_duration_seconds{operation}`` and ``engine_events_per_request{operation}``:
  how long each engine request took and how full it was (the batcher's coalescing at work);
* ``circuit_breaker_state`` (0 closed, 1 half-open, 2 open);
* ``recovery_backlog`` (intents past the grace period with no engine outcome, capped at one page)
  and ``audit_lag_seconds`` (age of the oldest of them; 0 when there is none);
* ``transfer_errors_total{status}``: transfers the engine refused, by its status name;
* ``rate_limited_total``: requests answered 429;
* ``webhook_lag_events{endpoint}``: the audit log's latest seq minus each enabled endpoint's
  cursor (read from the store at each scrape, wherever the deliverer runs);
  ``webhook_delivery_failures_total``: failed attempts by this process's deliverer;
  ``webhook_endpoints_disabled``: endpoints disabled after repeated failures. The endpoint label
  is bounded by the endpoints registered (at most WEBHOOK_ENDPOINTS_PER_OWNER_MAX per owner).
* the change stream, as this process's consumer records it (`tbledger.cdc`):
  ``cdc_events_total{result}`` (``recorded``, ``duplicate``: delivered again, ``rejected``: not a
  change event, moved aside), ``cdc_foreign_transfers_total`` (transfers no tbledger intent
  asked for), ``cdc_holds_expired_total``, ``cdc_lag_seconds`` (from the engine's timestamp of
  the newest event of the last batch to its recording) and ``cdc_last_event_timestamp_seconds``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tbledger.events import LedgerEvent, LedgerEventName
from tbledger.limits import STORE_PAGE_ROWS_MAX
from tbledger.resilience import CircuitState
from tbledger.service import ChangeReport

__all__ = ["Metrics", "MetricsMiddleware"]

_BREAKER = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8189)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_duration = Histogram(
            "tbledger_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "tbledger_http_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.engine_duration = Histogram(
            "tbledger_engine_request_duration_seconds",
            "engine request latency",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.engine_events = Histogram(
            "tbledger_engine_events_per_request",
            "events carried by each engine request",
            ["operation"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.breaker = Gauge(
            "tbledger_circuit_breaker_state", "0 closed, 1 half-open, 2 open", registry=r
        )
        self.backlog = Gauge(
            "tbledger_recovery_backlog", "intents with no engine outcome past the grace period",
            registry=r,
        )  # fmt: skip
        self.audit_lag = Gauge(
            "tbledger_audit_lag_seconds", "age of the oldest intent with no outcome", registry=r
        )
        self.transfer_errors = Counter(
            "tbledger_transfer_errors", "transfers refused by the engine", ["status"], registry=r
        )
        self.rate_limited = Counter("tbledger_rate_limited", "requests answered 429", registry=r)
        self.webhook_lag = Gauge(
            "tbledger_webhook_lag_events",
            "latest audit seq minus the endpoint's cursor",
            ["endpoint"],
            registry=r,
        )
        # Not labelled by endpoint: the lag gauge and the delivery log name the endpoint.
        self.webhook_failures = Counter(
            "tbledger_webhook_delivery_failures", "failed webhook delivery attempts", registry=r
        )
        self.webhook_disabled = Gauge(
            "tbledger_webhook_endpoints_disabled", "webhook endpoints disabled", registry=r
        )

        self.cdc_events = Counter(
            "tbledger_cdc_events", "change-stream events by result", ["result"], registry=r
        )
        # Every result is exposed from the start (at 0), so that a rate over it is defined.
        for result in ("recorded", "duplicate", "rejected"):
            self.cdc_events.labels(result)
        self.cdc_foreign = Counter(
            "tbledger_cdc_foreign_transfers",
            "transfers in the engine that no tbledger intent asked for",
            registry=r,
        )
        self.cdc_expired = Counter(
            "tbledger_cdc_holds_expired",
            "holds recorded expired from the change stream",
            registry=r,
        )
        self.cdc_lag = Gauge(
            "tbledger_cdc_lag_seconds",
            "engine timestamp of the newest recorded change event to its recording",
            registry=r,
        )
        self.cdc_last = Gauge(
            "tbledger_cdc_last_event_timestamp_seconds",
            "engine timestamp of the newest change event recorded",
            registry=r,
        )

    def observe_changes(self, report: ChangeReport, lag_s: float) -> None:
        """What one batch of the change stream recorded (`ChangeConsumer`'s `on_report`)."""
        self.cdc_events.labels("recorded").inc(report.recorded)
        self.cdc_events.labels("duplicate").inc(report.duplicates)
        self.cdc_foreign.inc(report.foreign)
        self.cdc_expired.inc(report.expired)
        self.cdc_lag.set(lag_s)
        if report.timestamp_max is not None:
            self.cdc_last.set(report.timestamp_max / 1e9)

    def observe_change_rejected(self, reason: str) -> None:
        del reason  # logged by the consumer; the message itself is in the rejected queue
        self.cdc_events.labels("rejected").inc()

    def observe_webhook_failure(self, endpoint_id: str) -> None:
        del endpoint_id  # named in the delivery log; a label per endpoint is the lag gauge's
        self.webhook_failures.inc()

    def observe_engine(self, operation: str, events: int, seconds: float) -> None:
        self.engine_duration.labels(operation).observe(seconds)
        self.engine_events.labels(operation).observe(events)

    def observe_event(self, event: LedgerEvent) -> None:
        if event.name is LedgerEventName.TRANSFER_FAILED:
            status = event.data.get("status")
            self.transfer_errors.labels(str(status or "unknown")).inc()

    async def render(self, service: Any) -> bytes:
        """The exposition text, after reading the gauges that need the service or the store."""
        self.breaker.set(_BREAKER[service.breaker.state])
        grace = timedelta(seconds=service.settings.recovery_grace_s)
        try:
            backlog = await service.intents_without_outcome(
                STORE_PAGE_ROWS_MAX, created_before=datetime.now(UTC) - grace
            )
        except Exception:  # a scrape must answer even when the store does not
            backlog = None
        if backlog is not None:
            self.backlog.set(len(backlog))
            oldest = min((i.created_at for i in backlog if i.created_at), default=None)
            self.audit_lag.set(0 if oldest is None else _age_s(oldest))
        # A scrape must answer even when the store does not.
        with contextlib.suppress(Exception):
            await self._read_webhooks(service.store)
        return generate_latest(self.registry)

    async def _read_webhooks(self, store: Any) -> None:
        latest = await store.latest_event_seq()
        endpoints = await store.list_webhook_endpoints(every_owner=True)
        self.webhook_lag.clear()
        for endpoint in endpoints:
            if endpoint.enabled:
                self.webhook_lag.labels(endpoint.id).set(max(0, latest - endpoint.cursor))
        self.webhook_disabled.set(sum(1 for e in endpoints if not e.enabled))


def _age_s(when: datetime) -> float:
    return max(0.0, (datetime.now(UTC) - when).total_seconds())


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class MetricsMiddleware:
    """Times every HTTP request by its route template (``/v1/accounts/{account_id}``)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # A request that ended with no answer (the client left mid-body) says why in the scope.
            status = scope.pop("tbledger.status", status)
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.http_duration.labels(path, method).observe(time.perf_counter() - started)
            self.metrics.http_requests.labels(path, method, str(status)).inc()
