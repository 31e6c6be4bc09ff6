"""Recovery: intents persisted but never settled are resolved once, from the engine first.

A crash between persisting an intent and recording its outcome leaves ``submitted`` intents
without outcome. `recover()` looks them up in the engine first — those found already happened and
are recorded as such (``exists``), never applied twice — and resubmits the rest with the same ids
and fields, linked chains whole and in order. Intents younger than `grace_s` are presumed in
flight and left alone. A second pass finds nothing to do.
"""

from __future__ import annotations

from dataclasses import replace

import tigerbeetle as tb

from tbledger.ids import format_id
from tbledger.service import LedgerService
from tbledger.store import AccountStatus, EventKind, NewAuditEvent, TransferIntent
from tests.service.conftest import Ledger
from tests.service.helpers import LEDGER, PAYMENT, deposit
from tests.support.book import ServiceBook, open_service_book

_TF = tb.TransferFlags


def intent(debit: int, credit: int, amount: int, **kw: object) -> TransferIntent:
    return TransferIntent(
        id=tb.id(),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        ledger=LEDGER,
        code=PAYMENT,
        **kw,  # type: ignore[arg-type]
    )


def chain(*members: TransferIntent) -> list[TransferIntent]:
    """Link intents the way an atomic batch is stored: every member but the last is linked."""
    head = members[0].id
    last = len(members) - 1
    return [
        replace(
            m, flags=m.flags | (int(_TF.LINKED) if k < last else 0), chain_id=head, chain_index=k
        )
        for k, m in enumerate(members)
    ]


async def funded(service: LedgerService, amount: int = 100) -> ServiceBook:
    book = await open_service_book(service)
    await deposit(service, book, book.alice, amount)
    return book


async def kinds(service: LedgerService, transfer_id: int) -> list[str]:
    return [e.kind.value for e in await service.get_transfer_audit(transfer_id)]


async def test_intents_never_submitted_are_submitted_once(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    stranded = [
        intent(book.alice, book.bob, 10),
        intent(book.alice, book.bob, 20, flags=int(_TF.PENDING)),
        intent(book.alice, book.bob, 500),  # will be refused
    ]
    await ledger.store.insert_intents(stranded)
    report = await service.recover(grace_s=0)
    assert (report.examined, report.found_in_engine, report.resubmitted, report.failed) == (
        3,
        0,
        3,
        1,
    )
    assert [await kinds(service, i.id) for i in stranded] == [
        ["submitted", "posted"],
        ["submitted", "pending"],
        ["submitted", "failed"],
    ]
    found = await ledger.client.lookup_transfers([i.id for i in stranded])
    assert [t.id for t in found] == [stranded[0].id, stranded[1].id]
    bob = await service.get_balance(book.bob)
    assert (bob.posted, bob.pending) == (10, 20)


async def test_intents_the_engine_already_has_are_recorded_not_reapplied(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    applied = intent(book.alice, book.bob, 30)
    (result,) = await ledger.client.create_transfers([applied.to_transfer()])
    assert result.status is tb.CreateTransferStatus.CREATED
    await ledger.store.insert_intents([applied])
    requests_before = service.batcher.stats.requests
    report = await service.recover(grace_s=0)
    assert (report.examined, report.found_in_engine, report.resubmitted) == (1, 1, 0)
    assert service.batcher.stats.requests == requests_before
    audit = await service.get_transfer_audit(applied.id)
    assert [(e.kind, e.status) for e in audit] == [
        (EventKind.SUBMITTED, None),
        (EventKind.POSTED, "exists"),
    ]
    (transfer,) = await ledger.client.lookup_transfers([applied.id])
    assert audit[-1].engine_timestamp == transfer.timestamp
    assert (await service.get_balance(book.bob)).posted == 30


async def test_an_atomic_chain_is_resubmitted_whole(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    members = chain(intent(book.alice, book.bob, 10), intent(book.bob, book.alice, 4))
    await ledger.store.insert_intents(members)
    report = await service.recover(grace_s=0)
    assert (report.examined, report.resubmitted, report.failed) == (2, 2, 0)
    found = await ledger.client.lookup_transfers([m.id for m in members])
    assert [bool(t.flags & _TF.LINKED) for t in found] == [True, False]
    assert (await service.get_balance(book.bob)).posted == 6


async def test_a_failing_chain_is_still_all_or_nothing_in_recovery(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    members = chain(intent(book.alice, book.bob, 10), intent(book.alice, book.bob, 1_000))
    await ledger.store.insert_intents(members)
    await service.recover(grace_s=0)
    statuses = [(await service.get_transfer_audit(m.id))[-1].status for m in members]
    assert statuses == ["linked_event_failed", "exceeds_credits"]
    assert await ledger.client.lookup_transfers([m.id for m in members]) == []
    assert (await service.get_balance(book.bob)).posted == 0


async def record_head_only(ledger: Ledger, book: ServiceBook) -> list[TransferIntent]:
    """A chain the engine applied, of which only the head's outcome was recorded (a crash)."""
    members = chain(intent(book.alice, book.bob, 10), intent(book.alice, book.bob, 5))
    results = await ledger.client.create_transfers([m.to_transfer() for m in members])
    assert all(r.status is tb.CreateTransferStatus.CREATED for r in results)
    await ledger.store.insert_intents(members)
    await ledger.store.append_events(
        [
            NewAuditEvent(
                kind=EventKind.POSTED,
                transfer_id=members[0].id,
                status="created",
                engine_timestamp=results[0].timestamp,
            )
        ]
    )
    return members


async def test_a_chain_half_recorded_is_completed_from_the_engine(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    members = await record_head_only(ledger, book)
    report = await service.recover(grace_s=0)
    assert (report.examined, report.resubmitted) == (1, 0)
    assert await kinds(service, members[1].id) == ["submitted", "posted"]
    assert (await service.get_balance(book.bob)).posted == 15


async def test_recovering_a_chain_does_not_record_settled_members_again(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    members = await record_head_only(ledger, book)
    await service.recover(grace_s=0)
    assert await kinds(service, members[0].id) == ["submitted", "posted"]


async def test_running_recover_twice_is_a_no_op_the_second_time(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    await ledger.store.insert_intents([intent(book.alice, book.bob, 10) for _ in range(3)])
    first = await service.recover(grace_s=0)
    assert first.examined == 3
    requests_before = service.batcher.stats.requests
    events_before = len(await ledger.store.events_since(0, 1000))
    second = await service.recover(grace_s=0)
    assert (second.examined, second.resubmitted, second.found_in_engine, second.expired) == (
        0,
        0,
        0,
        0,
    )
    assert service.batcher.stats.requests == requests_before
    assert len(await ledger.store.events_since(0, 1000)) == events_before
    assert (await service.get_balance(book.bob)).posted == 30


async def test_recover_leaves_young_intents_to_their_callers(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    young = intent(book.alice, book.bob, 10)
    await ledger.store.insert_intents([young])
    report = await service.recover()  # the default grace: in flight, not stranded
    assert report.examined == 0
    assert await kinds(service, young.id) == ["submitted"]
    assert (await service.recover(grace_s=0)).resubmitted == 1


async def test_an_unknown_outcome_is_in_the_backlog_too(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    unknown = intent(book.alice, book.bob, 10)
    await ledger.store.insert_intents([unknown])
    await ledger.store.append_events(
        [NewAuditEvent(kind=EventKind.OUTCOME_UNKNOWN, transfer_id=unknown.id)]
    )
    report = await service.recover(grace_s=0)
    assert (report.examined, report.resubmitted) == (1, 1)
    assert await kinds(service, unknown.id) == ["submitted", "outcome_unknown", "posted"]


async def test_connect_runs_recovery(ledger: Ledger) -> None:
    book = await funded(ledger.service)
    stranded = intent(book.alice, book.bob, 10)
    await ledger.store.insert_intents([stranded])
    async with ledger.open_service(recovery_grace_s=0) as restarted:
        assert await kinds(restarted, stranded.id) == ["submitted", "posted"]
    assert (await ledger.service.get_balance(book.bob)).posted == 10


async def test_a_recovered_freeze_updates_the_account_status(ledger: Ledger) -> None:
    # The freeze reached the store but not the engine; recovery applies it and records it.
    service = ledger.service
    book = await funded(service)
    await service.update_account_status(book.bob, "frozen")  # creates the control account
    await service.update_account_status(book.bob, "active")
    control = await ledger.store.get_account_by_name(f"system:control:{LEDGER}")
    assert control is not None
    freeze = TransferIntent(
        id=tb.id(),
        debit_account_id=book.alice,
        credit_account_id=control.id,
        amount=0,
        ledger=LEDGER,
        code=65535,
        flags=int(_TF.PENDING | _TF.CLOSING_DEBIT),
        # The service's own fact (DESIGN §9): what recovery reads, never the caller's metadata.
        control={"purpose": "freeze", "account_id": format_id(book.alice)},
    )
    await ledger.store.insert_intents([freeze])
    await service.recover(grace_s=0)
    account = await service.get_account(book.alice)
    assert (account.status, account.record.freeze_transfer_id) == (AccountStatus.FROZEN, freeze.id)
    assert account.balance is not None
    assert account.balance.closed


async def test_recovery_records_outcomes_with_engine_timestamps(ledger: Ledger) -> None:
    service = ledger.service
    book = await funded(service)
    stranded = [intent(book.alice, book.bob, 1) for _ in range(3)]
    await ledger.store.insert_intents(stranded)
    await service.recover(grace_s=0)
    found = {
        t.id: t.timestamp for t in await ledger.client.lookup_transfers([i.id for i in stranded])
    }
    for i in stranded:
        assert (await service.get_transfer_audit(i.id))[-1].engine_timestamp == found[i.id]
