"""The change stream as one part of a process: the consumer and, when asked, the job feeding it.

`tbledger serve` (with ``TBLEDGER_CDC_URL``) and `tbledger cdc run` run the same `ChangeStream`:
the consumer, and with ``cdc_supervise`` `tigerbeetle amqp` too, started once the consumer's
queue is bound to the exchange, so that nothing the job publishes is unroutable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from tbledger.cdc._consumer import ChangeConsumer, consumer_options_from
from tbledger.cdc._supervisor import AmqpJob, job_options_from
from tbledger.config import Settings
from tbledger.limits import CDC_BIND_WAIT_S

if TYPE_CHECKING:
    from tbledger.service import ChangeReport, LedgerService

__all__ = ["ChangeStream"]

_log = logging.getLogger(__name__)


class ChangeStream:
    """The consumer of the change stream into `service`, and the job when supervised."""

    def __init__(
        self,
        service: LedgerService,
        settings: Settings,
        *,
        on_report: Callable[[ChangeReport, float], None] | None = None,
        on_rejected: Callable[[str], None] | None = None,
    ) -> None:
        # Options first: a bad setting is refused before anything starts.
        self.consumer = ChangeConsumer(
            service,
            consumer_options_from(settings),
            on_report=on_report,
            on_rejected=on_rejected,
        )
        self.job = AmqpJob(job_options_from(settings)) if settings.cdc_supervise else None
        self._starter: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.consumer.start()
        if self.job is not None:
            self._starter = asyncio.create_task(self._start_job(self.job))

    async def _start_job(self, job: AmqpJob) -> None:
        try:
            await self.consumer.wait_connected(CDC_BIND_WAIT_S)
        except TimeoutError:
            _log.warning("the change stream's queue is not bound yet; starting the job anyway")
        job.start()

    async def stop(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
        if self.job is not None:
            await self.job.stop()
        await self.consumer.stop()
