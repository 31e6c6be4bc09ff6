"""The FastAPI application: `create_app` wires the service, flows, keys, limits and metrics.

The app owns its `LedgerService` unless one is passed in (tests, embedders): on start-up it
connects (migrating the store, running recovery, then recovery and hold expiry in the background),
creates the chart's system accounts and, with ``Settings.webhooks``, starts the webhook deliverer,
with ``Settings.cdc_url`` the change stream's consumer (and with ``cdc_supervise`` its job), and
with ``Settings.cdc_publish_url`` (embedded engine only) the embedded engine's change stream;
on shutdown it closes what it opened. Its documentation pages (``/docs``, ``/redoc``) and its web
console (``/console``; ``/`` leads there) are served from the package, never from a CDN
(`tbledger.api.docs`, `tbledger.api.console`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI

from tbledger.api.console.routes import install_console
from tbledger.api.context import ApiContext
from tbledger.api.direct import DirectRoutes
from tbledger.api.docs import install_docs
from tbledger.api.errors import ERROR_RESPONSES, install_error_handlers
from tbledger.api.guard import GuardMiddleware
from tbledger.api.keys import KeyRing, RateLimiter
from tbledger.api.metrics import Metrics, MetricsMiddleware
from tbledger.api.routes import accounts, flows, history, ops, prices, transfers, webhooks
from tbledger.api.strict import BodyLimitMiddleware
from tbledger.cdc import ChangeStream, TwinPublisher
from tbledger.chart import Chart
from tbledger.config import Settings
from tbledger.engine import embedded_replica
from tbledger.errors import ConfigurationError
from tbledger.flows import SpendEngine
from tbledger.limits import CDC_BIND_WAIT_S, HTTP_BODY_BYTES_MAX, HTTP_BODY_IDLE_TIMEOUT_S
from tbledger.prices import Prices
from tbledger.service import LedgerService
from tbledger.webhooks.deliverer import Deliverer, options_from

__all__ = ["create_app"]

log = logging.getLogger("tbledger.api")

API_VERSION = "1"

# Collections per allocation for a serving process: the default (700, 10, 10) collects the
# youngest generation every 700 allocations, several times per request (measured: about 16% of
# the server's CPU per single-transfer request; 20,000 takes it to a few percent). Garbage is
# still collected, in larger and rarer passes.
_GC_THRESHOLDS = (20_000, 20, 20)


def create_app(
    settings: Settings | None = None,
    *,
    service: LedgerService | None = None,
    chart: Chart | None = None,
    body_bytes_max: int = HTTP_BODY_BYTES_MAX,
    body_idle_timeout_s: float = HTTP_BODY_IDLE_TIMEOUT_S,
    background: bool = True,
    telemetry: bool = False,
    freeze_gc: bool = False,
    clock: Callable[[], int] | None = None,
) -> FastAPI:
    """The API app. Pass `service` (connected or not) to share one; else it is built from
    `settings` (default: the environment).

    `freeze_gc` (for a process that runs only this app, as `tbledger serve` does): once start-up
    is done, everything allocated so far (modules, the engine's replayed state) is moved out of
    the garbage collector's sight with `gc.freeze()`. A full collection visits every tracked
    object, and pauses every request meanwhile; without the freeze the start-up heap alone made
    those pauses tens of milliseconds (measured). The thresholds are then raised
    (`_GC_THRESHOLDS`): collecting the youngest generation every 700 allocations cost the
    serving process a sixth of its CPU.

    `body_idle_timeout_s`: a body whose next chunk takes longer than this is answered 408 and
    its connection closed (`HTTP_BODY_IDLE_TIMEOUT_S`).

    `telemetry` turns on FastAPI's native OpenTelemetry spans and metrics (used when an
    OpenTelemetry provider is configured). Off by default: the app exports Prometheus metrics
    itself, and FastAPI looks for a provider on every request (measured: about 6% of the
    server's time under load), even when none is configured.

    `clock` (nanoseconds since the epoch; default wall time) is what rates and quotes are valid
    against: tests pass the engine's manual clock and move it instead of sleeping.
    """
    metrics = Metrics()
    book = chart if chart is not None else Chart.default()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = service is None
        svc = service if service is not None else LedgerService(settings)
        await svc.connect(background=background and owned)
        try:
            spend = SpendEngine(svc, book)
            await spend.ensure_system_accounts()
            svc.observe_engine_requests(metrics.observe_engine)
            unsubscribe = svc.on("transfer_failed", metrics.observe_event)
            app.state.ctx = ApiContext(
                service=svc,
                flows=spend,
                chart=book,
                keys=KeyRing(svc),
                limiter=RateLimiter(),
                metrics=metrics,
                prices=Prices(
                    svc.price_records,
                    clock=clock,
                    fee_bps=svc.settings.fee_bps,
                    fee_payer=svc.settings.fee_payer,
                ),
            )
            # Webhooks are delivered from this process when the settings say so; with several
            # servers, the per-endpoint lease keeps one deliverer per endpoint among them.
            deliverer: Deliverer | None = None
            if svc.settings.webhooks and background:
                deliverer = Deliverer(
                    svc.store,
                    options_from(svc.settings),
                    on_failure=metrics.observe_webhook_failure,
                )
                deliverer.start()
            # The change stream (TigerBeetle's CDC) is consumed here when its broker is set,
            # and the embedded engine publishes its own when asked, once the consumer's queue
            # is bound (so that nothing it publishes first is unroutable).
            stream: ChangeStream | None = None
            if svc.settings.cdc_url is not None and background:
                stream = ChangeStream(
                    svc,
                    svc.settings,
                    on_report=metrics.observe_changes,
                    on_rejected=metrics.observe_change_rejected,
                )
                stream.start()
                if svc.settings.cdc_publish_url is not None:
                    await stream.consumer.wait_connected(CDC_BIND_WAIT_S)
            publisher = await _start_change_stream(svc) if background else None
            if freeze_gc:
                gc.collect()
                gc.freeze()
                gc.set_threshold(*_GC_THRESHOLDS)
            try:
                yield
            finally:
                if publisher is not None:
                    await publisher.stop()
                if stream is not None:
                    await stream.stop()
                if deliverer is not None:
                    await deliverer.stop()
            unsubscribe()
        finally:
            if owned:
                await svc.close()

    app = FastAPI(
        title="tbledger",
        version=f"{API_VERSION}.0",
        summary="Accounts, balances, transfers and payment flows on TigerBeetle",
        lifespan=lifespan,
        responses=_shared_responses(),
        telemetry={"tracing": telemetry, "metrics": telemetry, "logs": telemetry},
        # FastAPI's pages load their viewers from a CDN; these are served from the package.
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app, title=app.title)
    install_console(app)
    install_error_handlers(app)
    for module in (ops, accounts, transfers, flows, prices, history, webhooks):
        app.include_router(module.router)
    # Innermost: the hottest writes, answered without the framework's per-request work.
    app.add_middleware(DirectRoutes, routes=transfers.DIRECT_ROUTES)
    app.add_middleware(BodyLimitMiddleware, bytes_max=body_bytes_max)
    # The key is checked (and rate limited) from the headers before anything reads the body.
    app.add_middleware(GuardMiddleware, body_idle_timeout_s=body_idle_timeout_s)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.metrics = metrics
    return app


async def _start_change_stream(svc: LedgerService) -> TwinPublisher | None:
    """With `Settings.cdc_publish_url` and the embedded engine, start publishing its change
    stream; a real cluster's is published by `tigerbeetle amqp`, so the setting is refused."""
    settings = svc.settings
    if settings.cdc_publish_url is None:
        return None
    replica = embedded_replica(svc.engine)
    if replica is None:
        raise ConfigurationError(
            "cdc_publish_url (TBLEDGER_CDC_PUBLISH_URL) publishes the embedded engine's change "
            "stream; with a real TigerBeetle cluster run `tigerbeetle amqp` instead"
        )
    publisher = TwinPublisher(
        replica,
        url=settings.cdc_publish_url,
        exchange=settings.cdc_exchange,
        routing_key=settings.cdc_routing_key,
        idle_interval_s=settings.cdc_publish_idle_interval_s,
    )
    await publisher.start()
    return publisher


def _shared_responses() -> dict[int | str, dict[str, Any]]:
    return dict(ERROR_RESPONSES)
