"""Webhook endpoints over HTTP (`tbledger.webhooks.manage`): register, list, rotate, replay.

An admin key manages every endpoint and may register admin-wide ones (``owner_id`` null: every
event, filtered by the subscription only) or one for any owner. An owner key manages its own
owner's endpoints only: the ones it registers are scoped to its owner (they are sent events of its
owner's accounts and of transfers touching them, never another owner's), it cannot name another
owner, and another owner's endpoint answers as a missing one does (404). A signing secret is
returned once, by the call that made it (create, rotate).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import Field, StrictInt

from tbledger.api.context import Caller, Ctx
from tbledger.api.errors import ApiError
from tbledger.api.keys import Principal
from tbledger.api.routing import router_for
from tbledger.api.schemas import StrictBody, Text
from tbledger.limits import WEBHOOK_FILTER_VALUES_MAX, WEBHOOK_URL_CHARS_MAX
from tbledger.model import EventKind
from tbledger.webhooks.manage import (
    create_endpoint,
    delete_endpoint,
    describe,
    describe_delivery,
    enable_endpoint,
    found_endpoint,
    replay_endpoint,
    rotate_secret,
    subscription_of,
)

__all__ = ["router"]

router = router_for("/v1", tags=["webhooks"])

EndpointId = Annotated[str, Path(pattern=r"^we_[0-9a-f]{1,29}$", max_length=32)]
Owner = Annotated[str, Field(min_length=1, max_length=255)]
# Strict bodies take JSON types only: an event kind arrives as its name, a string.
Kind = Annotated[EventKind, Field(strict=False)]


class SubscriptionIn(StrictBody):
    kinds: list[Kind] = Field(default_factory=list, max_length=WEBHOOK_FILTER_VALUES_MAX)
    ledgers: list[StrictInt] = Field(default_factory=list, max_length=WEBHOOK_FILTER_VALUES_MAX)
    owners: list[Owner] = Field(default_factory=list, max_length=WEBHOOK_FILTER_VALUES_MAX)
    codes: list[StrictInt] = Field(default_factory=list, max_length=WEBHOOK_FILTER_VALUES_MAX)


class WebhookIn(StrictBody):
    url: str = Field(min_length=1, max_length=WEBHOOK_URL_CHARS_MAX)
    description: str = Field(default="", max_length=255)
    owner_id: Text | None = Field(
        default=None, description="admin keys: the owner whose events it gets (null: all)"
    )
    subscription: SubscriptionIn = Field(default_factory=SubscriptionIn)


class ReplayIn(StrictBody):
    from_seq: StrictInt = Field(ge=1, le=(1 << 63) - 1, description="the first seq to resend")


def _scope(caller: Principal) -> str | None:
    """The owner a caller's endpoints are bound to (None: an admin key, bound to none)."""
    return None if caller.is_admin else caller.owner_id


@router.post("/webhooks", status_code=201)
async def create_webhook(ctx: Ctx, caller: Caller, body: WebhookIn) -> dict[str, Any]:
    """Register an endpoint (sent events from now on); its secret is in this answer only."""
    owner_id = body.owner_id
    sub = body.subscription
    if not caller.is_admin:
        if owner_id not in (None, caller.owner_id) or any(o != caller.owner_id for o in sub.owners):
            raise ApiError(403, "forbidden", "an owner key's endpoints get its own owner's events")
        owner_id = caller.owner_id
    subscription = subscription_of(
        kinds=sub.kinds, ledgers=sub.ledgers, owners=sub.owners, codes=sub.codes
    )
    endpoint = await create_endpoint(
        ctx.service.store,
        url=body.url,
        owner_id=owner_id,
        description=body.description,
        subscription=subscription,
        allowed_hosts=ctx.service.settings.webhook_hosts(),
    )
    return describe(endpoint, with_secret=True)


@router.get("/webhooks")
async def list_webhooks(ctx: Ctx, caller: Caller) -> list[dict[str, Any]]:
    """Endpoints: every one for an admin key, its owner's for an owner key (never secrets)."""
    found = await ctx.service.store.list_webhook_endpoints(
        owner_id=_scope(caller), every_owner=caller.is_admin
    )
    return [describe(e) for e in found]


@router.get("/webhooks/{endpoint_id}")
async def get_webhook(ctx: Ctx, caller: Caller, endpoint_id: EndpointId) -> dict[str, Any]:
    store = ctx.service.store
    return describe(await found_endpoint(store, endpoint_id, owner_id=_scope(caller)))


@router.delete("/webhooks/{endpoint_id}")
async def delete_webhook(ctx: Ctx, caller: Caller, endpoint_id: EndpointId) -> dict[str, Any]:
    """Remove an endpoint; its delivery log stays."""
    store = ctx.service.store
    endpoint = await found_endpoint(store, endpoint_id, owner_id=_scope(caller))
    await delete_endpoint(store, endpoint)
    return {"id": endpoint.id, "deleted": True}


@router.post("/webhooks/{endpoint_id}/rotate")
async def rotate_webhook(ctx: Ctx, caller: Caller, endpoint_id: EndpointId) -> dict[str, Any]:
    """A new secret, in this answer only; the previous one also signs for a day."""
    store = ctx.service.store
    endpoint = await found_endpoint(store, endpoint_id, owner_id=_scope(caller))
    return describe(await rotate_secret(store, endpoint), with_secret=True)


@router.post("/webhooks/{endpoint_id}/replay")
async def replay_webhook(
    ctx: Ctx, caller: Caller, endpoint_id: EndpointId, body: ReplayIn
) -> dict[str, Any]:
    """Send the endpoint its events from `from_seq` on again."""
    store = ctx.service.store
    endpoint = await found_endpoint(store, endpoint_id, owner_id=_scope(caller))
    return describe(await replay_endpoint(store, endpoint, from_seq=body.from_seq))


@router.post("/webhooks/{endpoint_id}/enable")
async def enable_webhook(ctx: Ctx, caller: Caller, endpoint_id: EndpointId) -> dict[str, Any]:
    """Enable an endpoint disabled by failures; it resumes at its cursor."""
    store = ctx.service.store
    endpoint = await found_endpoint(store, endpoint_id, owner_id=_scope(caller))
    return describe(await enable_endpoint(store, endpoint))


@router.get("/webhooks/{endpoint_id}/deliveries")
async def webhook_deliveries(
    ctx: Ctx,
    caller: Caller,
    endpoint_id: EndpointId,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """The endpoint's latest delivery attempts, newest first."""
    store = ctx.service.store
    endpoint = await found_endpoint(store, endpoint_id, owner_id=_scope(caller))
    return [describe_delivery(d) for d in await store.webhook_deliveries(endpoint.id, limit=limit)]
