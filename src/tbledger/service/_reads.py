"""Reads of transfers: from the engine, and a bounded page at a time.

Money is read from the engine (DESIGN §3, "read first"): a transfer as the engine holds it, an
account's transfers a page at a time by engine timestamp. What the service recorded is read from
the store: here, the transfers sharing an event id, a bounded page at a time. Each read is
bounded (`BATCH_EVENTS_MAX`, `STORE_PAGE_ROWS_MAX`), so no call costs more than one bounded
request; the service's one-line store lookups (an intent, an audit history) call the store
directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import tigerbeetle as tb

from tbledger.errors import ValidationError
from tbledger.ids import parse_id
from tbledger.limits import BATCH_EVENTS_MAX, STORE_PAGE_ROWS_MAX, U64_MAX
from tbledger.service._gateway import EngineGateway
from tbledger.service._intents import checked_object_id, checked_uint
from tbledger.service._values import IntentPage, TransferPage
from tbledger.store import Store

__all__ = ["Reads"]


class Reads:
    """Engine reads of transfers, and bounded pages of them."""

    def __init__(self, *, store: Store, gateway: EngineGateway) -> None:
        self._store = store
        self._gateway = gateway

    async def get_transfer(self, transfer_id: int | str) -> tb.Transfer | None:
        """The transfer as the engine holds it, or None."""
        found = await self._gateway.lookup_transfers([parse_id(transfer_id)])
        return found[0] if found else None

    async def get_transfers(self, transfer_ids: Sequence[int | str]) -> list[tb.Transfer]:
        """The transfers the engine holds among `transfer_ids` (one request), in its order."""
        ids = [parse_id(t) for t in transfer_ids]
        if len(ids) > BATCH_EVENTS_MAX:
            raise ValidationError(f"at most {BATCH_EVENTS_MAX} transfers per call")
        if not ids:
            return []
        return await self._gateway.lookup_transfers(ids)

    async def transfers_by_event_id(
        self, event_id: str, *, owner_id: str | None, after: int | str | None, limit: int
    ) -> IntentPage:
        """A page of the transfers recorded with this event id, in id order (see
        `LedgerService.transfers_by_event_id`)."""
        limit = checked_uint("limit", limit, STORE_PAGE_ROWS_MAX - 1)
        if limit == 0:
            raise ValidationError("limit must be at least 1")
        after_id = None if after is None else parse_id(after)
        # One row more than the page tells whether there is a next one.
        intents = await self._store.transfers_by_event_id_page(
            event_id, limit + 1, owner_id=owner_id, after_id=after_id
        )
        if len(intents) <= limit:
            return IntentPage(intents, None)
        return IntentPage(intents[:limit], intents[limit - 1].id)

    async def list_account_transfers(
        self, account_id: int | str, *, limit: int, cursor: int | None, reversed_: bool
    ) -> TransferPage:
        """An account's transfers from the engine, a page at a time (see
        `LedgerService.list_account_transfers`)."""
        account = checked_object_id("account_id", account_id)
        limit = checked_uint("limit", limit, BATCH_EVENTS_MAX)
        if limit == 0:
            raise ValidationError("limit must be at least 1")
        ts_min, ts_max = 0, 0
        if cursor is not None:
            if reversed_:
                ts_max = checked_uint("cursor", cursor, U64_MAX)
            else:
                ts_min = checked_uint("cursor", cursor, U64_MAX)
        flags = tb.AccountFilterFlags.DEBITS | tb.AccountFilterFlags.CREDITS
        if reversed_:
            flags |= tb.AccountFilterFlags.REVERSED
        page_filter = tb.AccountFilter(
            account_id=account,
            user_data_128=0,
            user_data_64=0,
            user_data_32=0,
            code=0,
            timestamp_min=ts_min,
            timestamp_max=ts_max,
            limit=limit,
            flags=flags,
        )
        transfers = await self._gateway.get_account_transfers(page_filter)
        next_cursor = None
        if len(transfers) == limit:
            last = transfers[-1].timestamp
            next_cursor = last - 1 if reversed_ else last + 1
        return TransferPage(transfers, next_cursor)
