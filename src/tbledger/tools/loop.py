"""The event loop the load tools run on: uvloop when installed (as ``tbledger serve`` picks it),
else asyncio. A load generator's own CPU per request must stay far below the service's."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["event_loop", "run"]

T = TypeVar("T")


def event_loop() -> str:
    """``uvloop`` when installed, else ``asyncio``."""
    try:
        import uvloop  # noqa: F401, PLC0415
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(job: Coroutine[Any, Any, T]) -> T:
    """Run the coroutine `job` on `event_loop()`."""
    if event_loop() == "uvloop":
        import uvloop  # noqa: PLC0415

        return uvloop.run(job)
    return asyncio.run(job)
