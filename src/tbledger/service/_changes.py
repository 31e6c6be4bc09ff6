"""What TigerBeetle's change stream tells the store: every event, its balances, foreign writes.

`tigerbeetle amqp` (or the embedded engine's publisher) reports every change event of the
cluster, at least once (`tbledger.cdc`). `Changes` records a batch of them, idempotently:

* each event with both accounts' balances and flags right after it (``change_events`` and
  ``account_balances``): the history of every account, with or without the engine's ``history``
  flag, which `AccountHistory` reads for accounts without it;
* a hold's expiry, the moment the engine releases it: recorded through `Holds`, the one code
  path that records an expiry (a post or void of the hold the engine holds, not recorded yet,
  is recorded instead), so a hold is resolved once whichever of the change stream, a read or the
  recovery pass gets there first; the expiry's engine timestamp is the hold's expiry instant,
  as every other path records it, and the release instant is in its detail;
* a transfer the engine holds that no tbledger intent asked for — another client wrote it to
  the cluster — as a ``foreign_transfer`` audit event, recorded with the event in one store
  transaction. The write protocol makes the test exact: an intent is persisted before the engine
  sees its transfer (DESIGN §3), so by the time the change stream reports it, its intent is in
  the store.

An event is known by its timestamp and type; one recorded before (the broker delivering it
again, the stream replayed from its start) records nothing. Nothing here acknowledges messages:
the consumer does, after this returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tbledger.ids import format_id
from tbledger.model import BalanceRecord, ChangeRecord, EventKind, NewAuditEvent, TransferIntent
from tbledger.service._holds import Holds
from tbledger.store import Store

if TYPE_CHECKING:
    # Only types: the change event is `tbledger.cdc`'s, read here by its attributes.
    from tbledger.cdc import ChangeAccount, ChangeEvent

__all__ = ["ChangeReport", "Changes"]

_EXPIRED = "two_phase_expired"


@dataclass(frozen=True, slots=True)
class ChangeReport:
    """What recording a batch of change events did: events `recorded` now (the rest of the
    batch, `duplicates`, were recorded before), of which `foreign` were transfers no tbledger
    intent asked for; holds recorded `expired`; the latest event timestamp of the batch."""

    recorded: int = 0
    duplicates: int = 0
    foreign: int = 0
    expired: int = 0
    timestamp_max: int | None = None


class Changes:
    """Records change events from TigerBeetle's change stream into the store."""

    def __init__(self, *, store: Store, holds: Holds) -> None:
        self._store = store
        self._holds = holds

    async def apply(self, events: Sequence[ChangeEvent]) -> ChangeReport:
        """Record `events` (at most `CDC_BATCH_EVENTS_MAX`), skipping those recorded before."""
        if not events:
            return ChangeReport()
        intents = await self._store.get_intents({e.transfer.id for e in events})
        expired = await self._expire(events, intents)
        records = [_record(e, foreign=e.transfer.id not in intents) for e in events]
        fresh = await self._store.record_changes(records)
        return ChangeReport(
            recorded=len(fresh),
            duplicates=len(records) - len(fresh),
            foreign=sum(1 for r in fresh if r.foreign),
            expired=expired,
            timestamp_max=max(e.timestamp for e in events),
        )

    async def _expire(
        self, events: Sequence[ChangeEvent], intents: dict[int, TransferIntent]
    ) -> int:
        """Record the expiries among `events` of holds tbledger made (a foreign hold's expiry
        is a foreign transfer's event, recorded as such)."""
        expired = 0
        for event in events:
            intent = intents.get(event.transfer.id)
            if str(event.type) != _EXPIRED or intent is None:
                continue
            # The hold's own timestamp is its creation; the event's is the release instant,
            # an engine time at which the hold is past its timeout.
            expired += await self._holds.record_expired(
                [(intent, event.transfer.timestamp)], now_ns=event.timestamp
            )
        return expired


def _balance(account: ChangeAccount, event: ChangeEvent) -> BalanceRecord:
    return BalanceRecord(
        account_id=account.id,
        timestamp=event.timestamp,
        type=str(event.type),
        debits_pending=account.debits_pending,
        debits_posted=account.debits_posted,
        credits_pending=account.credits_pending,
        credits_posted=account.credits_posted,
        flags=account.flags,
    )


def _record(event: ChangeEvent, *, foreign: bool) -> ChangeRecord:
    t = event.transfer
    audit = None
    if foreign:
        audit = NewAuditEvent(
            kind=EventKind.FOREIGN_TRANSFER,
            transfer_id=t.id,
            status=str(event.type),
            engine_timestamp=event.timestamp,
            detail={
                "ledger": event.ledger,
                "debit_account_id": format_id(event.debit_account.id),
                "credit_account_id": format_id(event.credit_account.id),
                "amount": str(t.amount),
                "pending_id": format_id(t.pending_id),
                "code": t.code,
                "flags": t.flags,
            },
        )
    return ChangeRecord(
        timestamp=event.timestamp,
        type=str(event.type),
        ledger=event.ledger,
        transfer_id=t.id,
        pending_id=t.pending_id,
        amount=t.amount,
        debit_account_id=event.debit_account.id,
        credit_account_id=event.credit_account.id,
        code=t.code,
        flags=t.flags,
        transfer_timestamp=t.timestamp,
        foreign=foreign,
        balances=(_balance(event.debit_account, event), _balance(event.credit_account, event)),
        audit=audit,
    )
