"""The console's fragments: pieces of pages with data, rendered as HTML for the key that asked.

Each fragment is a thin shell over the ``/v1`` routes: it takes the same query values with the
same spelling rules, calls the route functions themselves with the caller the guard verified,
and renders their answers. So a fragment shows exactly what the key could read from the API,
no more: an owner key's account list is its owner's, another owner's account or transfer is a
404 as it is on ``/v1``, and the platform's pages (system accounts, the event feed, health) are
for admin keys (403 otherwise), as ``/v1/events`` and ``/metrics`` are. Every fragment is in the
authority table (`tbledger.api.policy.ROUTES`) beside the route it renders.

What is read beside the route functions is read for what the key already sees: the engine's
record of the holds on an account it may see (for their expiry), the names of the accounts on
either side of a transfer it may see (shown only where `may_see` allows), the service's health,
and the audit log's newest events (admin keys).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from tbledger.api.console._views import fragment
from tbledger.api.context import Admin, ApiContext, Caller, Ctx
from tbledger.api.errors import ApiError
from tbledger.api.history_views import ActivityEntryOut
from tbledger.api.policy import may_see
from tbledger.api.render import audit_out
from tbledger.api.routes import accounts as account_routes
from tbledger.api.routes import history as history_routes
from tbledger.api.routes import transfers as transfer_routes
from tbledger.api.schemas import (
    ID_PATTERN,
    LEDGER_PATTERN,
    AccountOut,
    AccountStatusName,
    AccountTypeName,
)
from tbledger.ids import parse_id
from tbledger.limits import (
    CONSOLE_ACCOUNTS_PAGE_ROWS,
    CONSOLE_ACTIVITY_ROWS,
    CONSOLE_EVENTS_SHOWN,
    CONSOLE_HOLD_PAGES_MAX,
    CONSOLE_SYSTEM_PAGES_MAX,
    HTTP_PAGE_LIMIT_MAX,
    STORE_PAGE_ROWS_MAX,
    STORE_TEXT_CHARS_MAX,
)
from tbledger.service import iso_time

__all__ = ["FRAGMENTS"]


IdQuery = Annotated[str, Query(pattern=ID_PATTERN, max_length=39, description="an id")]
Text = Annotated[str | None, Query(min_length=1, max_length=STORE_TEXT_CHARS_MAX)]

# The platform's account types, as the system page groups them (a buffer and a liquidity account
# share a type; their names say which is which).
_SYSTEM_TYPES: Final[tuple[AccountTypeName, ...]] = (
    "treasury",
    "fee_pool",
    "system_buffer",
    "anchor",
    "control",
)
_ROLE_ORDER: Final = ("treasury", "fee_pool", "buffer", "liquidity", "anchor", "control")
_NS_PER_MS: Final = 1_000_000
_NS_PER_S: Final = 1_000_000_000


async def whoami(request: Request, caller: Caller) -> HTMLResponse:
    """Who the key is: its id, scope and owner (what the page shows and which links it offers)."""
    return fragment(request, "whoami.html", caller=caller)


async def accounts(
    request: Request,
    ctx: Ctx,
    caller: Caller,
    name: Text = None,
    account_type: Annotated[AccountTypeName | None, Query()] = None,
    ledger: Annotated[str | None, Query(pattern=LEDGER_PATTERN)] = None,
    status: Annotated[AccountStatusName | None, Query()] = None,
    owner_id: Text = None,
    cursor: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=39)] = None,
) -> HTMLResponse:
    """Accounts by name (exactly, through ``GET /v1/accounts/by-name``) or by filters (through
    ``GET /v1/accounts``), with balances; the page's "more" link follows the cursor."""
    found: list[AccountOut]
    next_cursor = None
    missing = None
    if name is not None:
        try:
            found = [await account_routes.get_account_by_name(name, ctx, caller)]
        except ApiError as exc:
            if exc.status != 404:
                raise
            found, missing = [], name
    else:
        listing = await account_routes.list_accounts(
            ctx,
            caller,
            owner_id=owner_id,
            account_type=account_type,
            ledger=ledger,
            status=status,
            limit=CONSOLE_ACCOUNTS_PAGE_ROWS,
            cursor=cursor,
        )
        found, next_cursor = listing.accounts, listing.next_cursor
    # The filters a "next page" request repeats with the cursor.
    chosen = {
        "account_type": account_type,
        "ledger": ledger,
        "status": status,
        "owner_id": owner_id,
    }
    query = {name: value for name, value in chosen.items() if value}
    return fragment(
        request,
        "accounts.html",
        accounts=found,
        next_cursor=next_cursor,
        query=query,
        missing=missing,
        continued=cursor is not None,
    )


async def account(request: Request, ctx: Ctx, caller: Caller, id: IdQuery) -> HTMLResponse:
    """An account: its balances (``GET /v1/accounts/{id}``), its newest activity and open holds
    (``GET /v1/accounts/{id}/activity``); the page draws the balance chart itself from
    ``GET /v1/accounts/{id}/history``."""
    found = await account_routes.get_account(id, ctx, caller)
    recent = await history_routes.account_activity(
        id,
        ctx,
        caller,
        start=None,
        end=None,
        code=None,
        counterparty=None,
        flow=None,
        status=None,
        limit=CONSOLE_ACTIVITY_ROWS,
        cursor=None,
        reverse=True,
    )
    holds = await _open_holds(ctx, caller, id)
    return fragment(
        request,
        "account.html",
        account=found,
        balance=found.balance,
        entries=recent.entries,
        more_activity=recent.next_cursor is not None,
        holds=holds,
    )


async def _open_holds(ctx: ApiContext, caller: Caller, account_id: str) -> list[dict[str, object]]:
    """The account's holds whose latest status is pending, newest first, each with when the
    engine expires it (the engine's timestamp plus its timeout; none when it never does)."""
    entries: list[ActivityEntryOut] = []
    cursor = None
    for _ in range(CONSOLE_HOLD_PAGES_MAX):
        page = await history_routes.account_activity(
            account_id,
            ctx,
            caller,
            start=None,
            end=None,
            code=None,
            counterparty=None,
            flow=None,
            status="pending",
            limit=HTTP_PAGE_LIMIT_MAX,
            cursor=cursor,
            reverse=True,
        )
        entries.extend(e for e in page.entries if e.kind == "pending")
        cursor = page.next_cursor
        if cursor is None:
            break
    if not entries:
        return []
    engine = {
        t.id: t for t in await ctx.service.get_transfers([parse_id(e.transfer_id) for e in entries])
    }
    holds: list[dict[str, object]] = []
    for entry in entries:
        transfer = engine.get(parse_id(entry.transfer_id))
        expires_ns = (
            transfer.timestamp + transfer.timeout * _NS_PER_S
            if transfer is not None and transfer.timeout
            else None
        )
        holds.append(
            {
                "entry": entry,
                "expires_ms": None if expires_ns is None else expires_ns // _NS_PER_MS,
                "expires_time": None if expires_ns is None else iso_time(expires_ns),
            }
        )
    return holds


async def transfer(request: Request, ctx: Ctx, caller: Caller, id: IdQuery) -> HTMLResponse:
    """A transfer with its audit history (``GET /v1/transfers/{id}``), and the names of the
    accounts on either side that the key may see."""
    found = await transfer_routes.get_transfer(id, ctx, caller)
    records = await ctx.accounts(
        [parse_id(found.debit_account_id), parse_id(found.credit_account_id)]
    )
    names = {
        side: record.name or record.owner_id or record.account_type
        for side, record in (
            ("debit", records.get(parse_id(found.debit_account_id))),
            ("credit", records.get(parse_id(found.credit_account_id))),
        )
        if record is not None and may_see(caller, record)
    }
    return fragment(request, "transfer.html", transfer=found, names=names)


async def system(request: Request, ctx: Ctx, admin: Admin) -> HTMLResponse:
    """The platform's accounts by ledger and role (treasury, fee pool, buffer, liquidity,
    anchor, control), through ``GET /v1/accounts`` by type (admin keys)."""
    by_ledger: dict[int, dict[str, AccountOut]] = defaultdict(dict)
    names: dict[int, str] = {}
    for account_type in _SYSTEM_TYPES:
        cursor = None
        for _ in range(CONSOLE_SYSTEM_PAGES_MAX):
            listing = await account_routes.list_accounts(
                ctx,
                admin,
                owner_id=None,
                account_type=account_type,
                ledger=None,
                status=None,
                limit=HTTP_PAGE_LIMIT_MAX,
                cursor=cursor,
            )
            for found in listing.accounts:
                by_ledger[found.ledger][_role_of(found)] = found
                names[found.ledger] = found.ledger_name or str(found.ledger)
            cursor = listing.next_cursor
            if cursor is None:
                break
    roles = [r for r in _ROLE_ORDER if any(r in row for row in by_ledger.values())]
    ledgers = [(names[code], by_ledger[code]) for code in sorted(by_ledger)]
    return fragment(request, "system.html", ledgers=ledgers, roles=roles)


def _role_of(found: AccountOut) -> str:
    """A system account's role: from its name (``system:<role>:<ledger>``), else its type."""
    parts = (found.name or "").split(":")
    if len(parts) == 3 and parts[0] == "system":
        return parts[1]
    return found.account_type


async def events(request: Request, ctx: Ctx, admin: Admin) -> HTMLResponse:
    """The audit log's newest events (admin keys, as ``GET /v1/events``), and the seq the page's
    live feed follows ``GET /v1/events`` from."""
    head = await _last_seq(ctx)
    shown = await ctx.service.events_since(
        max(0, head - CONSOLE_EVENTS_SHOWN), CONSOLE_EVENTS_SHOWN
    )
    rows = [audit_out(e) for e in reversed(shown)]
    return fragment(request, "events.html", events=rows, head=head)


async def _last_seq(ctx: ApiContext) -> int:
    """The newest event's seq (0 for an empty log).

    The log is read forwards only (`events_since`: the events after a seq), so the newest is
    found by doubling a seq until nothing follows it, then halving the gap: about 2·log2(seq)
    reads of one row each, by the primary key. Seqs may have gaps (a rolled-back insert); the
    search needs only that "some event follows `s`" turns false once, past the newest.
    """
    if not await ctx.service.events_since(0, 1):
        return 0
    low, high = 0, 1  # some event follows `low`; whether one follows `high` is being learnt
    while await ctx.service.events_since(high, 1):
        low, high = high, high * 2
    while high - low > 1:  # now some event follows `low` and none follows `high`
        middle = (low + high) // 2
        if await ctx.service.events_since(middle, 1):
            low = middle
        else:
            high = middle
    return high


async def health(request: Request, ctx: Ctx, admin: Admin) -> HTMLResponse:
    """Readiness with its reasons, the circuit breaker's state and the recovery backlog (admin
    keys, as ``/metrics``, which reports the same backlog)."""
    found = await ctx.service.health_check()
    grace_s = ctx.service.settings.recovery_grace_s
    now = datetime.now(UTC)
    try:
        backlog = await ctx.service.intents_without_outcome(
            STORE_PAGE_ROWS_MAX, created_before=now - timedelta(seconds=grace_s)
        )
    except Exception:  # the page must answer when the store does not; health says why
        backlog = None
    oldest = min((i.created_at for i in backlog or () if i.created_at), default=None)
    return fragment(
        request,
        "health.html",
        health=found,
        breaker=found.breaker.value,
        backlog=None if backlog is None else len(backlog),
        backlog_capped=backlog is not None and len(backlog) >= STORE_PAGE_ROWS_MAX,
        oldest_age_s=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        grace_s=grace_s,
        checked_at=now,
    )


# Each fragment's path and route function (`tbledger.api.console.routes` adds them to the app).
FRAGMENTS: Final[dict[str, Callable[..., Awaitable[HTMLResponse]]]] = {
    "/console/fragments/whoami": whoami,
    "/console/fragments/accounts": accounts,
    "/console/fragments/account": account,
    "/console/fragments/transfer": transfer,
    "/console/fragments/system": system,
    "/console/fragments/events": events,
    "/console/fragments/health": health,
}
