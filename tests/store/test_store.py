"""Every Store method, success and failure, on both stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import tigerbeetle

from tbledger.errors import (
    DuplicateRecordError,
    InvalidIdError,
    LimitExceededError,
    RecordNotFoundError,
    StoreError,
    ValidationError,
)
from tbledger.ids import new_id
from tbledger.limits import STORE_BATCH_ROWS_MAX, STORE_PAGE_ROWS_MAX, STORE_TEXT_CHARS_MAX
from tbledger.store import (
    AccountRecord,
    AccountStatus,
    EventKind,
    NewAuditEvent,
    Store,
    TransferIntent,
    request_hash_of,
)
from tests.support.records import intent

U128_MAX = (1 << 128) - 1
U64_MAX = (1 << 64) - 1


def account(**fields: Any) -> AccountRecord:
    values: dict[str, Any] = {"id": new_id(), "account_type": "user", "ledger": 1, "code": 1}
    values.update(fields)
    return AccountRecord(**values)


def event(kind: EventKind, transfer_id: int, **fields: Any) -> NewAuditEvent:
    return NewAuditEvent(kind=kind, transfer_id=transfer_id, **fields)


# Accounts.


async def test_create_and_get_account_round_trips_every_field(store: Store) -> None:
    record = account(
        owner_id="user-1",
        name="treasury-usd",
        ledger=840,
        code=7,
        metadata={"label": "Treasury", "limits": [1, 2], "nested": {"a": None}},
    )
    before = datetime.now(UTC)
    [created] = await store.create_accounts([record])
    assert created.created_at is not None
    assert before - timedelta(seconds=1) <= created.created_at <= datetime.now(UTC)
    got = await store.get_account(record.id)
    assert got == created
    assert got is not None
    assert got.status is AccountStatus.ACTIVE
    assert got.freeze_transfer_id is None
    assert got.created_at is not None and got.created_at.tzinfo is not None


async def test_create_accounts_logs_account_created_events(store: Store) -> None:
    records = [account(), account()]
    await store.create_accounts(records)
    events = await store.events_since(0, 10)
    assert [(e.kind, e.account_id, e.status) for e in events] == [
        (EventKind.ACCOUNT_CREATED, r.id, "active") for r in records
    ]


async def test_create_no_accounts_is_a_no_op(store: Store) -> None:
    assert await store.create_accounts([]) == []
    assert await store.events_since(0, 10) == []


async def test_get_missing_account_is_none(store: Store) -> None:
    assert await store.get_account(new_id()) is None
    assert await store.get_account_by_name("nobody") is None


async def test_duplicate_account_id_fails_the_whole_batch(store: Store) -> None:
    first = account()
    await store.create_accounts([first])
    fresh = account()
    with pytest.raises(DuplicateRecordError) as raised:
        await store.create_accounts([fresh, account(id=first.id)])
    assert raised.value.__cause__ is not None
    assert raised.value.constraint == "pk_accounts"
    assert await store.get_account(fresh.id) is None


async def test_names_are_unique_but_many_accounts_have_none(store: Store) -> None:
    await store.create_accounts([account(name="fees"), account(), account()])
    with pytest.raises(DuplicateRecordError) as raised:
        await store.create_accounts([account(name="fees")])
    assert raised.value.constraint == "ux_accounts_name"
    found = await store.get_account_by_name("fees")
    assert found is not None and found.name == "fees"


async def test_accounts_by_owner_in_id_order(store: Store) -> None:
    records = [account(owner_id="alice") for _ in range(3)] + [account(owner_id="bob")]
    await store.create_accounts(reversed(records))
    alice = await store.get_accounts_by_owner("alice")
    assert [a.id for a in alice] == sorted(r.id for r in records[:3])
    assert await store.get_accounts_by_owner("carol") == []


async def test_accounts_by_owner_refuses_to_truncate(store: Store) -> None:
    await store.create_accounts([account(owner_id="many") for _ in range(3)])
    with pytest.raises(LimitExceededError):
        await store.get_accounts_by_owner("many", limit=2)
    assert len(await store.get_accounts_by_owner("many", limit=3)) == 3


async def test_freeze_unfreeze_and_close_record_status_and_events(store: Store) -> None:
    record = account()
    await store.create_accounts([record])
    hold = new_id()
    frozen = await store.update_account_status(record.id, AccountStatus.FROZEN, hold)
    assert frozen.status is AccountStatus.FROZEN
    assert frozen.freeze_transfer_id == hold
    assert frozen.updated_at is not None and frozen.created_at is not None
    assert frozen.updated_at >= frozen.created_at
    assert await store.get_account(record.id) == frozen

    active = await store.update_account_status(record.id, AccountStatus.ACTIVE)
    assert active.status is AccountStatus.ACTIVE and active.freeze_transfer_id is None
    closing = new_id()
    closed = await store.update_account_status(record.id, AccountStatus.CLOSED, closing)
    assert closed.status is AccountStatus.CLOSED

    changes = [
        (e.status, e.detail)
        for e in await store.events_since(0, 10)
        if e.kind is EventKind.ACCOUNT_STATUS_CHANGED
    ]
    assert changes == [
        ("frozen", {"freeze_transfer_id": f"0x{hold:032x}"}),
        ("active", {"freeze_transfer_id": None}),
        ("closed", {"freeze_transfer_id": f"0x{closing:032x}"}),
    ]


async def test_update_status_of_missing_account_fails_and_logs_nothing(store: Store) -> None:
    with pytest.raises(RecordNotFoundError):
        await store.update_account_status(new_id(), AccountStatus.FROZEN, new_id())
    assert await store.events_since(0, 10) == []


@pytest.mark.parametrize(
    ("status", "with_transfer"),
    [
        (AccountStatus.FROZEN, False),
        (AccountStatus.CLOSED, False),
        (AccountStatus.ACTIVE, True),
        ("melted", False),
    ],
)
async def test_status_must_match_its_closing_transfer(
    store: Store, status: Any, with_transfer: bool
) -> None:
    record = account()
    await store.create_accounts([record])
    with pytest.raises(ValidationError):
        await store.update_account_status(record.id, status, new_id() if with_transfer else None)
    unchanged = await store.get_account(record.id)
    assert unchanged is not None and unchanged.status is AccountStatus.ACTIVE


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"id": -1}, InvalidIdError),
        ({"id": U128_MAX + 1}, InvalidIdError),
        ({"id": "0x1"}, InvalidIdError),
        ({"ledger": 1 << 32}, ValidationError),
        ({"code": 1 << 16}, ValidationError),
        ({"code": True}, ValidationError),
        ({"account_type": ""}, ValidationError),
        ({"name": "n" * (STORE_TEXT_CHARS_MAX + 1)}, LimitExceededError),
        ({"metadata": {"when": datetime.now(UTC)}}, ValidationError),
        ({"metadata": {"blob": "x" * 5000}}, LimitExceededError),
        ({"metadata": {"x": float("nan")}}, ValidationError),
        ({"status": AccountStatus.FROZEN}, ValidationError),
    ],
)
async def test_invalid_accounts_are_refused_before_any_write(
    store: Store, fields: dict[str, Any], error: type[Exception]
) -> None:
    good = account()
    with pytest.raises(error):
        await store.create_accounts([good, account(**fields)])
    assert await store.get_account(good.id) is None


async def test_batches_past_the_limit_are_refused(store: Store) -> None:
    with pytest.raises(LimitExceededError, match="STORE_BATCH_ROWS_MAX"):
        await store.create_accounts(account() for _ in range(STORE_BATCH_ROWS_MAX + 1))
    with pytest.raises(LimitExceededError):
        await store.insert_intents(intent() for _ in range(STORE_BATCH_ROWS_MAX + 1))
    with pytest.raises(LimitExceededError):
        await store.current_status(range(1, STORE_BATCH_ROWS_MAX + 2))


# Transfer intents.


async def test_intent_round_trips_every_engine_field_and_the_context(store: Store) -> None:
    stored = intent(
        debit_account_id=U128_MAX,
        credit_account_id=1 << 64,
        amount=U128_MAX,
        pending_id=new_id(),
        user_data_128=U128_MAX - 1,
        user_data_64=U64_MAX,
        user_data_32=(1 << 32) - 1,
        timeout=(1 << 32) - 1,
        ledger=(1 << 32) - 1,
        code=(1 << 16) - 1,
        flags=int(tigerbeetle.TransferFlags.PENDING | tigerbeetle.TransferFlags.LINKED),
        timestamp=(1 << 63) - 1,
        payment_id="pay-1",
        event_id="evt-1",
        chain_tx_hash="0xabc",
        metadata={"memo": "rent", "amount_text": "12.34"},
    )
    [submitted] = await store.insert_intents([stored])
    got = await store.get_intent(stored.id)
    assert got is not None
    assert got.created_at is not None
    assert replace(got, created_at=None) == stored
    assert got.to_transfer() == stored.to_transfer()
    assert submitted.kind is EventKind.SUBMITTED
    assert submitted.transfer_id == stored.id
    assert submitted.seq > 0


async def test_intent_from_and_to_engine_transfer(store: Store) -> None:
    transfer = tigerbeetle.Transfer(
        id=new_id(),
        debit_account_id=10,
        credit_account_id=11,
        amount=5,
        ledger=1,
        code=2,
        flags=tigerbeetle.TransferFlags.PENDING,
        timeout=60,
    )
    await store.insert_intents([TransferIntent.from_transfer(transfer, event_id="e")])
    got = await store.get_intent(transfer.id)
    assert got is not None
    assert got.to_transfer() == transfer
    assert got.event_id == "e"


async def test_insert_intents_returns_submitted_events_in_input_order(store: Store) -> None:
    batch = [intent() for _ in range(50)]
    events = await store.insert_intents(batch)
    assert [e.transfer_id for e in events] == [i.id for i in batch]
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 50
    assert await store.events_since(0, 100) == events


async def test_get_missing_intent_is_none(store: Store) -> None:
    assert await store.get_intent(new_id()) is None


async def test_duplicate_transfer_id_fails_the_whole_batch(store: Store) -> None:
    first = intent()
    await store.insert_intents([first])
    fresh = intent()
    with pytest.raises(DuplicateRecordError) as raised:
        await store.insert_intents([fresh, intent(id=first.id)])
    assert raised.value.constraint == "pk_transfers"
    assert await store.get_intent(fresh.id) is None
    assert await store.transfer_audit(fresh.id) == []


async def test_intents_may_name_accounts_the_store_does_not_know(store: Store) -> None:
    # The engine decides (debit_account_not_found); the intent and its outcome are still kept.
    unknown = intent(debit_account_id=new_id(), credit_account_id=new_id())
    await store.insert_intents([unknown])
    await store.append_events(
        [event(EventKind.FAILED, unknown.id, status="debit_account_not_found")]
    )
    status = await store.current_status([unknown.id])
    assert status[unknown.id].status == "debit_account_not_found"


async def test_idempotency_key_is_unique_and_found_again(store: Store) -> None:
    first = intent(idempotency_key="order-42")
    await store.insert_intents([first, intent(), intent()])  # keyless intents do not collide
    found = await store.find_by_idempotency_key("order-42")
    assert found is not None and found.id == first.id
    assert found.request_hash == request_hash_of(first)

    retry = intent(idempotency_key="order-42")
    with pytest.raises(DuplicateRecordError) as raised:
        await store.insert_intents([retry])
    assert await store.get_intent(retry.id) is None
    assert raised.value.constraint == "ux_transfers_idempotency_key"
    assert await store.find_by_idempotency_key("order-43") is None


async def test_many_idempotency_keys_are_found_in_one_lookup(store: Store) -> None:
    keyed = [intent(idempotency_key=f"batch-1:{k}") for k in range(STORE_BATCH_ROWS_MAX)]
    await store.insert_intents(keyed)
    await store.insert_intents([intent(idempotency_key="other")])
    asked = [f"batch-1:{k}" for k in range(STORE_BATCH_ROWS_MAX - 1)] + ["missing"]
    found = await store.find_by_idempotency_keys(asked)
    assert len(found) == STORE_BATCH_ROWS_MAX - 1 and "missing" not in found
    assert all(found[i.idempotency_key].id == i.id for i in keyed[:-1] if i.idempotency_key)
    assert found["batch-1:7"].request_hash == request_hash_of(keyed[7])
    assert await store.find_by_idempotency_keys([]) == {}
    with pytest.raises(LimitExceededError):
        await store.find_by_idempotency_keys(f"k{n}" for n in range(STORE_BATCH_ROWS_MAX + 1))


async def test_the_audits_of_many_transfers_in_one_read(store: Store) -> None:
    held, refused, quiet = intent(), intent(), intent()
    await store.insert_intents([held, refused, quiet])
    await store.append_events(
        [
            event(EventKind.PENDING, held.id, status="created"),
            event(EventKind.FAILED, refused.id, status="exceeds_credits"),
            event(EventKind.POSTED, held.id, status="created"),
        ]
    )
    audits = await store.transfer_audits([held.id, refused.id, quiet.id, new_id()])
    assert [e.kind for e in audits[held.id]] == [
        EventKind.SUBMITTED,
        EventKind.PENDING,
        EventKind.POSTED,
    ]
    assert [e.status for e in audits[refused.id]] == [None, "exceeds_credits"]
    assert [e.kind for e in audits[quiet.id]] == [EventKind.SUBMITTED]
    assert len(audits) == 3
    # Nothing is truncated: one event more than the limit is an error.
    with pytest.raises(LimitExceededError):
        await store.transfer_audits([held.id, refused.id], limit=4)


async def test_same_key_different_fields_is_detectable_by_hash(store: Store) -> None:
    original = intent(idempotency_key="k-1", amount=100, metadata={"memo": "a"})
    await store.insert_intents([original])
    stored = await store.find_by_idempotency_key("k-1")
    assert stored is not None
    # A retry mints a new id but asks for the same thing: same hash.
    assert request_hash_of(replace(original, id=new_id())) == stored.request_hash
    assert request_hash_of(replace(original, amount=101)) != stored.request_hash
    assert request_hash_of(replace(original, metadata={"memo": "b"})) != stored.request_hash


async def test_a_given_request_hash_is_kept(store: Store) -> None:
    given = "ab" * 32
    await store.insert_intents([intent(idempotency_key="k-2", request_hash=given)])
    stored = await store.find_by_idempotency_key("k-2")
    assert stored is not None and stored.request_hash == given


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"amount": U128_MAX + 1}, InvalidIdError),
        ({"amount": -1}, InvalidIdError),
        ({"debit_account_id": "12"}, InvalidIdError),
        ({"user_data_64": U64_MAX + 1}, ValidationError),
        ({"user_data_32": 1 << 32}, ValidationError),
        ({"timeout": -1}, ValidationError),
        ({"flags": 1 << 16}, ValidationError),
        ({"timestamp": 1.5}, ValidationError),
        ({"request_hash": "nope"}, ValidationError),
        ({"idempotency_key": "k" * (STORE_TEXT_CHARS_MAX + 1)}, LimitExceededError),
        ({"metadata": ["not", "a", "mapping"]}, ValidationError),
    ],
)
async def test_invalid_intents_are_refused_before_any_write(
    store: Store, fields: dict[str, Any], error: type[Exception]
) -> None:
    good = intent()
    with pytest.raises(error):
        await store.insert_intents([good, intent(**fields)])
    assert await store.get_intent(good.id) is None


async def test_transfers_by_event_id_in_id_order(store: Store) -> None:
    batch = [intent(event_id="evt-9") for _ in range(3)]
    await store.insert_intents([intent(event_id="evt-other"), *reversed(batch)])
    found = await store.transfers_by_event_id("evt-9")
    assert [t.id for t in found] == [i.id for i in batch]
    assert await store.transfers_by_event_id("evt-none") == []
    with pytest.raises(LimitExceededError):
        await store.transfers_by_event_id("evt-9", limit=2)


async def test_a_page_of_an_event_filters_by_owner_in_the_query(store: Store) -> None:
    alice, bob, bob2 = account(owner_id="alice"), account(owner_id="bob"), account(owner_id="bob")
    await store.create_accounts([alice, bob, bob2])
    paid = intent(event_id="evt-1", debit_account_id=alice.id, credit_account_id=bob.id)
    bobs = [
        intent(event_id="evt-1", debit_account_id=bob.id, credit_account_id=bob2.id)
        for _ in range(3)
    ]
    owned_by_bob = [paid, *bobs]
    await store.insert_intents([*bobs, paid, intent(event_id="evt-2", debit_account_id=alice.id)])
    page = store.transfers_by_event_id_page
    assert [i.id for i in await page("evt-1", 10, owner_id="alice")] == [paid.id]
    assert [i.id for i in await page("evt-1", 10, owner_id="bob")] == sorted(
        i.id for i in owned_by_bob
    )
    assert await page("evt-1", 10, owner_id="carol") == []
    everything = sorted(i.id for i in owned_by_bob)
    first = await page("evt-1", 2)
    rest = await page("evt-1", 2, after_id=first[-1].id)
    assert [i.id for i in first + rest] == everything
    assert await page("evt-1", 2, after_id=everything[-1]) == []


# The audit log.


async def test_append_events_returns_them_with_seqs_in_input_order(store: Store) -> None:
    stored = intent()
    [submitted] = await store.insert_intents([stored])
    appended = await store.append_events(
        [
            event(EventKind.OUTCOME_UNKNOWN, stored.id, detail={"deadline_ms": 500}),
            event(EventKind.PENDING, stored.id, status="created", engine_timestamp=U64_MAX),
            event(EventKind.POSTED, stored.id, engine_timestamp=0),
        ]
    )
    assert [e.kind for e in appended] == [
        EventKind.OUTCOME_UNKNOWN,
        EventKind.PENDING,
        EventKind.POSTED,
    ]
    assert [e.seq for e in appended] == sorted(e.seq for e in appended)
    assert appended[0].seq > submitted.seq
    audit = await store.transfer_audit(stored.id)
    assert audit == [submitted, *appended]
    assert audit[2].engine_timestamp == U64_MAX
    assert audit[1].detail == {"deadline_ms": 500}


async def test_append_no_events_is_a_no_op(store: Store) -> None:
    assert await store.append_events([]) == []


async def test_events_for_a_transfer_or_account_not_in_the_store_are_not_checked(
    store: Store,
) -> None:
    # audit_events has no foreign keys (tables.py: the write protocol inserts what an event
    # names first, and the per-row check cost more than the insert), so nothing refuses these.
    transfer_id, account_id = new_id(), new_id()
    appended = await store.append_events(
        [
            event(EventKind.POSTED, transfer_id),
            NewAuditEvent(
                kind=EventKind.ACCOUNT_STATUS_CHANGED, account_id=account_id, status="active"
            ),
        ]
    )
    assert await store.events_since(0, 10) == appended
    assert [(e.transfer_id, e.account_id) for e in appended] == [
        (transfer_id, None),
        (None, account_id),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        NewAuditEvent(kind=EventKind.POSTED),
        NewAuditEvent(kind=EventKind.ACCOUNT_STATUS_CHANGED, transfer_id=1),
        NewAuditEvent(kind="teleported", transfer_id=1),  # type: ignore[arg-type]
        NewAuditEvent(kind=EventKind.POSTED, transfer_id=1, engine_timestamp=U64_MAX + 1),
        NewAuditEvent(kind=EventKind.POSTED, transfer_id=-1),
        NewAuditEvent(kind=EventKind.POSTED, transfer_id=1, detail={"x": {1, 2}}),
    ],
)
async def test_invalid_events_are_refused(store: Store, bad: NewAuditEvent) -> None:
    with pytest.raises(ValidationError):
        await store.append_events([bad])


async def test_transfer_audit_of_unknown_transfer_is_empty(store: Store) -> None:
    assert await store.transfer_audit(new_id()) == []


async def test_current_status_is_the_latest_event(store: Store) -> None:
    held, failed, fresh = intent(), intent(), intent()
    await store.insert_intents([held, failed, fresh])
    await store.append_events(
        [
            event(EventKind.PENDING, held.id, status="created"),
            event(EventKind.FAILED, failed.id, status="exceeds_credits"),
        ]
    )
    await store.append_events([event(EventKind.POSTED, held.id)])
    unknown = new_id()
    status = await store.current_status([held.id, failed.id, fresh.id, unknown, held.id])
    assert {k: (v.kind, v.status) for k, v in status.items()} == {
        held.id: (EventKind.POSTED, None),
        failed.id: (EventKind.FAILED, "exceeds_credits"),
        fresh.id: (EventKind.SUBMITTED, None),
    }
    assert await store.current_status([]) == {}


async def test_a_holds_resolution_is_appended_once(store: Store) -> None:
    hold, other = intent(flags=int(tigerbeetle.TransferFlags.PENDING), timeout=1), intent()
    await store.insert_intents([hold, other])
    await store.append_events([event(EventKind.PENDING, hold.id, status="created")])
    expired = event(EventKind.EXPIRED, hold.id, status="expired", engine_timestamp=7)
    [appended] = await store.append_hold_resolutions([expired, expired])
    assert (appended.kind, appended.transfer_id, appended.engine_timestamp) == (
        EventKind.EXPIRED,
        hold.id,
        7,
    )
    assert appended.seq > 0
    # Whoever comes next finds it resolved: an expiry, or a post recorded late.
    assert await store.append_hold_resolutions([expired]) == []
    assert await store.append_hold_resolutions([event(EventKind.POSTED, hold.id)]) == []
    # Holds already resolved are left out; the others of the same call are appended.
    [posted] = await store.append_hold_resolutions(
        [expired, event(EventKind.POSTED, other.id, detail={"by": "0x1"})]
    )
    assert (posted.transfer_id, dict(posted.detail)) == (other.id, {"by": "0x1"})
    assert [e.kind for e in await store.transfer_audit(hold.id)] == [
        EventKind.SUBMITTED,
        EventKind.PENDING,
        EventKind.EXPIRED,
    ]
    assert await store.append_hold_resolutions([]) == []
    with pytest.raises(ValidationError):
        await store.append_hold_resolutions([event(EventKind.PENDING, hold.id)])


async def test_concurrent_resolutions_of_a_hold_append_one(store: Store) -> None:
    hold = intent(flags=int(tigerbeetle.TransferFlags.PENDING), timeout=1)
    await store.insert_intents([hold])
    racing = [
        store.append_hold_resolutions([event(EventKind.EXPIRED, hold.id, status="expired")])
        for _ in range(8)
    ]
    appended = [e for batch in await asyncio.gather(*racing) for e in batch]
    assert len(appended) == 1
    kinds = [e.kind for e in await store.transfer_audit(hold.id)]
    assert kinds.count(EventKind.EXPIRED) == 1


async def test_the_posts_and_voids_of_holds_by_hold(store: Store) -> None:
    flags = tigerbeetle.TransferFlags
    hold, lone = (intent(flags=int(flags.PENDING)) for _ in range(2))
    post = intent(flags=int(flags.POST_PENDING_TRANSFER), pending_id=hold.id)
    void = intent(flags=int(flags.VOID_PENDING_TRANSFER), pending_id=hold.id)
    # Naming a pending id without resolving it (not a post or a void) is not a resolution.
    unrelated = intent(pending_id=hold.id)
    await store.insert_intents([hold, lone, post, void, unrelated])
    found = await store.resolutions_of([hold.id, lone.id, new_id()])
    assert found == {hold.id: sorted([post.id, void.id])}
    assert await store.resolutions_of([]) == {}
    with pytest.raises(LimitExceededError):
        await store.resolutions_of([hold.id], limit=1)


async def test_recovery_backlog_is_intents_without_an_outcome(store: Store) -> None:
    only_submitted, unknown, posted, failed, resolved = (intent() for _ in range(5))
    await store.insert_intents([only_submitted, unknown, posted, failed, resolved])
    await store.append_events(
        [
            event(EventKind.OUTCOME_UNKNOWN, unknown.id),
            event(EventKind.POSTED, posted.id),
            event(EventKind.FAILED, failed.id, status="exceeds_credits"),
            event(EventKind.OUTCOME_UNKNOWN, resolved.id),
        ]
    )
    # Recovery resubmitted it and recorded what the engine said.
    await store.append_events([event(EventKind.PENDING, resolved.id, status="exists")])
    backlog = await store.intents_without_outcome(100)
    assert [t.id for t in backlog] == [only_submitted.id, unknown.id]
    assert backlog[0] == await store.get_intent(only_submitted.id)


async def test_recovery_backlog_pages_by_id_and_skips_recent_intents(store: Store) -> None:
    batch = [intent() for _ in range(5)]
    await store.insert_intents(batch)
    first = await store.intents_without_outcome(2)
    second = await store.intents_without_outcome(2, after_id=first[-1].id)
    third = await store.intents_without_outcome(2, after_id=second[-1].id)
    assert [t.id for t in first + second + third] == [i.id for i in batch]
    assert await store.intents_without_outcome(2, after_id=third[-1].id) == []

    assert (
        await store.intents_without_outcome(10, created_before=datetime(2000, 1, 1, tzinfo=UTC))
        == []
    )
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert len(await store.intents_without_outcome(10, created_before=later)) == 5
    with pytest.raises(ValidationError):
        await store.intents_without_outcome(10, created_before=datetime(2000, 1, 1))


@pytest.mark.parametrize("limit", [0, -1, True, 1.5])
async def test_limits_must_be_positive_ints(store: Store, limit: Any) -> None:
    with pytest.raises(ValidationError):
        await store.intents_without_outcome(limit)
    with pytest.raises(ValidationError):
        await store.events_since(0, limit)


async def test_limits_past_the_page_maximum_are_refused(store: Store) -> None:
    with pytest.raises(LimitExceededError):
        await store.events_since(0, STORE_PAGE_ROWS_MAX + 1)
    with pytest.raises(LimitExceededError):
        await store.intents_without_outcome(STORE_PAGE_ROWS_MAX + 1)


async def test_events_since_is_a_durable_tail(store: Store) -> None:
    batch = [intent() for _ in range(7)]
    submitted = await store.insert_intents(batch)
    posted = await store.append_events([event(EventKind.POSTED, i.id) for i in batch[:3]])
    everything = submitted + posted

    seen = []
    cursor = 0
    while page := await store.events_since(cursor, 4):
        assert len(page) <= 4
        seen.extend(page)
        cursor = page[-1].seq
    assert seen == everything
    assert await store.events_since(everything[-1].seq, 10) == []
    assert await store.events_since(everything[3].seq, 2) == everything[4:6]


@pytest.mark.parametrize("cursor", [-1, 1.0, "0", None, True])
async def test_events_since_refuses_bad_cursors(store: Store, cursor: Any) -> None:
    with pytest.raises(ValidationError):
        await store.events_since(cursor, 10)


async def test_concurrent_appends_reach_the_tail_in_seq_order(store: Store) -> None:
    batch = [intent() for _ in range(40)]
    await store.insert_intents(batch)
    seen: list[int] = []
    done = asyncio.Event()

    async def tail() -> None:
        cursor = 0
        while True:
            finished = done.is_set()
            page = await store.events_since(cursor, 1000)
            seen.extend(e.seq for e in page)
            if page:
                cursor = page[-1].seq
            elif finished:
                return
            await asyncio.sleep(0)

    async def writer(chunk: list[TransferIntent]) -> None:
        for item in chunk:
            await store.append_events([event(EventKind.POSTED, item.id)])

    tailer = asyncio.create_task(tail())
    await asyncio.gather(*(writer(batch[i::8]) for i in range(8)))
    done.set()
    await tailer
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == 80  # 40 submitted + 40 posted, none skipped


# Lifecycle.


async def test_ping_and_close(store: Store) -> None:
    await store.ping()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await store.get_account(1)


@pytest.mark.parametrize("bad_id", [-1, U128_MAX + 1, "1", None, True])
async def test_lookups_refuse_non_ids(store: Store, bad_id: Any) -> None:
    with pytest.raises(InvalidIdError):
        await store.get_account(bad_id)
    with pytest.raises(InvalidIdError):
        await store.get_intent(bad_id)
    with pytest.raises(InvalidIdError):
        await store.transfer_audit(bad_id)
    with pytest.raises(InvalidIdError):
        await store.current_status([bad_id])
