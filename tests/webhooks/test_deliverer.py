"""The deliverer against a real HTTP receiver on loopback: order, signatures, retries, the
delivery log, disabling, replay, owner scoping and the SSRF guard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from svix.webhooks import Webhook

from tbledger.client import verify_webhook
from tbledger.ids import new_id
from tbledger.limits import WEBHOOK_BATCH_EVENTS_MAX
from tbledger.model import AccountRecord, EventKind, NewAuditEvent, WebhookEndpoint
from tbledger.store import Store
from tbledger.webhooks.deliverer import Deliverer, DeliveryOptions
from tbledger.webhooks.manage import (
    create_endpoint,
    enable_endpoint,
    replay_endpoint,
    rotate_secret,
)
from tests.support.records import intent
from tests.webhooks.receiver import Receiver

FAST = DeliveryOptions(
    allow_private=True,
    poll_s=0.02,
    backoff_base_s=0.01,
    backoff_cap_s=0.03,
    timeout_s=0.3,
    lease_s=2.0,
)


async def accounts(store: Store) -> tuple[AccountRecord, AccountRecord]:
    alice = AccountRecord(id=new_id(), account_type="user", ledger=1, code=1, owner_id="alice")
    bob = AccountRecord(id=new_id(), account_type="user", ledger=1, code=1, owner_id="bob")
    await store.create_accounts([alice, bob])
    return alice, bob


async def transfers(store: Store, debit: int, credit: int, count: int) -> list[int]:
    intents = [intent(debit_account_id=debit, credit_account_id=credit) for _ in range(count)]
    await store.insert_intents(intents)
    await store.append_events(
        [NewAuditEvent(kind=EventKind.POSTED, transfer_id=i.id) for i in intents]
    )
    return [i.id for i in intents]


async def deliver_until(
    store: Store,
    check: Callable[[], Awaitable[bool]],
    options: DeliveryOptions = FAST,
    timeout_s: float = 10.0,
) -> None:
    """Run a deliverer until `check` holds (then stop it gracefully)."""
    deliverer = Deliverer(store, options)
    deliverer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not await check():
            assert time.monotonic() < deadline, "the deliverer did not get there in time"
            await asyncio.sleep(0.02)
    finally:
        await deliverer.stop()


async def wait_for_cursor(store: Store, endpoint: WebhookEndpoint, seq: int) -> None:
    async def reached() -> bool:
        return (await reloaded(store, endpoint)).cursor >= seq

    await deliver_until(store, reached)


def received(receiver: Receiver, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(receiver.received) >= count

    return check


async def reloaded(store: Store, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    found = await store.get_webhook_endpoint(endpoint.id)
    assert found is not None
    return found


async def test_events_arrive_in_order_signed_and_the_cursor_follows(
    store: Store, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(store, url=receiver.url, owner_id=None, cursor=0)
    alice, bob = await accounts(store)
    await transfers(store, alice.id, bob.id, 5)
    latest = await store.latest_event_seq()
    await wait_for_cursor(store, endpoint, latest)
    assert [r.seq for r in receiver.received] == list(range(1, latest + 1))
    for r in receiver.received:
        verify_webhook(r.body, r.headers, endpoint.secret)
        Webhook(endpoint.secret).verify(r.body, r.headers)
        assert r.headers["webhook-id"] == f"evt_{r.seq}"
    log = await store.webhook_deliveries(endpoint.id, limit=100)
    assert {(d.status_code, d.attempt, d.error) for d in log} == {(200, 1, None)}


async def test_a_new_endpoint_starts_at_the_end_and_a_rotation_signs_with_both(
    store: Store, receiver: Receiver
) -> None:
    alice, bob = await accounts(store)
    endpoint = await create_endpoint(store, url=receiver.url, owner_id=None)
    rotated = await rotate_secret(store, endpoint)
    await transfers(store, alice.id, bob.id, 1)
    await deliver_until(store, received(receiver, 2))
    assert [r.seq for r in receiver.received] == [3, 4]
    for r in receiver.received:
        assert len(r.headers["webhook-signature"].split(" ")) == 2
        verify_webhook(r.body, r.headers, rotated.secret)
        verify_webhook(r.body, r.headers, endpoint.secret)


async def test_failures_and_timeouts_are_retried_and_logged(
    store: Store, receiver: Receiver
) -> None:
    answers = {1: (500, 0.0, {}), 2: (200, 1.0, {}), 3: (503, 0.0, {})}
    receiver.answer = lambda n: answers.get(n, (200, 0.0, {}))
    endpoint = await create_endpoint(store, url=receiver.url, owner_id=None, cursor=0)
    await accounts(store)
    await wait_for_cursor(store, endpoint, 2)
    # The first event failed three times (500, a timeout, 503), then both arrived in order.
    assert [r.seq for r in receiver.received] == [1, 1, 1, 1, 2]
    log = sorted(await store.webhook_deliveries(endpoint.id, limit=100), key=lambda d: d.seq or 0)
    assert [(d.event_seq, d.attempt, d.status_code, d.error) for d in log] == [
        (1, 1, 500, "HTTP 500"),
        (1, 2, None, "timeout"),
        (1, 3, 503, "HTTP 503"),
        (1, 4, 200, None),
        (2, 1, 200, None),
    ]
    assert log[1].latency_ms >= 250
    found = await reloaded(store, endpoint)
    assert (found.cursor, found.failure_count, found.enabled) == (2, 0, True)


async def test_an_endpoint_is_disabled_after_n_failures_and_can_be_enabled(
    store: Store, receiver: Receiver
) -> None:
    receiver.answer = lambda n: (500, 0.0, {})
    endpoint = await create_endpoint(store, url=receiver.url, owner_id=None, cursor=0)
    await accounts(store)
    options = replace(FAST, failures_max=3)

    async def disabled() -> bool:
        return not (await reloaded(store, endpoint)).enabled

    await deliver_until(store, disabled, options)
    found = await reloaded(store, endpoint)
    assert (found.enabled, found.failure_count, found.cursor) == (False, 3, 0)
    assert found.disabled_reason == "3 consecutive failed deliveries"
    assert len(receiver.received) == 3
    receiver.answer = lambda n: (200, 0.0, {})
    await enable_endpoint(store, found)
    await wait_for_cursor(store, endpoint, 2)
    assert [r.seq for r in receiver.received] == [1, 1, 1, 1, 2]


async def test_replay_sends_the_events_again_from_a_seq(store: Store, receiver: Receiver) -> None:
    endpoint = await create_endpoint(store, url=receiver.url, owner_id=None, cursor=0)
    alice, bob = await accounts(store)
    await transfers(store, alice.id, bob.id, 2)
    await wait_for_cursor(store, endpoint, 6)
    await replay_endpoint(store, await reloaded(store, endpoint), from_seq=4)
    await wait_for_cursor(store, endpoint, 6)
    assert [r.seq for r in receiver.received] == [1, 2, 3, 4, 5, 6, 4, 5, 6]


async def test_an_owner_endpoint_sees_only_its_owners_events(
    store: Store, receiver: Receiver
) -> None:
    alice, bob = await accounts(store)
    endpoint = await create_endpoint(store, url=receiver.url, owner_id="bob", cursor=0)
    carol = AccountRecord(id=new_id(), account_type="user", ledger=1, code=1, owner_id="carol")
    await store.create_accounts([carol])
    await transfers(store, alice.id, bob.id, 1)
    await transfers(store, alice.id, carol.id, 1)
    latest = await store.latest_event_seq()
    await wait_for_cursor(store, endpoint, latest)
    # Bob's account, then the submitted and posted events of the transfer to him; nothing of
    # Alice's account or of the transfer to Carol.
    assert [r.seq for r in receiver.received] == [2, 4, 5]


async def test_a_redirect_is_a_failure_and_is_not_followed(
    store: Store, receiver: Receiver
) -> None:
    receiver.answer = lambda n: (302, 0.0, {"Location": receiver.url + "/elsewhere"})
    endpoint = await create_endpoint(store, url=receiver.url, owner_id=None, cursor=0)
    await accounts(store)
    await deliver_until(store, received(receiver, 2))
    assert all(r.seq == 1 for r in receiver.received)
    log = await store.webhook_deliveries(endpoint.id, limit=100)
    assert {(d.status_code, d.error) for d in log} == {(302, "redirect refused")}


async def test_loopback_and_unlisted_hosts_are_refused_without_a_request(
    store: Store, receiver: Receiver
) -> None:
    endpoint = await create_endpoint(store, url=receiver.url, owner_id=None, cursor=0)
    await accounts(store)
    for change, error in (
        ({"allow_private": False}, "non-public address"),
        ({"allowed_hosts": ("hooks.example.com",)}, "not in the allowed webhook hosts"),
    ):
        options = replace(FAST, **change)

        async def logged(error: str = error) -> bool:
            log = await store.webhook_deliveries(endpoint.id, limit=100)
            return any(error in (d.error or "") for d in log)

        await deliver_until(store, logged, options)
    assert receiver.received == []


async def test_a_full_page_is_followed_at_once(store: Store, receiver: Receiver) -> None:
    # The poll interval is for an endpoint with nothing new; a backlog of several pages is
    # delivered without waiting it between pages.
    endpoint = await create_endpoint(store, url=receiver.url, owner_id=None, cursor=0)
    alice, bob = await accounts(store)
    await transfers(store, alice.id, bob.id, 2 * WEBHOOK_BATCH_EVENTS_MAX + 10)
    latest = await store.latest_event_seq()
    await deliver_until(
        store, received(receiver, latest), replace(FAST, poll_s=30.0), timeout_s=20.0
    )
    assert [r.seq for r in receiver.received] == list(range(1, latest + 1))
    assert (await reloaded(store, endpoint)).cursor == latest
