"""An event loop on virtual time, for tests of code whose only waits are timers.

`run_in_virtual_time(coroutine)` runs a coroutine on a `VirtualTimeLoop`: a selector event loop
whose clock (`loop.time()`) stands still while callbacks run and, whenever the loop would sleep
until its next timer, jumps straight to it instead. ``asyncio.sleep(0.04)`` then takes 0.04 s of
loop time and no wall time, and however loaded the machine is, every timer fires exactly when it
is due: a test can assert on schedules and latencies to the nanosecond instead of within a
tolerance that a busy machine overruns. I/O still works (the selector is polled without
blocking first), but work done on other threads takes no loop time, so this suits code that
waits on timers and on other tasks, such as a load generator's scheduler, not on the network.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["VirtualTimeLoop", "run_in_virtual_time"]

_T = TypeVar("_T")


class _Clock:
    def __init__(self) -> None:
        self.now_s = 0.0


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that, rather than block until a timeout, moves the clock past it."""

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready: list[tuple[selectors.SelectorKey, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # No timer is due ever: only I/O or another thread can wake the loop.
            blocked: list[tuple[selectors.SelectorKey, int]] = super().select(None)
            return blocked
        self._clock.now_s += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose time moves only from one due timer to the next."""

    def __init__(self) -> None:
        self._virtual = _Clock()
        super().__init__(selector=_JumpingSelector(self._virtual))

    def time(self) -> float:
        return self._virtual.now_s


def run_in_virtual_time(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run `coroutine` to completion on a fresh `VirtualTimeLoop`; return its result."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coroutine)
