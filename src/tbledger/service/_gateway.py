"""The engine gateway: the one way the service reaches TigerBeetle.

Every engine request of the service goes through `EngineGateway.call`: the circuit breaker first
(an open circuit refuses at once), then the request with retries of client faults (a client
evicted by the cluster is replaced and the same ids tried again), all within one deadline. The
deadline is kept with ``asyncio.wait`` (`resilience.within_deadline`), never ``wait_for``: a
request the engine may already be applying is left running, and its late answer handed to the
caller's `on_late_result`. The gateway owns the engine client (when the service built it) and the
batcher that coalesces concurrent requests, and it remembers the latest engine timestamp it has
seen, so the engine's clock is never this machine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import tigerbeetle as tb

from tbledger.config import Settings
from tbledger.engine import EngineClient, connect
from tbledger.engine.batcher import Batcher
from tbledger.errors import NotConnectedError, OutcomeUnknownError
from tbledger.resilience import CircuitBreaker, RetryPolicy, retry, within_deadline
from tbledger.service._values import EngineObserver

__all__ = ["EngineGateway"]

log = logging.getLogger("tbledger.service")

_T = TypeVar("_T")


class EngineGateway:
    """Engine calls with a deadline, retries and a circuit breaker, over one engine client.

    Built with the service (its breaker and observer exist before it connects); `open()` connects
    the client when none was given and starts the batcher; `close()` closes a client it built.
    """

    def __init__(self, settings: Settings, engine: EngineClient | None) -> None:
        self._settings = settings
        self._client = engine
        self._owns_client = engine is None
        self._batcher: Batcher | None = None
        # Told of every engine request (operation, events, seconds): metrics read the batcher's
        # coalescing through it. Kept here so a replaced engine client keeps its observer.
        self._observer: EngineObserver | None = None
        self._open = False
        self._now_ns = 0
        self.timeout_s = settings.request_timeout_ms / 1000
        self._retry = RetryPolicy(
            attempts_max=settings.retry_attempts_max,
            delay_initial_s=settings.retry_delay_ms / 1000,
            delay_max_s=settings.retry_delay_max_ms / 1000,
        )
        self.breaker = CircuitBreaker(
            failure_threshold=settings.breaker_failure_threshold,
            reset_timeout_s=settings.breaker_reset_timeout_s,
            probe=self._probe,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect the engine client unless one was given, and start a batcher over it."""
        if self._client is None:
            self._client = await connect(self._settings.engine_config().url)
        self._batcher = Batcher(self._client)
        self._batcher.observer = self._observer
        self._open = True

    async def close(self) -> None:
        """Refuse further calls; close the engine client if the gateway built it."""
        self._open = False
        if self._owns_client and self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None

    @property
    def client(self) -> EngineClient:
        if self._client is None or not self._open:
            raise NotConnectedError("the ledger service is not connected", code="not_connected")
        return self._client

    @property
    def batcher(self) -> Batcher:
        if self._batcher is None or not self._open:
            raise NotConnectedError("the ledger service is not connected", code="not_connected")
        return self._batcher

    def observe(self, observer: EngineObserver | None) -> None:
        """Tell `observer` of every engine request from now on (None stops it)."""
        self._observer = observer
        if self._batcher is not None:
            self._batcher.observer = observer

    # -- calls ----------------------------------------------------------------------------------

    async def call(
        self,
        make: Callable[[], Awaitable[_T]],
        *,
        on_late_result: Callable[[asyncio.Future[_T]], None] | None = None,
    ) -> _T:
        """One engine call through the breaker, with retries of client faults, in a deadline.

        The deadline covers the whole call; when it passes, the request keeps running (it cannot
        be taken back) and `on_late_result` receives it when it completes.
        """
        await self.breaker.before_call()

        async def attempt() -> _T:
            try:
                return await make()
            except tb.ClientEvictedError:
                await self._replace_client()
                raise

        try:
            result = await within_deadline(
                retry(attempt, self._retry, retryable=_retryable_fault),
                self.timeout_s,
                on_late_result=on_late_result,
            )
        except (OutcomeUnknownError, tb.ClientEvictedError, tb.ClientClosedError):
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return result

    async def create_accounts(self, accounts: list[tb.Account]) -> list[tb.CreateAccountResult]:
        return await self.call(lambda: self.batcher.create_accounts(accounts))

    async def create_transfers(
        self,
        transfers: list[tb.Transfer],
        *,
        on_late_result: Callable[[asyncio.Future[list[tb.CreateTransferResult]]], None]
        | None = None,
    ) -> list[tb.CreateTransferResult]:
        return await self.call(
            lambda: self.batcher.create_transfers(transfers), on_late_result=on_late_result
        )

    async def lookup_accounts(self, ids: list[int]) -> list[tb.Account]:
        return await self.call(lambda: self.client.lookup_accounts(ids))

    async def lookup_transfers(self, ids: list[int]) -> list[tb.Transfer]:
        return await self.call(lambda: self.client.lookup_transfers(ids))

    async def get_account_transfers(self, account_filter: tb.AccountFilter) -> list[tb.Transfer]:
        return await self.call(lambda: self.client.get_account_transfers(account_filter))

    async def ping_ms(self) -> float:
        """The engine's latency for an empty lookup, in milliseconds, outside the breaker (a
        health check must see the engine even while the circuit is open)."""
        started = time.perf_counter()
        await within_deadline(self.client.lookup_accounts([]), self.timeout_s)
        return (time.perf_counter() - started) * 1000

    # -- the engine's clock ---------------------------------------------------------------------

    async def now_ns(self) -> int:
        """The engine's current time: the slot timestamp of a request that changes nothing.

        An account with id 0 is always refused (``id_must_not_be_zero``), and a refused event's
        result carries its slot: the engine's clock, never this machine's.
        """
        (result,) = await self.call(lambda: self.client.create_accounts([tb.Account(id=0)]))
        self._now_ns = max(self._now_ns, result.timestamp)
        return self._now_ns

    @property
    def seen_ns(self) -> int:
        """The latest engine timestamp this gateway has seen (0 before any): a time the engine's
        clock has certainly reached, known without a request."""
        return self._now_ns

    def observe_timestamps(self, results: Iterable[tb.CreateTransferResult]) -> None:
        """Remember the latest engine timestamp among these results."""
        for result in results:
            self._now_ns = max(self._now_ns, result.timestamp)

    # -- inside ---------------------------------------------------------------------------------

    async def _probe(self) -> None:
        await within_deadline(self.client.lookup_accounts([]), self.timeout_s)

    async def _replace_client(self) -> None:
        """After eviction the client is dead: build a new one for the same engine."""
        if not self._owns_client:
            return
        log.warning("engine client evicted; connecting a new one")
        self._client = await connect(self._settings.engine_config().url)
        self._batcher = Batcher(self._client)
        self._batcher.observer = self._observer


def _retryable_fault(exc: BaseException) -> bool:
    """Client faults worth another attempt with the same ids (a new client after eviction)."""
    return isinstance(exc, tb.ClientEvictedError)
