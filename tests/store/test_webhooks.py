"""The store's webhook tables: endpoints and cursors, the delivery log, leases, and the events an
endpoint is sent (its subscription and owner), on each backend (PostgreSQL as the app role)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tbledger.errors import LimitExceededError
from tbledger.ids import new_id
from tbledger.limits import WEBHOOK_ENDPOINTS_PER_OWNER_MAX
from tbledger.model import (
    AccountRecord,
    EventKind,
    NewAuditEvent,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSubscription,
)
from tbledger.store import Store
from tbledger.store.tables import webhook_deliveries
from tests.support.records import intent


def endpoint(endpoint_id: str = "we_1", **fields: object) -> WebhookEndpoint:
    values: dict[str, object] = {
        "id": endpoint_id,
        "url": "http://127.0.0.1:9/",
        "secret": "whsec_",
    }
    values.update(fields)
    return WebhookEndpoint(**values)  # type: ignore[arg-type]


async def test_an_endpoint_round_trips_with_its_subscription(store: Store) -> None:
    sub = WebhookSubscription(kinds=(EventKind.POSTED,), ledgers=(1, 2), owners=("a",), codes=(7,))
    created = await store.create_webhook_endpoint(endpoint(owner_id="alice", subscription=sub))
    assert created.subscription == sub
    assert await store.get_webhook_endpoint("we_1") == created
    assert await store.list_webhook_endpoints(owner_id="alice") == [created]
    assert await store.list_webhook_endpoints() == []
    assert await store.list_webhook_endpoints(every_owner=True) == [created]
    assert await store.delete_webhook_endpoint("we_1")
    assert not await store.delete_webhook_endpoint("we_1")


async def test_endpoints_per_owner_are_limited(store: Store) -> None:
    for n in range(WEBHOOK_ENDPOINTS_PER_OWNER_MAX):
        await store.create_webhook_endpoint(endpoint(f"we_{n}", owner_id="alice"))
    with pytest.raises(LimitExceededError, match="WEBHOOK_ENDPOINTS_PER_OWNER_MAX"):
        await store.create_webhook_endpoint(endpoint("we_x", owner_id="alice"))
    await store.create_webhook_endpoint(endpoint("we_bob", owner_id="bob"))


async def test_the_cursor_only_moves_forward_and_not_across_a_replay(store: Store) -> None:
    await store.create_webhook_endpoint(endpoint())
    assert await store.advance_webhook_cursor("we_1", generation=0, seq=5, delivered=True)
    assert not await store.advance_webhook_cursor("we_1", generation=0, seq=3, delivered=True)
    replayed = await store.update_webhook_endpoint("we_1", cursor=1)
    assert (replayed.cursor, replayed.generation) == (1, 1)
    # An attempt that began before the replay cannot move the cursor past the replayed events.
    assert not await store.advance_webhook_cursor("we_1", generation=0, seq=9, delivered=True)
    assert await store.advance_webhook_cursor("we_1", generation=1, seq=2, delivered=True)


async def test_failures_disable_the_endpoint_at_the_maximum(store: Store) -> None:
    await store.create_webhook_endpoint(endpoint())
    for n in range(1, 3):
        after = await store.count_webhook_failure("we_1", failures_max=3, reason="down")
        assert after is not None
        assert (after.failure_count, after.enabled) == (n, True)
    after = await store.count_webhook_failure("we_1", failures_max=3, reason="down")
    assert after is not None
    assert (after.failure_count, after.enabled, after.disabled_reason) == (3, False, "down")
    assert await store.advance_webhook_cursor("we_1", generation=0, seq=1, delivered=True)
    found = await store.get_webhook_endpoint("we_1")
    assert found is not None
    assert found.failure_count == 0


async def test_the_delivery_log_is_newest_first_and_append_only(store: Store) -> None:
    at = datetime.now(UTC)
    for attempt in (1, 2):
        await store.append_webhook_delivery(
            WebhookDelivery(
                endpoint_id="we_1",
                event_seq=4,
                attempt=attempt,
                status_code=500,
                latency_ms=3,
                error="HTTP 500",
                attempted_at=at,
            )
        )
    found = await store.webhook_deliveries("we_1", limit=10)
    assert [d.attempt for d in found] == [2, 1]
    assert found[0].seq is not None
    with pytest.raises(sa.exc.DBAPIError):
        async with store.engine.begin() as conn:
            await conn.execute(sa.delete(webhook_deliveries))


async def test_one_lease_holder_at_a_time_until_it_expires(store: Store) -> None:
    now = datetime.now(UTC)
    soon = now + timedelta(seconds=30)
    assert await store.acquire_webhook_lease("we_1", holder="a", until=soon, now=now)
    assert not await store.acquire_webhook_lease("we_1", holder="b", until=soon, now=now)
    assert await store.acquire_webhook_lease("we_1", holder="a", until=soon, now=now)
    later = soon + timedelta(seconds=1)
    assert await store.acquire_webhook_lease("we_1", holder="b", until=later, now=later)
    assert not await store.acquire_webhook_lease("we_1", holder="a", until=later, now=later)
    await store.release_webhook_lease("we_1", holder="b")
    assert await store.acquire_webhook_lease("we_1", holder="a", until=later, now=later)


async def test_an_endpoint_sees_its_owners_and_subscribed_events_only(store: Store) -> None:
    alice = AccountRecord(id=new_id(), account_type="user", ledger=1, code=1, owner_id="alice")
    bob = AccountRecord(id=new_id(), account_type="user", ledger=2, code=2, owner_id="bob")
    await store.create_accounts([alice, bob])
    to_bob = intent(debit_account_id=alice.id, credit_account_id=bob.id, ledger=1)
    bobs = intent(debit_account_id=bob.id, credit_account_id=bob.id, ledger=2, code=2)
    await store.insert_intents([to_bob, bobs])
    await store.append_events([NewAuditEvent(kind=EventKind.POSTED, transfer_id=to_bob.id)])
    latest = await store.latest_event_seq()
    assert latest == 5

    async def seen(found: WebhookEndpoint, limit: int = 100) -> list[tuple[str, int | None]]:
        events, end = await store.webhook_events_after(found, limit=limit)
        assert end == min(found.cursor + limit, latest)
        return [(str(e.kind), e.transfer_id or e.account_id) for e in events]

    created = EventKind.ACCOUNT_CREATED.value
    assert await seen(endpoint(owner_id="alice")) == [
        (created, alice.id),
        ("submitted", to_bob.id),
        ("posted", to_bob.id),
    ]
    assert await seen(endpoint(owner_id="bob")) == [
        (created, bob.id),
        ("submitted", to_bob.id),
        ("submitted", bobs.id),
        ("posted", to_bob.id),
    ]
    only_posted = WebhookSubscription(kinds=(EventKind.POSTED,))
    assert await seen(endpoint(subscription=only_posted)) == [("posted", to_bob.id)]
    ledger_2 = WebhookSubscription(ledgers=(2,))
    assert await seen(endpoint(subscription=ledger_2)) == [
        (created, bob.id),
        ("submitted", bobs.id),
    ]
    code_2 = WebhookSubscription(codes=(2,), owners=("bob",))
    assert await seen(endpoint(subscription=code_2)) == [(created, bob.id), ("submitted", bobs.id)]
    # A page ends where the log was read to, matched or not: the cursor moves past the rest.
    assert await seen(replace(endpoint(owner_id="alice"), cursor=1), limit=1) == []
