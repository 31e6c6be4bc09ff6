"""Managing webhook endpoints over the store: create, rotate, replay, enable, delete.

The API and the command line call these, never the store's webhook methods directly, so every
shell checks the same things: the URL passes the SSRF guard's static checks (scheme, shape,
allowlist) when it is registered, as well as on every delivery; a subscription's values are
bounded; a new endpoint starts at the end of the audit log (it is sent what happens from now on;
`replay` sends older events); a rotation keeps the previous secret signing for a grace period.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tbledger.errors import LimitExceededError, RecordNotFoundError, ValidationError
from tbledger.limits import STORE_TEXT_CHARS_MAX, U32_MAX, WEBHOOK_FILTER_VALUES_MAX
from tbledger.model import EventKind, WebhookDelivery, WebhookEndpoint, WebhookSubscription
from tbledger.store import Store, StoreOptions
from tbledger.store.records import is_unicode_text
from tbledger.webhooks.policy import check_url
from tbledger.webhooks.signing import new_secret

_T = TypeVar("_T")

__all__ = [
    "ROTATION_GRACE_S",
    "create_endpoint",
    "delete_endpoint",
    "describe",
    "describe_delivery",
    "enable_endpoint",
    "found_endpoint",
    "in_store",
    "public",
    "replay_endpoint",
    "rotate_secret",
    "subscription_of",
]

# Why: a day is enough for a receiver to deploy the new secret; until then deliveries carry a
# signature with each secret.
ROTATION_GRACE_S = 24 * 3600


def _check_text(name: str, text: str) -> None:
    # Both databases refuse NUL and lone surrogates in text; refused here with a clear error.
    if "\x00" in text or not is_unicode_text(text):
        raise ValidationError(f"{name} cannot hold NUL or lone surrogates")


def subscription_of(
    *,
    kinds: Iterable[str] = (),
    ledgers: Iterable[int] = (),
    owners: Iterable[str] = (),
    codes: Iterable[int] = (),
) -> WebhookSubscription:
    """A checked subscription: known kinds, bounded lists of ledgers, owners and codes."""
    kind_list, ledger_list, owner_list = list(kinds), list(ledgers), list(owners)
    code_list = list(codes)
    for name, count in (
        ("kinds", len(kind_list)),
        ("ledgers", len(ledger_list)),
        ("owners", len(owner_list)),
        ("codes", len(code_list)),
    ):
        if count > WEBHOOK_FILTER_VALUES_MAX:
            raise LimitExceededError(
                f"at most {WEBHOOK_FILTER_VALUES_MAX} {name} per subscription "
                "(WEBHOOK_FILTER_VALUES_MAX)"
            )
    try:
        parsed_kinds = tuple(EventKind(k) for k in kind_list)
    except ValueError as exc:
        raise ValidationError(f"unknown event kind: {exc}") from None
    for owner in owner_list:
        if not isinstance(owner, str) or not 1 <= len(owner) <= STORE_TEXT_CHARS_MAX:
            raise ValidationError("an owner id is 1 to 255 characters")
        _check_text("an owner id", owner)
    for number in (*ledger_list, *code_list):
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= U32_MAX:
            raise ValidationError("ledgers and codes are ints from 0 to 2^32-1")
    return WebhookSubscription(
        kinds=parsed_kinds,
        ledgers=tuple(int(v) for v in ledger_list),
        owners=tuple(owner_list),
        codes=tuple(int(v) for v in code_list),
    )


async def create_endpoint(
    store: Store,
    *,
    url: str,
    owner_id: str | None,
    description: str = "",
    subscription: WebhookSubscription | None = None,
    allowed_hosts: Iterable[str] = (),
    cursor: int | None = None,
) -> WebhookEndpoint:
    """Register an endpoint with a fresh secret, sent events after `cursor` (default: the end
    of the log now)."""
    check_url(url, allowed_hosts=allowed_hosts)
    _check_text("a webhook URL", url)
    _check_text("a description", description)
    if owner_id is not None:
        _check_text("an owner id", owner_id)
    if len(description) > STORE_TEXT_CHARS_MAX:
        raise ValidationError(f"a description is at most {STORE_TEXT_CHARS_MAX} characters")
    start = await store.latest_event_seq() if cursor is None else cursor
    endpoint = WebhookEndpoint(
        id="we_" + secrets.token_hex(8),
        url=url,
        description=description,
        owner_id=owner_id,
        subscription=subscription or WebhookSubscription(),
        secret=new_secret(),
        cursor=start,
    )
    return await store.create_webhook_endpoint(endpoint)


async def rotate_secret(
    store: Store, endpoint: WebhookEndpoint, *, grace_s: float = ROTATION_GRACE_S
) -> WebhookEndpoint:
    """A new secret; the old one keeps signing (as the second signature) for `grace_s`."""
    until = datetime.now(UTC) + timedelta(seconds=grace_s)
    return await store.update_webhook_endpoint(
        endpoint.id,
        secret=new_secret(),
        previous_secret=endpoint.secret,
        previous_secret_until=until,
    )


async def replay_endpoint(
    store: Store, endpoint: WebhookEndpoint, *, from_seq: int
) -> WebhookEndpoint:
    """Send the endpoint every event from `from_seq` on again (the cursor goes back before it)."""
    if isinstance(from_seq, bool) or not isinstance(from_seq, int) or from_seq < 1:
        raise ValidationError("a replay starts at an audit seq of 1 or more")
    return await store.update_webhook_endpoint(endpoint.id, cursor=from_seq - 1)


async def enable_endpoint(store: Store, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Enable an endpoint again, with its failure count cleared; it resumes at its cursor."""
    return await store.update_webhook_endpoint(
        endpoint.id, enabled=True, disabled_reason=None, failure_count=0
    )


async def delete_endpoint(store: Store, endpoint: WebhookEndpoint) -> None:
    if not await store.delete_webhook_endpoint(endpoint.id):
        raise RecordNotFoundError(f"no webhook endpoint {endpoint.id!r}")


def public(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """The endpoint without its secrets (what listings show; a secret is shown once, when
    created or rotated)."""
    return replace(endpoint, secret="", previous_secret=None)


async def found_endpoint(
    store: Store, endpoint_id: str, *, owner_id: str | None
) -> WebhookEndpoint:
    """The endpoint `endpoint_id` as a key of `owner_id` may see it (None: an admin key, which
    sees every endpoint); another owner's endpoint is as missing as one that does not exist."""
    endpoint = await store.get_webhook_endpoint(endpoint_id)
    if endpoint is None or (owner_id is not None and endpoint.owner_id != owner_id):
        raise RecordNotFoundError(f"no webhook endpoint {endpoint_id!r}")
    return endpoint


def describe(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    """An endpoint as a JSON document (the API's and the command line's); the secret only when
    it was just made (created or rotated)."""
    sub = endpoint.subscription
    document: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "owner_id": endpoint.owner_id,
        "subscription": {
            "kinds": [str(k) for k in sub.kinds],
            "ledgers": list(sub.ledgers),
            "owners": list(sub.owners),
            "codes": list(sub.codes),
        },
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failure_count": endpoint.failure_count,
        "cursor": endpoint.cursor,
        "rotating_until": (
            None
            if endpoint.previous_secret_until is None
            else endpoint.previous_secret_until.isoformat()
        ),
        "created_at": None if endpoint.created_at is None else endpoint.created_at.isoformat(),
    }
    if with_secret:
        document["secret"] = endpoint.secret
    return document


def describe_delivery(delivery: WebhookDelivery) -> dict[str, Any]:
    document = asdict(delivery)
    document["attempted_at"] = delivery.attempted_at.isoformat()
    return document


async def in_store(
    database_url: str,
    work: Callable[[Store], Awaitable[_T]],
    *,
    options: StoreOptions | None = None,
) -> _T:
    """Open the store at `database_url` (at the latest schema), do `work`, close it: the
    command line's door to webhook endpoints when no service is running."""
    store = await Store.connect(database_url, require_head=True, options=options)
    try:
        return await work(store)
    finally:
        await store.close()
