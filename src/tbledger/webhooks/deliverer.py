"""The webhook deliverer: per endpoint, one lease holder POSTs the audit log's events in order.

For each enabled endpoint a task takes the endpoint's lease (`Store.acquire_webhook_lease`; one
holder across every process), reads the next page of events after the endpoint's cursor that its
subscription and owner let it see, and POSTs them one at a time, in seq order, each signed
(`tbledger.webhooks.signing`) with a stable ``webhook-id``. The cursor advances only after a 2xx,
so a crash between the POST and the cursor update sends that event again: delivery is at least
once, and a receiver deduplicates by ``webhook-id``. Successful deliveries are logged and the
cursor moved past them in one commit every `WEBHOOK_FLUSH_S` at most (rather than two commits per
event), so a crash resends at most that long's deliveries. Any other answer, a redirect, a timeout
or a URL the SSRF guard refuses is a failure: it is logged, the endpoint's consecutive failure
count grows, the task waits a jittered exponential backoff (capped) and tries the same event again;
at the configured number of failures the endpoint is disabled. Every attempt is logged in the
delivery log. Pages of events the endpoint was not sent move the cursor past them.

The task renews its lease as it goes and stops delivering once it cannot, so a stalled process
never interleaves with the one that took over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import httpx

from tbledger.config import Settings
from tbledger.errors import ConfigurationError, StoreError
from tbledger.limits import (
    WEBHOOK_BACKOFF_CAP_S,
    WEBHOOK_BATCH_EVENTS_MAX,
    WEBHOOK_FAILURES_MAX,
    WEBHOOK_FLUSH_S,
    WEBHOOK_LEASE_S,
    WEBHOOK_TIMEOUT_S,
)
from tbledger.model import AuditEvent, WebhookDelivery, WebhookEndpoint
from tbledger.store import Store
from tbledger.webhooks.policy import (
    UrlRefusedError,
    backoff_s,
    check_addresses,
    check_url,
    payload,
)
from tbledger.webhooks.signing import event_id, signed_headers

__all__ = ["Deliverer", "DeliveryOptions", "DeliveryStats", "options_from", "run_deliverer"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryOptions:
    """How the deliverer behaves; the defaults are the named limits."""

    allowed_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    timeout_s: float = WEBHOOK_TIMEOUT_S
    failures_max: int = WEBHOOK_FAILURES_MAX
    backoff_base_s: float = 1.0
    backoff_cap_s: float = WEBHOOK_BACKOFF_CAP_S
    batch_events_max: int = WEBHOOK_BATCH_EVENTS_MAX
    lease_s: float = WEBHOOK_LEASE_S
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        # A lease shorter than one attempt could pass to another process while this one still
        # waits for an answer; the two would then deliver the endpoint's events interleaved.
        if self.lease_s <= self.timeout_s:
            raise ConfigurationError(
                f"the webhook lease ({self.lease_s} s) must be longer than the delivery timeout "
                f"({self.timeout_s} s)"
            )


@dataclass(slots=True)
class DeliveryStats:
    """What the metrics read: failures per endpoint since start, and the last cursors seen."""

    failures: dict[str, int] = field(default_factory=dict)
    cursors: dict[str, int] = field(default_factory=dict)


class Deliverer:
    """Runs one delivery task per enabled endpoint until stopped (`run`, or `start`/`stop`)."""

    def __init__(
        self,
        store: Store,
        options: DeliveryOptions | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        holder: str | None = None,
        random_fn: Callable[[], float] = random.random,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._options = options or DeliveryOptions()
        self._holder = holder or f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._random = random_fn
        self._on_failure = on_failure
        self._http = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            timeout=self._options.timeout_s,
            # A proxy from the environment would be a way around the SSRF guard.
            trust_env=False,
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self.stats = DeliveryStats()

    @property
    def holder(self) -> str:
        return self._holder

    def start(self) -> None:
        """Run in the background (the API server's lifespan); `stop` ends it."""
        self._runner = asyncio.create_task(self.run(), name="webhook-deliverer")

    async def stop(self) -> None:
        """Stop after the attempts under way (each bounded by the timeout), then close."""
        self._stopping.set()
        if self._runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await self._http.aclose()

    async def run(self) -> None:
        """Supervise: every poll, start a task for each enabled endpoint that has none."""
        try:
            while not self._stopping.is_set():
                try:
                    endpoints = await self._store.list_webhook_endpoints(every_owner=True)
                except StoreError:
                    # The store is down: keep supervising, and look again next poll.
                    _log.warning("webhook deliverer cannot list endpoints", exc_info=True)
                    endpoints = []
                for endpoint in endpoints:
                    task = self._tasks.get(endpoint.id)
                    if endpoint.enabled and (task is None or task.done()):
                        self._tasks[endpoint.id] = asyncio.create_task(
                            self._endpoint_loop(endpoint.id), name=f"webhook-{endpoint.id}"
                        )
                await self._sleep(self._options.poll_s)
        finally:
            # Each task ends after its attempt under way; one that does not within the timeout
            # is cancelled (its event is sent again later: delivery is at least once).
            tasks = list(self._tasks.values())
            if tasks:
                _, late = await asyncio.wait(tasks, timeout=self._options.timeout_s + 1.0)
                for task in late:
                    task.cancel()
                for task in late:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            self._tasks.clear()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=max(seconds, 0.0))

    async def _lease(self, endpoint_id: str) -> bool:
        now = datetime.now(UTC)
        until = now + timedelta(seconds=self._options.lease_s)
        return await self._store.acquire_webhook_lease(
            endpoint_id, holder=self._holder, until=until, now=now
        )

    async def _endpoint_loop(self, endpoint_id: str) -> None:
        try:
            while not self._stopping.is_set():
                if not await self._lease(endpoint_id):
                    await self._sleep(min(self._options.poll_s, self._options.lease_s / 3))
                    continue
                endpoint = await self._store.get_webhook_endpoint(endpoint_id)
                if endpoint is None or not endpoint.enabled:
                    await self._store.release_webhook_lease(endpoint_id, holder=self._holder)
                    return
                wait_s = await self.deliver_page(endpoint)
                if wait_s:
                    await self._sleep(wait_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A store fault ends this endpoint's task; the supervisor starts it again next poll.
            _log.exception("webhook deliverer for endpoint %s failed", endpoint_id)

    async def deliver_page(self, endpoint: WebhookEndpoint) -> float:
        """Deliver the next page of the endpoint's events; the time to wait before the next
        page (0: more may be ready now)."""
        events, end = await self._store.webhook_events_after(
            endpoint, limit=self._options.batch_events_max
        )
        self.stats.cursors[endpoint.id] = endpoint.cursor
        lease_renewed_at = time.monotonic()
        # Successful deliveries not yet logged, and the cursor not yet moved past them: written
        # together, in one commit, every WEBHOOK_FLUSH_S at most (and before a failure is
        # counted, and at the end of the page). A crash in between sends them again.
        done: list[WebhookDelivery] = []
        flushed_at = time.monotonic()

        async def flush() -> bool:
            nonlocal endpoint, flushed_at
            flushed_at = time.monotonic()
            if not done:
                return True
            seq = done[-1].event_seq
            moved = await self._store.record_webhook_deliveries(
                endpoint.id, done, generation=endpoint.generation, seq=seq, delivered=True
            )
            done.clear()
            if moved:
                self.stats.cursors[endpoint.id] = seq
                endpoint = replace(endpoint, cursor=seq, failure_count=0)
            # Not moved: a replay (or another holder) changed the cursor: read again from it.
            return moved

        for event in events:
            if self._stopping.is_set():
                await flush()
                return 0.0
            if time.monotonic() - lease_renewed_at > self._options.lease_s / 3:
                # Renewed as the page goes, so a long page is not delivered past an expired lease.
                if not await self._lease(endpoint.id):
                    await flush()
                    return 0.0
                lease_renewed_at = time.monotonic()
            delivery = await self._attempt(endpoint, event)
            if delivery.error is None:
                done.append(delivery)
                # The run of failures ended (the next attempt of anything is a first).
                endpoint = replace(endpoint, failure_count=0)
                if time.monotonic() - flushed_at >= WEBHOOK_FLUSH_S and not await flush():
                    return 0.0
                continue
            if not await flush():
                return 0.0
            await self._store.append_webhook_delivery(delivery)
            after = await self._store.count_webhook_failure(
                endpoint.id,
                failures_max=self._options.failures_max,
                reason=f"{self._options.failures_max} consecutive failed deliveries",
            )
            self.stats.failures[endpoint.id] = self.stats.failures.get(endpoint.id, 0) + 1
            if self._on_failure is not None:
                self._on_failure(endpoint.id)
            if after is None or not after.enabled:
                return 0.0
            return backoff_s(
                after.failure_count,
                base_s=self._options.backoff_base_s,
                cap_s=self._options.backoff_cap_s,
                random=self._random,
            )
        if not await flush():
            return 0.0
        if len(events) >= self._options.batch_events_max:
            # A full page: more may be waiting, so the next page is read at once.
            return 0.0
        if end > endpoint.cursor:
            await self._store.advance_webhook_cursor(
                endpoint.id, generation=endpoint.generation, seq=end, delivered=False
            )
            self.stats.cursors[endpoint.id] = end
            return 0.0
        return self._options.poll_s

    async def _attempt(self, endpoint: WebhookEndpoint, event: AuditEvent) -> WebhookDelivery:
        """POST one event; what happened, for the delivery log (`error` None: a 2xx)."""
        body = payload(event)
        secrets_ = [endpoint.secret]
        now = datetime.now(UTC)
        if endpoint.previous_secret is not None and (
            endpoint.previous_secret_until is None or endpoint.previous_secret_until > now
        ):
            secrets_.append(endpoint.previous_secret)
        headers = signed_headers(
            secrets_, msg_id=event_id(event.seq), timestamp_s=int(time.time()), body=body
        )
        headers["content-type"] = "application/json"
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            await self._guard(endpoint.url)
            response = await self._http.post(endpoint.url, content=body, headers=headers)
            status = response.status_code
            if 300 <= status < 400:
                error = "redirect refused"
            elif not 200 <= status < 300:
                error = f"HTTP {status}"
        except UrlRefusedError as exc:
            error = f"refused: {exc}"
        except httpx.TimeoutException:
            error = "timeout"
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # InvalidURL and ValueError (UnicodeError among them): a URL httpx cannot send.
            error = f"{type(exc).__name__}: {exc}"
        latency_ms = int((time.monotonic() - started) * 1000)
        return WebhookDelivery(
            endpoint_id=endpoint.id,
            event_seq=event.seq,
            attempt=endpoint.failure_count + 1,
            status_code=status,
            latency_ms=latency_ms,
            error=error,
            attempted_at=now,
        )

    async def _guard(self, url: str) -> None:
        host = check_url(url, allowed_hosts=self._options.allowed_hosts)
        port = httpx.URL(url).port or (443 if url.startswith("https") else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise UrlRefusedError(f"host {host!r} does not resolve: {exc}") from exc
        check_addresses(
            host, [str(info[4][0]) for info in infos], allow_private=self._options.allow_private
        )


def options_from(settings: Settings) -> DeliveryOptions:
    """The deliverer's options from the service's settings (``TBLEDGER_WEBHOOK_*``)."""
    return DeliveryOptions(
        allowed_hosts=settings.webhook_hosts(),
        allow_private=settings.webhook_allow_private,
        timeout_s=settings.webhook_timeout_s,
        failures_max=settings.webhook_failures_max,
        backoff_base_s=settings.webhook_backoff_base_s,
        backoff_cap_s=settings.webhook_backoff_cap_s,
        lease_s=settings.webhook_lease_s,
        poll_s=settings.webhook_poll_s,
    )


async def run_deliverer(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Deliver on the store of `settings` until `stop` is set (``tbledger webhooks run``); the
    store must be at the latest migration (this process does not migrate it)."""
    store = await Store.connect(
        settings.database_url, require_head=True, options=settings.store_options()
    )
    deliverer = Deliverer(store, options_from(settings))
    try:
        deliverer.start()
        await (stop or asyncio.Event()).wait()
    finally:
        await deliverer.stop()
        await store.close()
