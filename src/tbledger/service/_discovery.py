"""Discovery reads: accounts by their columns and transfers by their metadata, a page at a time.

These are reads of names and metadata, so they go to the store only (DESIGN §1: money from the
engine, names from the store); the caller adds balances or engine state for the page it got. The
arguments are checked here (a type the chart knows, a u32 ledger, a status, ids for cursors), and
each page is one bounded query that asks for one row more than it returns: that row's presence is
what says a next page exists, so `next_cursor` is None exactly on the last page. Who may see
what is not decided here: the caller narrows to an owner (`owner_id`), as the HTTP API does for
owner keys (DESIGN §9).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tbledger.balances import AccountType
from tbledger.errors import ValidationError
from tbledger.ids import parse_id
from tbledger.limits import STORE_PAGE_ROWS_MAX, U32_MAX
from tbledger.model import AccountRecord, AccountStatus
from tbledger.service._intents import checked_uint
from tbledger.service._values import IntentPage
from tbledger.store import Store

__all__ = ["AccountRecordPage", "account_page", "metadata_page"]


@dataclass(frozen=True, slots=True)
class AccountRecordPage:
    """A page of account mappings in id order; pass `next_cursor` back for the next."""

    accounts: list[AccountRecord]
    next_cursor: int | None


def _limit(limit: int) -> int:
    # One row more than the page is asked of the store, which allows STORE_PAGE_ROWS_MAX.
    limit = checked_uint("limit", limit, STORE_PAGE_ROWS_MAX - 1)
    if limit == 0:
        raise ValidationError("limit must be at least 1")
    return limit


async def account_page(
    store: Store,
    *,
    limit: int,
    account_type: AccountType | str | None = None,
    ledger: int | None = None,
    status: AccountStatus | str | None = None,
    owner_id: str | None = None,
    after: int | str | None = None,
) -> AccountRecordPage:
    """The accounts meeting every filter given, in id order, `limit` at a time."""
    limit = _limit(limit)
    if account_type is not None:
        try:
            account_type = AccountType(account_type)
        except ValueError:
            raise ValidationError(f"unknown account type {account_type!r}") from None
    if ledger is not None:
        ledger = checked_uint("ledger", ledger, U32_MAX)
    if status is not None:
        try:
            status = AccountStatus(status)
        except ValueError:
            raise ValidationError(f"unknown account status {status!r}") from None
    found = await store.accounts_page(
        limit + 1,
        account_type=None if account_type is None else account_type.value,
        ledger=ledger,
        status=status,
        owner_id=owner_id,
        after_id=None if after is None else parse_id(after),
    )
    if len(found) <= limit:
        return AccountRecordPage(found, None)
    return AccountRecordPage(found[:limit], found[limit - 1].id)


async def metadata_page(
    store: Store,
    metadata: Mapping[str, str],
    *,
    limit: int,
    event_id: str | None = None,
    owner_id: str | None = None,
    after: int | str | None = None,
) -> IntentPage:
    """The transfers whose metadata holds every pair of `metadata`, in id order, `limit` at a
    time (narrowed to one event, and to one owner's transfers, when given)."""
    limit = _limit(limit)
    found = await store.transfers_by_metadata_page(
        metadata,
        limit + 1,
        event_id=event_id,
        owner_id=owner_id,
        after_id=None if after is None else parse_id(after),
    )
    if len(found) <= limit:
        return IntentPage(found, None)
    return IntentPage(found[:limit], found[limit - 1].id)
