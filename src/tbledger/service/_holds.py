"""Hold status at read time: a hold past its timeout reads expired, as the engine decided it.

TigerBeetle expires a pending transfer when its clock passes the hold's timestamp plus its
timeout: from that instant it refuses any post or void of the hold (``pending_transfer_expired``),
though it releases the reservation lazily. The store learns of the expiry only when something
records it, so every read that reports a transfer's status asks `Holds` first. A hold whose
latest event is still ``pending``, that has a timeout, and whose expiry instant the engine's
clock has passed is settled from the engine there and then: if the engine holds one of its posts
or voids (applied before the instant, its outcome not recorded yet: a deadline, a crash), that
resolution is recorded; otherwise the hold expired, and ``expired`` is recorded with the expiry
instant as its engine timestamp. The order makes this exact. The engine's clock is read first;
a resolution applied before the instant was persisted before it was submitted, so before that
read, and the store's list of the hold's posts and voids, read next, names it; one applied
later can only have been refused. The recovery pass (`expire_holds`) settles every open hold
through the same code, and the recorder appends each expiry at most once, however many reads
and passes find it at the same time.

Reads stay cheap: the engine is asked nothing unless a transfer read is a hold still ``pending``
with a timeout, and its clock only when the latest engine timestamp the gateway has seen does not
already show the instant passed. For a posted hold, `statuses` also tells what its post captured
and what it released, from the engine's records of the hold and of the post.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import tigerbeetle as tb

from tbledger.errors import InvalidIdError
from tbledger.ids import parse_id
from tbledger.limits import BATCH_EVENTS_MAX, STORE_PAGE_ROWS_MAX
from tbledger.model import AuditEvent, EventKind, NewAuditEvent, TransferIntent
from tbledger.service._gateway import EngineGateway
from tbledger.service._recorder import Recorder
from tbledger.service._values import TransferResult, TransferStatus
from tbledger.store import Store

__all__ = ["Holds"]

_SECOND_NS = 1_000_000_000
_PENDING = int(tb.TransferFlags.PENDING)


class Holds:
    """Settles holds past their timeout from the engine, on a read or in a recovery pass."""

    def __init__(self, *, store: Store, gateway: EngineGateway, recorder: Recorder) -> None:
        self._store = store
        self._gateway = gateway
        self._recorder = recorder

    async def expire_holds(self) -> int:
        """Settle every open hold past its timeout by the engine's clock; the number recorded
        ``expired`` (a hold the engine holds a post or void of is recorded resolved instead)."""
        now_ns = await self._gateway.now_ns()
        expired = 0
        after: int | None = None
        while True:
            holds = await self._store.open_holds(STORE_PAGE_ROWS_MAX, after_id=after)
            if not holds:
                return expired
            after = holds[-1][0].id
            due = [
                (intent, created_ns)
                for intent, created_ns in holds
                if created_ns is not None and _expires_at(intent, created_ns) <= now_ns
            ]
            expired += await self._settle(due, now_ns)

    async def record_expired(
        self, holds: Sequence[tuple[TransferIntent, int]], *, now_ns: int
    ) -> int:
        """Settle `holds` (each with its engine timestamp) that the engine has released by
        `now_ns` (an engine time: the change stream's expiry event); the number recorded
        ``expired``. Through the same code as every other path, so each is resolved once."""
        due = [(i, created_ns) for i, created_ns in holds if _expires_at(i, created_ns) <= now_ns]
        return await self._settle(due, now_ns)

    async def current_status(
        self, transfer_ids: Iterable[int], *, intents: Mapping[int, TransferIntent] | None = None
    ) -> dict[int, AuditEvent]:
        """Each transfer's latest audit event, a hold past its timeout settled first; transfers
        without events are left out. `intents` may hold some of the transfers' intents already
        read (they spare a store read when a hold is pending)."""
        latest = await self._store.current_status(transfer_ids)
        return await self._settled(latest, intents)

    async def statuses(
        self, transfer_ids: Iterable[int], *, intents: Mapping[int, TransferIntent] | None = None
    ) -> dict[int, TransferStatus]:
        """Each transfer's `TransferStatus`: its latest event as `current_status` reads it, and
        for a posted hold what its post captured and what it released."""
        latest = await self.current_status(transfer_ids, intents=intents)
        captures = await self._captures(latest)
        return {
            t: TransferStatus(t, event, *captures.get(t, (None, None)))
            for t, event in latest.items()
        }

    async def audit(self, transfer_id: int) -> list[AuditEvent]:
        """The transfer's audit history, oldest first, a hold past its timeout settled first."""
        events = await self._store.transfer_audit(transfer_id)
        if not events or events[-1].kind is not EventKind.PENDING:
            return events
        settled = await self._settled({transfer_id: events[-1]}, None)
        if settled.get(transfer_id) is events[-1]:
            return events
        return await self._store.transfer_audit(transfer_id)

    # -- inside ---------------------------------------------------------------------------------

    async def _settled(
        self, latest: Mapping[int, AuditEvent], intents: Mapping[int, TransferIntent] | None
    ) -> dict[int, AuditEvent]:
        """`latest` with the holds among them that are past their timeout settled and read
        again. Asks the engine nothing unless a hold is pending with a timeout."""
        pending = {
            t: e.engine_timestamp
            for t, e in latest.items()
            if e.kind is EventKind.PENDING and e.engine_timestamp is not None
        }
        if not pending:
            return dict(latest)
        known: dict[int, TransferIntent] = {}
        missing = []
        for t in pending:
            intent = None if intents is None else intents.get(t)
            if intent is None:
                missing.append(t)
            else:
                known[t] = intent
        if missing:
            known.update(await self._store.get_intents(missing))
        holds = [
            (intent, created_ns)
            for t, created_ns in pending.items()
            if (intent := known.get(t)) is not None
            and intent.timeout > 0
            and intent.flags & _PENDING
        ]
        if not holds:
            return dict(latest)
        # The latest engine timestamp seen is a time the engine has reached: when it is past
        # every one of these expiry instants, no request is needed to know they all expired.
        now_ns = self._gateway.seen_ns
        if now_ns < max(_expires_at(intent, created_ns) for intent, created_ns in holds):
            now_ns = await self._gateway.now_ns()
        due = [(i, created_ns) for i, created_ns in holds if _expires_at(i, created_ns) <= now_ns]
        if not due:
            return dict(latest)
        await self._settle(due, now_ns)
        settled = await self._store.current_status([intent.id for intent, _ in due])
        return {**latest, **settled}

    async def _settle(self, holds: Sequence[tuple[TransferIntent, int]], now_ns: int) -> int:
        """Record what became of `holds`, each past its timeout at the engine's time `now_ns`
        (read before this is called): the post or void of it the engine holds, else its expiry.
        The number of expiries recorded."""
        if not holds:
            return 0
        resolutions = await self._store.resolutions_of([intent.id for intent, _ in holds])
        resolved = await self._record_applied([r for ids in resolutions.values() for r in ids])
        expiries = [
            NewAuditEvent(
                kind=EventKind.EXPIRED,
                transfer_id=intent.id,
                status="expired",
                engine_timestamp=_expires_at(intent, created_ns),
                detail=_expiry_detail(intent, now_ns),
            )
            for intent, created_ns in holds
            if intent.id not in resolved
        ]
        if not expiries:
            return 0
        return len(await self._recorder.record_expiries(expiries))

    async def _record_applied(self, resolution_ids: Sequence[int]) -> set[int]:
        """Record the posts and voids among `resolution_ids` that the engine holds, with their
        holds' resolutions, where nothing has recorded them yet (as recovery does: read the
        engine first); the ids of the holds they resolve."""
        resolved: set[int] = set()
        for start in range(0, len(resolution_ids), BATCH_EVENTS_MAX):
            found = await self._gateway.lookup_transfers(
                list(resolution_ids[start : start + BATCH_EVENTS_MAX])
            )
            if not found:
                continue
            resolved.update(t.pending_id for t in found)
            intents = await self._store.get_intents([t.id for t in found])
            applied = [(intents[t.id], t) for t in found if t.id in intents]
            await self._recorder.record_results(
                [intent for intent, _ in applied],
                [TransferResult(t.id, "exists", t.timestamp) for _, t in applied],
                only_unresolved=True,
            )
        return resolved

    async def _captures(self, latest: Mapping[int, AuditEvent]) -> dict[int, tuple[int, int]]:
        """For each posted hold among `latest`: what its post moved, and the rest of the hold,
        released; from the engine's records of both (one lookup per batch of holds)."""
        posts: dict[int, int] = {}
        for t, event in latest.items():
            by = event.detail.get("by") if event.kind is EventKind.POSTED else None
            if not isinstance(by, str):
                continue  # not a hold's resolution: a transfer's own outcome names no post
            try:
                posts[t] = parse_id(by)
            except InvalidIdError:
                continue
        if not posts:
            return {}
        ids = [*posts, *posts.values()]
        amounts: dict[int, int] = {}
        for start in range(0, len(ids), BATCH_EVENTS_MAX):
            found = await self._gateway.lookup_transfers(ids[start : start + BATCH_EVENTS_MAX])
            amounts.update((transfer.id, transfer.amount) for transfer in found)
        captures: dict[int, tuple[int, int]] = {}
        for hold_id, post_id in posts.items():
            held, captured = amounts.get(hold_id), amounts.get(post_id)
            if held is not None and captured is not None:
                captures[hold_id] = (captured, held - captured)
        return captures


def _expires_at(intent: TransferIntent, created_ns: int) -> int:
    """The engine time at which the hold expires: its engine timestamp plus its timeout."""
    return created_ns + intent.timeout * _SECOND_NS


def _expiry_detail(intent: TransferIntent, now_ns: int) -> dict[str, str]:
    """An expiry creates no transfer; a hold's `expiry_code` control fact names it in the
    audit. `engine_now` is the engine time the expiry was decided at."""
    detail = {"engine_now": str(now_ns)}
    label = intent.control.get("expiry_code")
    if isinstance(label, str):
        detail["transfer_code"] = label
    return detail
