"""The recorder: what the engine did, appended to the audit trail (DESIGN §3, steps 4 and 5).

The last step of every write, and of every recovery: engine results become outcome events (with
the engine's timestamp, and the amount actually moved where the request named only a bound or a
sentinel), a resolved or expired hold gets its event too, account status changes made effective
by control transfers are recorded (`AccountStatuses`), and listeners hear of it all. A call that
may race another recorder of the same transfers (a late answer, recovery, a replay) records only
what has no outcome yet. When the store cannot take the outcomes the engine has already applied,
the write still reports success and recovery records them later: it finds the intents without
outcome and reads the engine first.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import tigerbeetle as tb

from tbledger.errors import OutcomeUnknownError
from tbledger.events import EventBus, LedgerEvent, LedgerEventName
from tbledger.ids import format_id
from tbledger.model import RESOLVED_KINDS, AuditEvent, EventKind, NewAuditEvent, TransferIntent
from tbledger.service._accounts import AccountStatuses
from tbledger.service._gateway import EngineGateway
from tbledger.service._intents import AMOUNT_MAX, PURPOSE
from tbledger.service._outcomes import outcome_kind, status_name
from tbledger.service._values import TransferResult
from tbledger.store import Store

__all__ = ["Recorder", "own_outcome"]

log = logging.getLogger("tbledger.service")

_F = tb.TransferFlags
# Flag values as plain ints: IntFlag arithmetic costs microseconds per operation, and the write
# path does it for every transfer.
_POST = int(_F.POST_PENDING_TRANSFER)
_VOID = int(_F.VOID_PENDING_TRANSFER)
_BALANCING_DEBIT = int(_F.BALANCING_DEBIT)
_BALANCING_CREDIT = int(_F.BALANCING_CREDIT)
# Transfers whose `amount` names a bound or a sentinel rather than what moved.
_INEXACT = _POST | _VOID | _BALANCING_DEBIT | _BALANCING_CREDIT
_RESOLUTION = _POST | _VOID
# The detail of most outcome events: shared, and read-only so that sharing it is safe.
_NO_DETAIL: Mapping[str, Any] = MappingProxyType({})
_NO_OUTCOME = frozenset({EventKind.SUBMITTED, EventKind.OUTCOME_UNKNOWN})


class Recorder:
    """Appends outcome events for engine results, applies status changes, emits events."""

    def __init__(
        self,
        *,
        store: Store,
        gateway: EngineGateway,
        bus: EventBus,
        statuses: AccountStatuses,
        stats: dict[str, int],
    ) -> None:
        self._store = store
        self._gateway = gateway
        self._bus = bus
        self._statuses = statuses
        # The service's counters (`LedgerService.stats`), shared: metrics and tests read them.
        self._stats = stats

    async def record(
        self,
        intents: Sequence[TransferIntent],
        engine_results: Sequence[tb.CreateTransferResult],
        *,
        only_unresolved: bool = False,
    ) -> list[TransferResult]:
        """Record the engine's results for these intents; their results, in order."""
        self._gateway.observe_timestamps(engine_results)
        results = [
            TransferResult(i.id, status_name(r.status), r.timestamp)
            for i, r in zip(intents, engine_results, strict=True)
        ]
        await self.record_results(intents, results, only_unresolved=only_unresolved)
        return results

    async def record_results(
        self,
        intents: Sequence[TransferIntent],
        results: Sequence[TransferResult],
        *,
        only_unresolved: bool = False,
    ) -> None:
        """Append outcome events for these results (only for transfers without one yet, with
        `only_unresolved`), apply status changes, emit events."""
        if only_unresolved:
            intents, results = await self._unresolved(intents, results)
            if not intents:
                return
        amounts = await self._resolved_amounts(intents, results)
        listening = self._bus.listening
        events: list[NewAuditEvent] = []
        ledger_events: list[LedgerEvent] = []
        resolved_pending: dict[int, tuple[EventKind, TransferIntent, TransferResult]] = {}
        expired_pending: dict[int, TransferResult] = {}
        for intent, result in zip(intents, results, strict=True):
            kind, name = outcome_kind(intent, result)
            if amounts and intent.id in amounts:
                moved = amounts[intent.id]
                # Where the request named a bound or a sentinel (a balancing transfer, a full
                # post), the audit trail keeps the amount the engine actually moved.
                detail: Mapping[str, Any] = (
                    _NO_DETAIL if moved == intent.amount else {"amount": str(moved)}
                )
            else:
                moved = intent.amount
                detail = _NO_DETAIL
            events.append(
                NewAuditEvent(
                    kind=kind,
                    transfer_id=intent.id,
                    status=result.status,
                    engine_timestamp=result.timestamp,
                    detail=detail,
                )
            )
            if listening:
                ledger_events.append(
                    LedgerEvent(name, intent.id, {"status": result.status, "amount": moved})
                )
            if intent.flags & _RESOLUTION and result.ok:
                resolved_pending[intent.pending_id] = (kind, intent, result)
            elif result.status == "pending_transfer_expired":
                expired_pending[intent.pending_id] = result
        known: dict[int, AuditEvent] = {}
        if resolved_pending or expired_pending:
            known = await self._store.current_status(list(resolved_pending) + list(expired_pending))
            for pending_id, (kind, intent, result) in resolved_pending.items():
                latest = known.get(pending_id)
                if latest is not None and latest.kind not in RESOLVED_KINDS:
                    moved = amounts.get(intent.id, intent.amount)
                    events.append(
                        NewAuditEvent(
                            kind=kind,
                            transfer_id=pending_id,
                            status=result.status,
                            engine_timestamp=result.timestamp,
                            detail={"by": format_id(intent.id), "amount": str(moved)},
                        )
                    )
        # A refused resolution that says the hold expired: recorded as the hold's expiry, through
        # the one path that records an expiry at most once (a read of the hold or a recovery
        # pass may be recording the same one).
        expiries = [
            NewAuditEvent(
                kind=EventKind.EXPIRED,
                transfer_id=pending_id,
                status="expired",
                engine_timestamp=result.timestamp,
                detail={"reported_by": format_id(result.id)},
            )
            for pending_id, result in expired_pending.items()
            if (latest := known.get(pending_id)) is not None and latest.kind not in RESOLVED_KINDS
        ]
        try:
            await self._store.append_events(events, returning=False)
        except Exception:
            # The engine has applied the transfers: report success, and let recovery write the
            # outcomes (it finds these intents without outcome and reads the engine first).
            self._stats["audit_write_failures"] += 1
            log.exception("could not record outcomes; recovery will")
            return
        if any(PURPOSE in i.control for i in intents if i.control):
            ok = [i for i, r in zip(intents, results, strict=True) if r.ok]
            if any(PURPOSE in i.control for i in ok):
                await self._statuses.apply(ok)
        if ledger_events:
            self._bus.emit(ledger_events)
        if expiries:
            try:
                await self.record_expiries(expiries)
            except Exception:
                # The engine expired the hold whatever the store says: the next read of the hold,
                # or the next recovery pass, records it.
                self._stats["audit_write_failures"] += 1
                log.exception("could not record an expired hold; a read or recovery will")

    async def record_expiries(self, expiries: Sequence[NewAuditEvent]) -> list[AuditEvent]:
        """Append ``expired`` for holds the engine has expired, each unless its hold already has
        a resolution (`Store.append_hold_resolutions`), and tell listeners of those appended.

        The one way an expiry is recorded: by a recovery pass, by a read that finds a hold past
        its timeout, or by a post or void refused as ``pending_transfer_expired``; whichever
        comes first records it, and the others find it recorded.
        """
        appended = await self._store.append_hold_resolutions(expiries)
        if appended:
            self._bus.emit(
                [
                    LedgerEvent(LedgerEventName.TRANSFER_EXPIRED, e.transfer_id)
                    for e in appended
                    if e.transfer_id is not None
                ]
            )
        return appended

    async def record_not_submitted(self, intents: list[TransferIntent]) -> None:
        """Record that the open circuit refused these before the engine saw them."""
        await self._store.append_events(
            [
                NewAuditEvent(
                    kind=EventKind.FAILED,
                    transfer_id=i.id,
                    status="circuit_open",
                    detail={"submitted": False},
                )
                for i in intents
            ]
        )

    async def record_unknown(self, intents: list[TransferIntent], exc: BaseException) -> None:
        """Record that these were submitted and their outcome is unknown (recovery settles
        them); name them in `exc` when it is an `OutcomeUnknownError` naming none."""
        self._stats["outcome_unknown"] += len(intents)
        events = [
            NewAuditEvent(
                kind=EventKind.OUTCOME_UNKNOWN,
                transfer_id=i.id,
                detail={"error": type(exc).__name__},
            )
            for i in intents
        ]
        try:
            await self._store.append_events(events, returning=False)
        except Exception:
            self._stats["audit_write_failures"] += 1
            log.exception("could not record unknown outcomes; recovery will resolve them")
        if isinstance(exc, OutcomeUnknownError) and not exc.transfer_ids:
            exc.transfer_ids = [i.id for i in intents]

    async def _unresolved(
        self, intents: Sequence[TransferIntent], results: Sequence[TransferResult]
    ) -> tuple[list[TransferIntent], list[TransferResult]]:
        """The pairs whose transfer has no outcome recorded yet."""
        latest = await self._store.current_status([i.id for i in intents])
        keep = [
            (i, r)
            for i, r in zip(intents, results, strict=True)
            if (event := latest.get(i.id)) is None or _says_nothing(event)
        ]
        return [i for i, _ in keep], [r for _, r in keep]

    async def _resolved_amounts(
        self, intents: Sequence[TransferIntent], results: Sequence[TransferResult]
    ) -> dict[int, int]:
        """Amounts the engine actually moved, where the request did not say it exactly.

        A full post (AMOUNT_MAX), a void (0) and a balancing transfer (an upper bound) name a
        sentinel or a bound; the engine's record of the transfer holds the amount. Only those
        transfers are in the answer: every other one moved its `amount`.
        """
        ids = [
            i.id
            for i, r in zip(intents, results, strict=True)
            if i.flags & _INEXACT
            and r.ok
            and (i.flags & _INEXACT != _POST or i.amount == AMOUNT_MAX)
        ]
        amounts: dict[int, int] = {}
        if ids:
            wanted = set(ids)
            amounts = {i.id: i.amount for i in intents if i.id in wanted}
            with contextlib.suppress(Exception):
                for t in await self._gateway.lookup_transfers(ids):
                    amounts[t.id] = t.amount
        return amounts


def _says_nothing(event: AuditEvent) -> bool:
    """True for an event that says nothing of what the engine did with the transfer: submitted,
    outcome unknown, or refused by the open circuit before the engine saw it (recovery leaves
    that one alone, as the caller was told; a retry with the same id or key submits it)."""
    return event.kind in _NO_OUTCOME or event.detail.get("submitted") is False


def own_outcome(events: Sequence[AuditEvent]) -> AuditEvent | None:
    """The event that recorded the outcome of creating the transfer itself."""
    for event in events:
        if _says_nothing(event) or event.kind is EventKind.EXPIRED:
            continue
        if "by" in event.detail:
            continue  # a hold's resolution, recorded on the hold
        return event
    return None
