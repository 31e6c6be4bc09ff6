"""In-process events for listeners of the ledger service.

Listeners (plain functions or coroutines) subscribe to an event name with ``on``. They run after
the write they describe is durable in the engine and in the audit trail; a listener that raises
is logged and never breaks the write or the other listeners. Listeners are best-effort (a process
can die before they run): consumers that must not miss anything read the durable tail of the audit
log instead (``LedgerService.events(since=cursor)``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["EventBus", "LedgerEvent", "LedgerEventName", "Listener"]

log = logging.getLogger("tbledger.events")


class LedgerEventName(StrEnum):
    ACCOUNT_CREATED = "account_created"
    ACCOUNT_STATUS_CHANGED = "account_status_changed"
    TRANSFER_PENDING = "transfer_pending"
    TRANSFER_POSTED = "transfer_posted"
    TRANSFER_VOIDED = "transfer_voided"
    TRANSFER_EXPIRED = "transfer_expired"
    TRANSFER_FAILED = "transfer_failed"


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """What happened (`name`), to what (`subject_id`: a transfer or account id), with details."""

    name: LedgerEventName
    subject_id: int
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[LedgerEvent], Awaitable[None] | None]


class EventBus:
    """Delivers events to listeners; a failing listener is logged, never propagated."""

    def __init__(self) -> None:
        self._listeners: dict[LedgerEventName, list[Listener]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def on(self, name: str, listener: Listener) -> Callable[[], None]:
        """Subscribe `listener` to `name`; returns a function that unsubscribes it."""
        event_name = LedgerEventName(name)
        listeners = self._listeners.setdefault(event_name, [])
        listeners.append(listener)

        def off() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return off

    @property
    def listening(self) -> bool:
        """True if any listener is subscribed (a writer skips building events otherwise)."""
        return any(self._listeners.values())

    def emit(self, events: list[LedgerEvent]) -> None:
        """Deliver events: sync listeners now, async ones as tasks (awaited by `drain`)."""
        for event in events:
            for listener in tuple(self._listeners.get(event.name, ())):
                try:
                    outcome = listener(event)
                except Exception:
                    log.exception("listener %r failed on %s", listener, event.name.value)
                    continue
                if inspect.isawaitable(outcome):
                    task = asyncio.ensure_future(self._guard(outcome, listener, event))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _guard(
        self, outcome: Awaitable[None], listener: Listener, event: LedgerEvent
    ) -> None:
        try:
            await outcome
        except Exception:
            log.exception("listener %r failed on %s", listener, event.name.value)

    async def drain(self) -> None:
        """Wait for async listeners still running (on close, and in tests)."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)
