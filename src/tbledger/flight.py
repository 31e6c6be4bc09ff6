"""Single flight: concurrent calls for the same key share one run of the work.

The first caller for a key runs the work; callers arriving while it runs wait for its result
(or its exception) instead of running it again. Once it ends, the next call runs it anew.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """One run of the work per key at a time; waiters share its outcome."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        running = self._running.get(key)
        if running is not None:
            # Shielded: a waiter that gives up does not cancel the run the others wait for.
            return await asyncio.shield(running)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await work()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # observed here; waiters re-raise it
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._running[key]
