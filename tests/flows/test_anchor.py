"""Anchor authorizations: a hold on user funds, recorded on the obligation ledger as well.

An authorization is two linked pending transfers with one timeout: user -> anchor on USD, and
buffer -> anchor on the obligation ledger. Fulfillment posts both (all or part); release voids
both; a timeout expires both in the engine. Release and timeout both read as ANCHOR_EXPIRY in the
audit trail.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import tigerbeetle as tb

from tbledger.errors import (
    AccountFrozenError,
    AccountNotFoundError,
    AmountError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    TransferFailedError,
    UnknownLedgerError,
    UnknownReferenceError,
    ValidationError,
)
from tbledger.flows import AnchorAuthorization, AnchorState
from tbledger.store import EventKind
from tests.flows.conftest import USD, World

GROCERY = 1001


async def anchors(world: World) -> tuple[int, int]:
    systems = await world.spend.ensure_system_accounts(["USD", "GROCERY_OBLIGATION"])
    fiat, obligation = systems[USD].anchor, systems[GROCERY].anchor
    assert fiat is not None and obligation is not None
    return fiat, obligation


async def authorize(world: World, amount: int = 3_000, **kw: object) -> AnchorAuthorization:
    kw.setdefault("obligation", "grocery")
    kw.setdefault("timeout_s", 60)
    return await world.spend.authorize_anchor(user=world.alice, amount=amount, **kw)  # type: ignore[arg-type]


async def test_an_authorization_holds_funds_and_records_the_obligation(world: World) -> None:
    auth = await authorize(world)
    assert (auth.ledger, auth.obligation_ledger, auth.amount, auth.timeout_s) == (
        USD,
        GROCERY,
        3_000,
        60,
    )
    alice = await world.balance(world.alice)
    assert (alice.posted, alice.held, alice.available) == (10_000, 3_000, 7_000)
    fiat, obligation = await anchors(world)
    assert (await world.balance(fiat)).credits_pending == 3_000
    assert (await world.balance(obligation)).credits_pending == 3_000
    holds = await world.client.lookup_transfers([auth.hold_id, auth.obligation_hold_id])
    assert [(t.ledger, t.timeout, t.code) for t in holds] == [(USD, 60, 10), (GROCERY, 60, 10)]
    assert all(t.flags & tb.TransferFlags.PENDING for t in holds)
    assert (await world.spend.anchor_status(auth)).state is AnchorState.AUTHORIZED


async def test_obligation_ledgers_are_named_by_number_name_or_short_name(world: World) -> None:
    for obligation, ledger in [(1002, 1002), ("FUEL_OBLIGATION", 1003), ("Utility", 1002)]:
        auth = await authorize(world, 10, obligation=obligation)
        assert auth.obligation_ledger == ledger


async def test_a_full_fulfillment_posts_both_holds(world: World) -> None:
    auth = await authorize(world)
    done = await world.spend.fulfill_anchor(authorization=auth)
    assert (done.amount, done.released, done.payment_id) == (3_000, 0, auth.payment_id)
    assert (await world.balance(world.alice)).posted == 7_000
    fiat, obligation = await anchors(world)
    assert (await world.balance(fiat)).credits_posted == 3_000
    assert (await world.balance(obligation)).credits_posted == 3_000
    status = await world.spend.anchor_status(auth.hold_id)
    assert (status.state, status.transfer_code) == (AnchorState.FULFILLED, "ANCHOR_FULFILLMENT")
    legs = await world.service.get_transfers_by_event_id(done.event_id)
    assert {leg.control["transfer_code"] for leg in legs} == {"ANCHOR_FULFILLMENT"}


async def test_a_partial_fulfillment_posts_part_and_releases_the_rest(world: World) -> None:
    auth = await authorize(world)
    done = await world.spend.fulfill_anchor(
        authorization=auth.obligation_hold_id, amount=Decimal("12.34")
    )
    assert (done.amount, done.released) == (1_234, 1_766)
    alice = await world.balance(world.alice)
    assert (alice.posted, alice.held) == (10_000 - 1_234, 0)
    _, obligation = await anchors(world)
    assert (await world.balance(obligation)).credits_posted == 1_234
    with pytest.raises(TransferFailedError) as caught:
        await world.spend.fulfill_anchor(authorization=auth, amount=1)
    assert caught.value.code == "pending_transfer_already_posted"


async def test_an_explicit_release_voids_both_and_reads_as_anchor_expiry(world: World) -> None:
    auth = await authorize(world)
    released = await world.spend.release_anchor(authorization=auth)
    assert released.amount == 3_000
    alice = await world.balance(world.alice)
    assert (alice.available, alice.held) == (10_000, 0)
    status = await world.spend.anchor_status(auth)
    assert (status.state, status.transfer_code) == (AnchorState.RELEASED, "ANCHOR_EXPIRY")
    for hold_id in (auth.hold_id, auth.obligation_hold_id):
        audit = await world.service.get_transfer_audit(hold_id)
        assert audit[-1].kind is EventKind.VOIDED
    voids = await world.service.get_transfers_by_event_id(released.event_id)
    assert [(v.control["transfer_code"], v.control["reason"]) for v in voids] == [
        ("ANCHOR_EXPIRY", "released"),
        ("ANCHOR_EXPIRY", "released"),
    ]


async def test_a_timeout_expires_both_holds_and_reads_as_anchor_expiry(world: World) -> None:
    auth = await authorize(world, timeout_s=5)
    world.clock.advance(6)
    assert await world.spend.expire_holds() == 2
    status = await world.spend.anchor_status(auth)
    assert (status.state, status.transfer_code) == (AnchorState.EXPIRED, "ANCHOR_EXPIRY")
    # The audit trail itself names the timeout ANCHOR_EXPIRY on both holds.
    for hold_id in (auth.hold_id, auth.obligation_hold_id):
        last = (await world.service.get_transfer_audit(hold_id))[-1]
        assert (last.kind, last.detail.get("transfer_code")) == (EventKind.EXPIRED, "ANCHOR_EXPIRY")
    assert (await world.balance(world.alice)).available == 10_000
    _, obligation = await anchors(world)
    assert (await world.balance(obligation)).credits_pending == 0
    with pytest.raises(TransferFailedError) as caught:
        await world.spend.fulfill_anchor(authorization=auth)
    assert caught.value.code == "pending_transfer_expired"


async def test_an_authorization_beyond_the_available_balance_is_refused(world: World) -> None:
    await authorize(world, 6_000)
    with pytest.raises(InsufficientBalanceError) as caught:
        await authorize(world, 4_001, event_id="too-much")
    assert (caught.value.available, caught.value.requested) == (4_000, 4_001)
    _, obligation = await anchors(world)
    assert (await world.balance(obligation)).credits_pending == 6_000  # nothing half-recorded
    refused = await world.service.get_transfers_by_event_id("too-much")
    with pytest.raises(UnknownReferenceError) as status:
        await world.spend.anchor_status(refused[0].id)
    assert status.value.code == "authorization_refused"


async def test_a_frozen_user_cannot_authorize_or_be_charged(world: World) -> None:
    auth = await authorize(world)
    await world.freeze(world.alice)
    with pytest.raises(AccountFrozenError):
        await authorize(world)
    with pytest.raises(AccountFrozenError):
        await world.spend.fulfill_anchor(authorization=auth)
    # Releasing gives the funds back even to a frozen account.
    await world.spend.release_anchor(authorization=auth)
    assert (await world.balance(world.alice)).held == 0


async def test_unknown_users_and_authorizations_are_refused(world: World) -> None:
    with pytest.raises(AccountNotFoundError):
        await world.spend.authorize_anchor(
            user=tb.id(), amount=1, obligation="grocery", timeout_s=5
        )
    deposit = await world.spend.deposit(account=world.bob, amount=1, ledger="USD")
    for reference in (tb.id(), deposit.transfer_ids[0]):
        with pytest.raises(UnknownReferenceError):
            await world.spend.fulfill_anchor(authorization=reference)
        with pytest.raises(UnknownReferenceError):
            await world.spend.release_anchor(authorization=reference)


@pytest.mark.parametrize("amount", [0, -1, 0.5, "1.001", Decimal("1.001"), "10", True])
async def test_bad_amounts_are_refused_before_anything_is_written(
    world: World, amount: object
) -> None:
    auth = await authorize(world)
    before = await world.intents()
    with pytest.raises(AmountError):
        await authorize(world, amount)  # type: ignore[arg-type]
    with pytest.raises(AmountError):
        await world.spend.fulfill_anchor(authorization=auth, amount=amount)  # type: ignore[arg-type]
    with pytest.raises(AmountError):
        await world.spend.fulfill_anchor(authorization=auth, amount=3_001)  # more than authorized
    assert await world.intents() == before


async def test_bad_timeouts_and_ledgers_are_refused_before_anything_is_written(
    world: World,
) -> None:
    before = await world.intents()
    for timeout in (0, -1, 1.5, True, 2**32):
        with pytest.raises(ValidationError):
            await authorize(world, timeout_s=timeout)
    with pytest.raises(UnknownLedgerError):
        await authorize(world, obligation="bakery")
    with pytest.raises(ValidationError):
        await authorize(world, obligation="USD")
    assert await world.intents() == before


async def test_replayed_authorizations_and_fulfillments_move_money_once(world: World) -> None:
    first = await authorize(world, idempotency_key="a-1")
    again = await authorize(world, idempotency_key="a-1")
    assert again.replayed and (again.hold_id, again.obligation_hold_id) == (
        first.hold_id,
        first.obligation_hold_id,
    )
    assert (await world.balance(world.alice)).held == 3_000
    done = await world.spend.fulfill_anchor(
        authorization=first, amount=1_000, idempotency_key="f-1"
    )
    redone = await world.spend.fulfill_anchor(
        authorization=first, amount=1_000, idempotency_key="f-1"
    )
    assert redone.replayed and redone.transfer_ids == done.transfer_ids
    assert (await world.balance(world.alice)).posted == 9_000
    with pytest.raises(IdempotencyConflictError):
        await world.spend.fulfill_anchor(authorization=first, amount=999, idempotency_key="f-1")


async def test_a_replayed_release_voids_once(world: World) -> None:
    auth = await authorize(world)
    first = await world.spend.release_anchor(authorization=auth, idempotency_key="r-1")
    again = await world.spend.release_anchor(authorization=auth, idempotency_key="r-1")
    assert again.replayed and again.transfer_ids == first.transfer_ids
