"""Recovery and hold expiry: settling what a crash, a deadline or an outage left without outcome.

A write that was persisted but whose outcome was never recorded is settled by reading the engine
first: a transfer the engine has happened, and its outcome is recorded; the rest are resubmitted
with the same ids and fields, whole linked chains at a time and in chain order, and whatever the
engine answers is recorded (DESIGN §3). Nothing is lost and nothing happens twice, because the
engine refuses a second transfer with an id it already holds. `recover()` does this for the whole
backlog (leaving alone the transfers this process is still submitting, which its `Claims` name),
and the write pipeline does it for one replayed call whose original has no outcome. Each pass
then settles the holds past their timeout by the engine's clock (`Holds.expire_holds`, the code
every read of a hold's status goes through too). `start()` runs both every `recovery_interval_s`
in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import tigerbeetle as tb

from tbledger.config import Settings
from tbledger.limits import BATCH_EVENTS_MAX, STORE_PAGE_ROWS_MAX
from tbledger.model import TransferIntent
from tbledger.service._claims import Claims
from tbledger.service._gateway import EngineGateway
from tbledger.service._holds import Holds
from tbledger.service._intents import whole_chains
from tbledger.service._recorder import Recorder
from tbledger.service._values import RecoveryReport, TransferResult
from tbledger.store import Store

__all__ = ["Recovery"]

log = logging.getLogger("tbledger.service")


class Recovery:
    """Settles intents without outcome, then holds past their timeout; on demand or in a loop."""

    def __init__(
        self,
        *,
        store: Store,
        gateway: EngineGateway,
        settings: Settings,
        recorder: Recorder,
        claims: Claims,
        holds: Holds,
    ) -> None:
        self._store = store
        self._gateway = gateway
        self._settings = settings
        self._recorder = recorder
        self._claims = claims
        self._holds = holds
        self._loop_task: asyncio.Task[None] | None = None

    async def recover(self, *, grace_s: float | None = None) -> RecoveryReport:
        """Resolve every intent without outcome, then record holds the engine has expired (see
        `LedgerService.recover`)."""
        report = RecoveryReport()
        grace = self._settings.recovery_grace_s if grace_s is None else grace_s
        created_before = datetime.now(UTC) - timedelta(seconds=grace)
        after: int | None = None
        while True:
            page = await self._store.intents_without_outcome(
                STORE_PAGE_ROWS_MAX, after_id=after, created_before=created_before
            )
            if not page:
                break
            after = page[-1].id
            page = [i for i in page if i.id not in self._claims]
            report.examined += len(page)
            results = await self.resolve(page, report)
            report.failed += sum(1 for r in results if not r.ok)
        report.expired = await self._holds.expire_holds()
        return report

    async def resolve(
        self, intents: list[TransferIntent], report: RecoveryReport | None = None
    ) -> list[TransferResult]:
        """Settle intents of unknown outcome: read the engine first, resubmit the rest."""
        if not intents:
            return []
        # Whole chains: bring every member of each chain in.
        by_id = {i.id: i for i in intents}
        for chain_id in {i.chain_id for i in intents if i.chain_id is not None}:
            for member in await self._store.intents_in_chain(chain_id):
                by_id.setdefault(member.id, member)
        ids = list(by_id)
        found: dict[int, tb.Transfer] = {}
        for start in range(0, len(ids), BATCH_EVENTS_MAX):
            for t in await self._gateway.lookup_transfers(ids[start : start + BATCH_EVENTS_MAX]):
                found[t.id] = t
        happened = [by_id[i] for i in ids if i in found]
        missing = [by_id[i] for i in ids if i not in found]
        results: dict[int, TransferResult] = {}
        if happened:
            done = [TransferResult(i.id, "exists", found[i.id].timestamp) for i in happened]
            # Members of a chain may have outcomes already; record only what is missing.
            await self._recorder.record_results(happened, done, only_unresolved=True)
            results.update((r.id, r) for r in done)
        if report is not None:
            report.found_in_engine += len(happened)
            report.resubmitted += len(missing)
        # Resubmit, keeping chains together and in order.
        missing.sort(key=lambda i: (i.chain_id or i.id, i.chain_index or 0))
        position = 0
        while position < len(missing):
            group = whole_chains(missing[position:], BATCH_EVENTS_MAX)
            position += len(group)
            engine_results = await self._gateway.create_transfers([i.to_transfer() for i in group])
            for r in await self._recorder.record(group, engine_results, only_unresolved=True):
                results[r.id] = r
        return [results[i.id] for i in intents if i.id in results]

    # -- in the background ----------------------------------------------------------------------

    def start(self) -> None:
        """Run `recover()` (with hold expiry) every `recovery_interval_s` until `stop()`."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop the background loop, if it runs, and wait for it to end."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.recovery_interval_s)
            try:
                await self.recover()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recovery pass failed; trying again next interval")
