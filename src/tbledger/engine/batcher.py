"""Coalesce concurrent engine calls into full requests, and hand each caller its own results.

TigerBeetle's throughput is set by how full each request is, so concurrent callers that each
submit a few events are merged: while one request is in flight, new calls queue; when it returns,
every queued call (up to the batch limit) goes out as the next request. A lone caller is sent at
once: there is no timer and no added latency at low load ("natural batching").

Merging must not change what any caller's events mean, so:

* a caller's events stay contiguous and in order, and are never split across requests;
* a call whose last event is ``linked`` goes alone: its open chain would otherwise link into the
  next caller's events (alone, it gets ``linked_event_chain_open`` as it would have);
* a call with any ``imported`` event goes alone: a request's first event decides whether the whole
  request is imported.

With those rules, a merged request is equivalent to the callers' requests run back to back, which
is what the engine would have done with them anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import tigerbeetle as tb

from tbledger.engine.port import EngineClient
from tbledger.limits import BATCH_EVENTS_MAX

__all__ = ["Batcher", "BatcherStats"]

_E = TypeVar("_E", tb.Account, tb.Transfer)
_R = TypeVar("_R", tb.CreateAccountResult, tb.CreateTransferResult)

_T_LINKED = int(tb.TransferFlags.LINKED)
_T_IMPORTED = int(tb.TransferFlags.IMPORTED)
_A_LINKED = int(tb.AccountFlags.LINKED)
_A_IMPORTED = int(tb.AccountFlags.IMPORTED)


@dataclass
class BatcherStats:
    """Counters of what the batcher sent: requests, events, and calls merged into them."""

    requests: int = 0
    events: int = 0
    calls: int = 0
    largest_request: int = 0

    @property
    def events_per_request(self) -> float:
        return self.events / self.requests if self.requests else 0.0


@dataclass
class _Call(Generic[_E, _R]):
    events: Sequence[_E]
    future: asyncio.Future[list[_R]]


@dataclass
class _Lane(Generic[_E, _R]):
    """One operation's queue and its single in-flight request."""

    name: str
    send: Callable[[list[_E]], Any]
    linked: int
    imported: int
    queue: list[_Call[_E, _R]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


def _observe(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class Batcher:
    """Merges concurrent ``create_accounts``/``create_transfers`` calls on one engine client.

    ``on_request(events)`` is called with the size of every request sent (for metrics).
    """

    def __init__(
        self,
        client: EngineClient,
        *,
        batch_events_max: int = BATCH_EVENTS_MAX,
        on_request: Callable[[int], None] | None = None,
    ) -> None:
        self._client = client
        self._max = batch_events_max
        self._on_request = on_request
        self.stats = BatcherStats()
        # Told of every request that returned: (operation, events, seconds). For metrics.
        self.observer: Callable[[str, int, float], None] | None = None
        self._transfers: _Lane[tb.Transfer, tb.CreateTransferResult] = _Lane(
            "create_transfers", client.create_transfers, _T_LINKED, _T_IMPORTED
        )
        self._accounts: _Lane[tb.Account, tb.CreateAccountResult] = _Lane(
            "create_accounts", client.create_accounts, _A_LINKED, _A_IMPORTED
        )

    async def create_transfers(
        self, transfers: Sequence[tb.Transfer]
    ) -> list[tb.CreateTransferResult]:
        return await self._submit(self._transfers, transfers)

    async def create_accounts(self, accounts: Sequence[tb.Account]) -> list[tb.CreateAccountResult]:
        return await self._submit(self._accounts, accounts)

    async def _submit(self, lane: _Lane[_E, _R], events: Sequence[_E]) -> list[_R]:
        if len(events) > self._max:
            raise tb.TooMuchDataError()
        if not events:
            return []
        future: asyncio.Future[list[_R]] = asyncio.get_running_loop().create_future()
        # A caller that stopped waiting never reads its future; mark its outcome as observed.
        future.add_done_callback(_observe)
        lane.queue.append(_Call(events, future))
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._drain(lane))
        # The request runs to completion even if this caller stops waiting (a deadline): the
        # engine cannot take a request back, and other callers share it.
        return await asyncio.shield(future)

    def _alone(self, lane: _Lane[_E, _R], call: _Call[_E, _R]) -> bool:
        events = call.events
        if int(events[-1].flags) & lane.linked:
            return True
        imported = lane.imported
        return any(int(e.flags) & imported for e in events)

    def _take(self, lane: _Lane[_E, _R]) -> list[_Call[_E, _R]]:
        """The calls for the next request: a prefix of the queue that fits and may be merged."""
        queue = lane.queue
        first = queue[0]
        if self._alone(lane, first):
            del queue[0]
            return [first]
        taken = [first]
        size = len(first.events)
        i = 1
        while i < len(queue):
            call = queue[i]
            if size + len(call.events) > self._max or self._alone(lane, call):
                break
            taken.append(call)
            size += len(call.events)
            i += 1
        del queue[:i]
        return taken

    async def _drain(self, lane: _Lane[_E, _R]) -> None:
        while lane.queue:
            calls = self._take(lane)
            events: list[_E] = []
            for call in calls:
                events.extend(call.events)
            self.stats.requests += 1
            self.stats.events += len(events)
            self.stats.calls += len(calls)
            self.stats.largest_request = max(self.stats.largest_request, len(events))
            if self._on_request is not None:
                self._on_request(len(events))
            started = time.perf_counter()
            try:
                results: list[_R] = await lane.send(events)
            except Exception as exc:  # handed to every caller of the request
                for call in calls:
                    if not call.future.done():
                        call.future.set_exception(exc)
                continue
            if self.observer is not None:
                self.observer(lane.name, len(events), time.perf_counter() - started)
            offset = 0
            for call in calls:
                n = len(call.events)
                if not call.future.done():
                    call.future.set_result(results[offset : offset + n])
                offset += n
