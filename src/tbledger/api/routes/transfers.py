"""Transfers: single, pending (holds), post / partial post, void, batches, reads and listings.

Listings find transfers by event id or by key/value pairs of their metadata
(``metadata[KEY]=VALUE``, the store's indexed look-up), paged in id order; an owner key's listing
holds only transfers touching its owner's accounts, filtered in the query.

Before anything reaches the engine, the request is checked against the account mappings and the
authority model (`tbledger.api.policy`): both accounts exist, they differ, they are on the
transfer's ledger; an owner key debits only its owner's customer accounts, credits only customer
accounts (anyone's: it may pay anyone) and uses only customer transfer codes. A hold is posted or
voided by its receiving side (or an admin), never by the payer, and a flow's hold only through
its flow. The engine still decides everything about money (balances, limits, freezes); these
checks give a clear 4xx for requests that cannot be right, and keep owner keys inside their
authority.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request

from tbledger.api.context import (
    ApiContext,
    Caller,
    Ctx,
    IdempotencyKey,
    account_id_of,
    check_batch_size,
)
from tbledger.api.direct import DirectRoute
from tbledger.api.errors import ApiError, not_found
from tbledger.api.keys import Principal
from tbledger.api.policy import (
    may_credit,
    may_debit,
    may_resolve_hold,
    may_see,
    may_use_code,
    resolved_by_flow,
)
from tbledger.api.render import result_out, transfer_out
from tbledger.api.routing import router_for
from tbledger.api.schemas import (
    ID_PATTERN,
    BatchIn,
    BatchOut,
    PostIn,
    TransferIn,
    TransferList,
    TransferOut,
    TransferResultOut,
    VoidIn,
)
from tbledger.errors import ValidationError
from tbledger.ids import format_id, parse_id
from tbledger.limits import (
    HTTP_PAGE_LIMIT_MAX,
    LISTING_PAGE_ROWS_DEFAULT,
    METADATA_FILTER_PAIRS_MAX,
    STORE_TEXT_CHARS_MAX,
)
from tbledger.model import AccountRecord
from tbledger.service import TransferRequest

__all__ = ["DIRECT_ROUTES", "router"]

router = router_for("/v1", tags=["transfers"])

IdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=39)]


def _request(
    ctx: ApiContext,
    caller: Principal,
    body: TransferIn,
    accounts: dict[int, AccountRecord],
    *,
    pending: bool,
    key: str | None,
) -> TransferRequest:
    debit = account_id_of(body.debit_account_id, "debit_account_id")
    credit = account_id_of(body.credit_account_id, "credit_account_id")
    book = ctx.ledger(body.ledger)
    for account_id in (debit, credit):
        if accounts[account_id].ledger != book.code:
            # Says which account, not which ledger it is on: it may be another owner's.
            raise ValidationError(
                f"account {format_id(account_id)} is not on ledger {book.name} ({book.code})"
            )
    if body.timeout_s and not pending:
        raise ValidationError("timeout_s applies to pending transfers only")
    code = ctx.transfer_code(body.code)
    if not may_use_code(caller, ctx.chart, code):
        raise ApiError(
            403,
            "forbidden",
            "owner keys use customer transfer codes only "
            f"({', '.join(c.name for c in ctx.chart.transfer_codes if c.customer)})",
        )
    return TransferRequest(
        debit_account_id=debit,
        credit_account_id=credit,
        amount=ctx.minor(book, body.amount, body.amount_unit),
        ledger=book.code,
        code=code,
        transfer_id=None if body.transfer_id is None else parse_id(body.transfer_id),
        pending=pending,
        timeout=body.timeout_s,
        user_data_128=0 if body.user_data_128 is None else parse_id(body.user_data_128),
        user_data_64=body.user_data_64,
        user_data_32=body.user_data_32,
        payment_id=body.payment_id,
        event_id=body.event_id,
        chain_tx_hash=body.chain_tx_hash,
        idempotency_key=key,
        metadata=body.metadata,
    )


async def _checked_accounts(
    ctx: ApiContext, caller: Principal, bodies: list[TransferIn]
) -> dict[int, AccountRecord]:
    """Both accounts of every transfer exist and differ; the caller may debit every debit
    account and credit every credit account (a 404, as for a missing account, where not)."""
    debits, credits = [], []
    for body in bodies:
        debit = account_id_of(body.debit_account_id, "debit_account_id")
        credit = account_id_of(body.credit_account_id, "credit_account_id")
        if debit == credit:
            raise ValidationError("debit and credit accounts must be different")
        debits.append(debit)
        credits.append(credit)
    found = await ctx.accounts([*debits, *credits])
    for debit, credit in zip(debits, credits, strict=True):
        record = found.get(debit)
        if record is None or not may_debit(caller, record):
            raise not_found("account", format_id(debit))
        record = found.get(credit)
        if record is None or not may_credit(caller, record):
            raise not_found("account", format_id(credit))
    return found


async def _create(
    ctx: ApiContext, caller: Principal, body: TransferIn, key: str | None, *, pending: bool
) -> TransferResultOut:
    accounts = await _checked_accounts(ctx, caller, [body])
    request = _request(ctx, caller, body, accounts, pending=pending, key=key)
    if pending:
        return result_out(await ctx.service.create_pending_transfer(request))
    return result_out(await ctx.service.create_transfer(request))


async def create_now(
    ctx: ApiContext, caller: Principal, body: TransferIn, key: str | None
) -> TransferResultOut:
    return await _create(ctx, caller, body, key, pending=False)


async def create_held(
    ctx: ApiContext, caller: Principal, body: TransferIn, key: str | None
) -> TransferResultOut:
    return await _create(ctx, caller, body, key, pending=True)


@router.post("/transfers", response_model=TransferResultOut, status_code=201)
async def create_transfer(
    body: TransferIn, ctx: Ctx, caller: Caller, key: IdempotencyKey
) -> TransferResultOut:
    """Move money now. A refusal by the engine is a 409 whose code is the engine's status."""
    return await create_now(ctx, caller, body, key)


@router.post("/transfers/pending", response_model=TransferResultOut, status_code=201)
async def create_pending_transfer(
    body: TransferIn, ctx: Ctx, caller: Caller, key: IdempotencyKey
) -> TransferResultOut:
    """Place a hold (two-phase transfer); `timeout_s` makes it expire."""
    return await create_held(ctx, caller, body, key)


async def _pending_for(ctx: ApiContext, caller: Principal, pending_id: int) -> tuple[int, int]:
    """The hold's ledger, once the caller may resolve it: the receiving side (the credit
    account's owner) or an admin. A payer can neither take back nor shrink its authorization
    (a partial post releases the rest to it), and a hold a flow made (an anchor authorization,
    a freeze) is resolved only through that flow (409)."""
    intent = await ctx.service.get_intent(pending_id)
    if intent is not None:
        ledger, debit, credit = intent.ledger, intent.debit_account_id, intent.credit_account_id
    else:
        found = await ctx.service.get_transfers([pending_id])
        if not found:
            raise not_found("transfer", format_id(pending_id))
        ledger, debit, credit = (
            found[0].ledger,
            found[0].debit_account_id,
            found[0].credit_account_id,
        )
    records = await ctx.accounts([debit, credit])
    if not may_resolve_hold(caller, records.get(credit)):
        # To its payer, a hold to resolve reads as missing, as it does to anyone else.
        raise not_found("transfer", format_id(pending_id))
    if resolved_by_flow(intent):
        raise ApiError(
            409,
            "hold_of_a_flow",
            "this hold belongs to a flow (or an account status change): resolve it through "
            "that flow",
        )
    return ledger, pending_id


@router.post("/transfers/{transfer_id}/post", response_model=TransferResultOut, status_code=201)
async def post_pending_transfer(
    transfer_id: IdPath, ctx: Ctx, caller: Caller, key: IdempotencyKey, body: PostIn | None = None
) -> TransferResultOut:
    """Post a hold in full, or `amount` of it (the rest is released)."""
    body = body or PostIn()
    ledger, pending_id = await _pending_for(ctx, caller, parse_id(transfer_id))
    amount = None
    if body.amount is not None:
        amount = ctx.minor(ctx.ledger(ledger), body.amount, body.amount_unit)
    result = await ctx.service.post_pending_transfer(
        pending_id,
        amount,
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
        metadata=body.metadata,
    )
    return result_out(result)


@router.post("/transfers/{transfer_id}/void", response_model=TransferResultOut, status_code=201)
async def void_pending_transfer(
    transfer_id: IdPath, ctx: Ctx, caller: Caller, key: IdempotencyKey, body: VoidIn | None = None
) -> TransferResultOut:
    """Void a hold: release all of it."""
    body = body or VoidIn()
    _, pending_id = await _pending_for(ctx, caller, parse_id(transfer_id))
    result = await ctx.service.void_pending_transfer(
        pending_id,
        idempotency_key=key,
        event_id=body.event_id,
        payment_id=body.payment_id,
        metadata=body.metadata,
    )
    return result_out(result)


async def create_batch(
    ctx: ApiContext, caller: Principal, body: BatchIn, key: str | None
) -> BatchOut:
    check_batch_size(len(body.transfers))
    accounts = await _checked_accounts(ctx, caller, body.transfers)
    requests = [
        _request(
            ctx,
            caller,
            one,
            accounts,
            pending=body.pending,
            key=None if key is None else f"{key}:{index}",
        )
        for index, one in enumerate(body.transfers)
    ]
    if body.pending:
        results = await ctx.service.create_pending_transfers(requests, atomic=body.atomic)
    else:
        results = await ctx.service.create_transfers(requests, atomic=body.atomic)
    created = sum(1 for r in results if r.ok)
    return BatchOut(
        results=[result_out(r) for r in results], created=created, failed=len(results) - created
    )


@router.post("/transfers/batch", response_model=BatchOut)
async def create_transfers(
    body: BatchIn, ctx: Ctx, caller: Caller, key: IdempotencyKey
) -> BatchOut:
    """Many transfers in one engine request: one result per transfer, in order.

    With `atomic`, all or nothing. A malformed transfer refuses the whole batch (422) before the
    engine sees any of it; refusals by the engine are per-transfer results, whose status is the
    engine's own name: a frozen account's transfer says ``debit_account_already_closed`` (or
    ``credit_...``) here, where a single transfer's error says ``account_frozen``."""
    return await create_batch(ctx, caller, body, key)


# Answered by `tbledger.api.direct` without the framework's per-request work, through the same
# handlers as the routes above (which give the OpenAPI document its operations).
DIRECT_ROUTES = (
    DirectRoute("/v1/transfers", TransferIn, create_now, 201),
    DirectRoute("/v1/transfers/pending", TransferIn, create_held, 201),
    DirectRoute("/v1/transfers/batch", BatchIn, create_batch, 200),
)


@router.get("/transfers/{transfer_id}", response_model=TransferOut)
async def get_transfer(transfer_id: IdPath, ctx: Ctx, caller: Caller) -> TransferOut:
    """A transfer as the engine holds it, with its audit history."""
    ident = parse_id(transfer_id)
    intent = await ctx.service.get_intent(ident)
    found = await ctx.service.get_transfers([ident])
    engine = found[0] if found else None
    source = engine if engine is not None else intent
    if source is None:
        raise not_found("transfer", format_id(ident))
    if not caller.is_admin:
        records = await ctx.accounts([source.debit_account_id, source.credit_account_id])
        if not any(may_see(caller, r) for r in records.values()):
            raise not_found("transfer", format_id(ident))
    if intent is None:
        return transfer_out(ctx, engine=engine, intent=intent)
    # The history first: reading it settles a hold past its timeout (the engine has released
    # it), so the status read next agrees with it.
    audit = await ctx.service.get_transfer_audit(ident)
    status = (await ctx.service.transfer_statuses([ident])).get(ident)
    return transfer_out(ctx, engine=engine, intent=intent, audit=audit, status=status)


# `metadata[KEY]=VALUE` query parameters, described the way OpenAPI spells them (a deepObject):
# FastAPI cannot declare parameters whose names vary, so the route reads them from the query.
_METADATA_PARAMETER = {
    "name": "metadata",
    "in": "query",
    "required": False,
    "style": "deepObject",
    "explode": True,
    "description": (
        "metadata[KEY]=VALUE: only transfers whose metadata has KEY with the string VALUE, "
        f"exactly; up to {METADATA_FILTER_PAIRS_MAX} pairs, all must match"
    ),
    "schema": {
        "type": "object",
        "maxProperties": METADATA_FILTER_PAIRS_MAX,
        "additionalProperties": {"type": "string", "maxLength": STORE_TEXT_CHARS_MAX},
    },
}


def _metadata_pairs(request: Request) -> dict[str, str]:
    """The ``metadata[KEY]=VALUE`` pairs of the query: KEY is everything between
    ``metadata[`` and the name's last ``]``, so any key can be asked for."""
    pairs: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if not name.startswith("metadata"):
            continue
        if not (name.startswith("metadata[") and name.endswith("]")):
            raise ValidationError(f"query parameter {name[:64]!r}: write metadata[KEY]=VALUE")
        key = name[len("metadata[") : -1]
        if key in pairs:
            raise ValidationError(f"metadata[{key[:64]}] is given twice")
        pairs[key] = value
    if len(pairs) > METADATA_FILTER_PAIRS_MAX:
        raise ValidationError(
            f"at most {METADATA_FILTER_PAIRS_MAX} metadata[KEY]=VALUE pairs, got {len(pairs)}"
        )
    return pairs


@router.get(
    "/transfers",
    response_model=TransferList,
    openapi_extra={"parameters": [_METADATA_PARAMETER]},
)
async def list_transfers(
    request: Request,
    ctx: Ctx,
    caller: Caller,
    event_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=STORE_TEXT_CHARS_MAX,
            description="only transfers recorded with this event id",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=HTTP_PAGE_LIMIT_MAX)] = LISTING_PAGE_ROWS_DEFAULT,
    cursor: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, max_length=39, description="next_cursor of the last page"),
    ] = None,
) -> TransferList:
    """The transfers recorded with an event id, or whose metadata has the given key/value
    pairs (``metadata[order]=A-17``), or both; in id order, paged. Owner keys see only transfers
    with one of their owner's accounts on either side."""
    metadata = _metadata_pairs(request)
    if event_id is None and not metadata:
        raise ValidationError("list transfers by event_id, by metadata[KEY]=VALUE, or both")
    # The owner filter and the paging are in the query: other owners' transfers tagged with the
    # same event id or metadata neither show nor make the caller's own listing fail.
    if not caller.is_admin and caller.owner_id is None:
        return TransferList(transfers=[], next_cursor=None)  # bound to no owner: sees nothing
    owner_id = None if caller.is_admin else caller.owner_id
    if metadata:
        page = await ctx.service.transfers_by_metadata(
            metadata, event_id=event_id, owner_id=owner_id, after=cursor, limit=limit
        )
    else:
        assert event_id is not None, "a listing without metadata pairs has an event id"
        page = await ctx.service.transfers_by_event_id(
            event_id, owner_id=owner_id, after=cursor, limit=limit
        )
    intents = page.intents
    engine = {t.id: t for t in await ctx.service.get_transfers([i.id for i in intents])}
    statuses = await ctx.service.transfer_statuses(i.id for i in intents)
    return TransferList(
        transfers=[
            transfer_out(ctx, engine=engine.get(i.id), intent=i, status=statuses.get(i.id))
            for i in intents
        ],
        next_cursor=None if page.next_cursor is None else format_id(page.next_cursor),
    )


@router.get("/accounts/{account_id}/transfers", response_model=TransferList)
async def list_account_transfers(
    account_id: IdPath,
    ctx: Ctx,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=HTTP_PAGE_LIMIT_MAX)] = 100,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,20}$", description="next_cursor of the last page")
    ] = None,
    reverse: Annotated[bool, Query(description="newest first")] = False,
) -> TransferList:
    """An account's transfers from the engine, oldest first (newest with `reverse`), paged."""
    record = await ctx.visible_account(caller, account_id_of(account_id))
    if cursor is not None and int(cursor) >= 1 << 64:
        raise ValidationError("cursor is out of range")
    page = await ctx.service.list_account_transfers(
        record.id,
        limit=limit,
        cursor=None if cursor is None else int(cursor),
        reversed_=reverse,
    )
    intents = await ctx.service.get_intents(t.id for t in page.transfers)
    statuses = await ctx.service.transfer_statuses(t.id for t in page.transfers)
    return TransferList(
        transfers=[
            transfer_out(ctx, engine=t, intent=intents.get(t.id), status=statuses.get(t.id))
            for t in page.transfers
        ],
        next_cursor=None if page.next_cursor is None else str(page.next_cursor),
    )
