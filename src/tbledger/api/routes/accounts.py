"""Accounts and balances: create, read (by id or by name), list, freeze / unfreeze / close.

Listings and look-ups are scoped as DESIGN §9 says: an admin key sees every account, the
platform's own among them (treasury, fee pool, liquidity, which have no owner); an owner key sees
its owner's accounts only, and another owner's answers exactly as a missing one: a listing naming
another owner is empty, a name of another owner's account is a 404 as for no such name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from tbledger.api.context import (
    Admin,
    Caller,
    Ctx,
    IdempotencyKey,
    account_id_of,
    derived_id,
)
from tbledger.api.errors import ApiError, not_found
from tbledger.api.keys import Principal
from tbledger.api.policy import CUSTOMER_ACCOUNT_TYPES, RESERVED_NAME_PREFIXES, may_see
from tbledger.api.render import account_out, balance_out
from tbledger.api.routing import router_for
from tbledger.api.schemas import (
    ID_PATTERN,
    LEDGER_PATTERN,
    AccountCreate,
    AccountList,
    AccountOut,
    AccountStatusChange,
    AccountStatusName,
    AccountTypeName,
    BalanceList,
    BalanceOut,
    IdText,
)
from tbledger.balances import AccountType
from tbledger.errors import ValidationError
from tbledger.ids import format_id
from tbledger.limits import HTTP_PAGE_LIMIT_MAX, LISTING_PAGE_ROWS_DEFAULT, STORE_TEXT_CHARS_MAX

__all__ = ["router"]

router = router_for("/v1", tags=["accounts"])

AccountIdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=39)]


@router.post("/accounts", response_model=AccountOut, status_code=201)
async def create_account(
    body: AccountCreate, ctx: Ctx, caller: Caller, key: IdempotencyKey
) -> AccountOut:
    """Open an account. Owner keys open user and merchant accounts for their own owner only.

    With an ``Idempotency-Key`` the account's id is derived from it, so a retry returns the same
    account (and a different body with the same key is a 409).
    """
    owner_id = body.owner_id
    if not caller.is_admin:
        if owner_id is None:
            owner_id = caller.owner_id
        if owner_id != caller.owner_id or body.account_type not in CUSTOMER_ACCOUNT_TYPES:
            raise ApiError(
                403, "forbidden", "owner keys open user or merchant accounts of their own owner"
            )
        if body.name is not None:
            raise ApiError(403, "forbidden", "only admin keys name accounts")
    if body.name is not None and body.name.startswith(RESERVED_NAME_PREFIXES):
        raise ValidationError(
            f"account names starting with {', '.join(RESERVED_NAME_PREFIXES)} are the service's own"
        )
    book = ctx.ledger(body.ledger)
    account_type = AccountType(body.account_type)
    code = ctx.account_code(account_type)
    account_id = None if key is None else derived_id(key, "account")
    if account_id is not None:
        # A retry replays the account; the same key for another account is a conflict (the
        # engine and the store compare only some of the fields, and would leak their wording).
        existing = await ctx.service.get_account_record(account_id)
        if existing is not None:
            wanted = (account_type.value, book.code, code, owner_id, body.name, body.metadata)
            stored = (
                existing.account_type,
                existing.ledger,
                existing.code,
                existing.owner_id,
                existing.name,
                dict(existing.metadata),
            )
            if stored != wanted:
                raise ApiError(
                    409,
                    "idempotency_conflict",
                    "this Idempotency-Key was used to open another account",
                )
            return account_out(ctx, existing)
    info = await ctx.service.create_account(
        owner_id=owner_id,
        account_type=account_type,
        ledger=book.code,
        code=code,
        name=body.name,
        metadata=body.metadata,
        account_id=account_id,
    )
    return account_out(ctx, info.record)


@router.get("/accounts/{account_id}", response_model=AccountOut)
async def get_account(account_id: AccountIdPath, ctx: Ctx, caller: Caller) -> AccountOut:
    """An account with its balance."""
    record = await ctx.visible_account(caller, account_id_of(account_id))
    (balance,) = await ctx.service.get_balances([record.id])
    return account_out(ctx, record, balance)


@router.get("/accounts/by-name/{name:path}", response_model=AccountOut)
async def get_account_by_name(
    name: Annotated[
        str,
        Path(
            min_length=1,
            max_length=STORE_TEXT_CHARS_MAX,
            description="the account's unique name (percent-encoded: a '/' is %2F)",
        ),
    ],
    ctx: Ctx,
    caller: Caller,
) -> AccountOut:
    """An account with its balance, by its unique name (an owner key: its owner's only)."""
    record = await ctx.service.get_account_by_name(name)
    if record is None or not may_see(caller, record):
        # Another owner's account answers as no account of that name does.
        raise not_found("account", f"named {name!r}")
    (balance,) = await ctx.service.get_balances([record.id])
    return account_out(ctx, record, balance)


@router.get("/accounts", response_model=AccountList)
async def list_accounts(
    ctx: Ctx,
    caller: Caller,
    owner_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=STORE_TEXT_CHARS_MAX,
            description="only this owner's accounts (an owner key: its own owner only)",
        ),
    ] = None,
    account_type: Annotated[
        AccountTypeName | None, Query(description="only accounts of this type")
    ] = None,
    ledger: Annotated[
        str | None,
        Query(pattern=LEDGER_PATTERN, description="only accounts on this ledger (USD or 1)"),
    ] = None,
    status: Annotated[
        AccountStatusName | None, Query(description="only accounts in this status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=HTTP_PAGE_LIMIT_MAX)] = LISTING_PAGE_ROWS_DEFAULT,
    cursor: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, max_length=39, description="next_cursor of the last page"),
    ] = None,
) -> AccountList:
    """Accounts with balances, in id order, paged, filtered by type, ledger, status and owner
    (each optional, all combined). An admin key lists every account, the platform's own among
    them; an owner key only its own owner's (naming another owner lists nothing)."""
    if not caller.is_admin:
        if caller.owner_id is None or owner_id not in (None, caller.owner_id):
            return AccountList(accounts=[])
        owner_id = caller.owner_id
    page = await ctx.service.list_accounts(
        account_type=account_type,
        ledger=None if ledger is None else ctx.ledger(ledger).code,
        status=status,
        owner_id=owner_id,
        after=cursor,
        limit=limit,
    )
    # The owner filter is in the query; this only says the rule where it is read.
    records = [r for r in page.accounts if may_see(caller, r)]
    balances = await ctx.service.get_balances([r.id for r in records]) if records else []
    return AccountList(
        accounts=[account_out(ctx, r, b) for r, b in zip(records, balances, strict=True)],
        next_cursor=None if page.next_cursor is None else format_id(page.next_cursor),
    )


async def _set_status(
    ctx: Ctx, caller: Principal, account_id: str, status: str, sweep_to: str | None = None
) -> AccountOut:
    target = account_id_of(account_id)
    # Existence first (404), then the change.
    await ctx.visible_account(caller, target)
    info = await ctx.service.update_account_status(
        target, status, sweep_to=None if sweep_to is None else account_id_of(sweep_to, "sweep_to")
    )
    ctx.forget_account(target)
    return account_out(ctx, info.record)


@router.post("/accounts/{account_id}/freeze", response_model=AccountOut)
async def freeze(account_id: AccountIdPath, ctx: Ctx, admin: Admin) -> AccountOut:
    """Freeze: the engine refuses every new transfer touching the account (admin key)."""
    return await _set_status(ctx, admin, account_id, "frozen")


@router.post("/accounts/{account_id}/unfreeze", response_model=AccountOut)
async def unfreeze(account_id: AccountIdPath, ctx: Ctx, admin: Admin) -> AccountOut:
    """Unfreeze a frozen account (admin key)."""
    return await _set_status(ctx, admin, account_id, "active")


@router.post("/accounts/{account_id}/close", response_model=AccountOut)
async def close(
    account_id: AccountIdPath, ctx: Ctx, admin: Admin, body: AccountStatusChange | None = None
) -> AccountOut:
    """Close for good: the balance is swept to `sweep_to` (default: the ledger's control
    account) and the engine refuses every later transfer (admin key)."""
    return await _set_status(
        ctx, admin, account_id, "closed", None if body is None else body.sweep_to
    )


@router.get("/balances/{account_id}", response_model=BalanceOut)
async def get_balance(account_id: AccountIdPath, ctx: Ctx, caller: Caller) -> BalanceOut:
    """One account's balance: posted, available (holds deducted), pending, on its normal side."""
    record = await ctx.visible_account(caller, account_id_of(account_id))
    (balance,) = await ctx.service.get_balances([record.id])
    return balance_out(ctx, balance, account_name=record.name)


@router.get("/balances", response_model=BalanceList)
async def get_balances(
    ctx: Ctx,
    caller: Caller,
    account_id: Annotated[
        list[IdText],
        Query(min_length=1, max_length=HTTP_PAGE_LIMIT_MAX, description="repeat for each account"),
    ],
) -> BalanceList:
    """Several balances in one engine request (``?account_id=…&account_id=…``)."""
    ids = [account_id_of(a) for a in account_id]
    records = await ctx.visible_accounts(caller, ids)
    balances = await ctx.service.get_balances(ids)
    return BalanceList(
        balances=[balance_out(ctx, b, account_name=records[b.account_id].name) for b in balances]
    )
