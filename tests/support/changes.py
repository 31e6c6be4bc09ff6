"""Change events as TigerBeetle's CDC reports them, built from what an engine holds.

Tests of the consumer side need change events for transfers that exist in an engine; this
builds them from the engine's own records (a transfer and both accounts as they stand after it),
which is what `tigerbeetle amqp` publishes for a transfer that was the last to touch both
accounts.
"""

from __future__ import annotations

from typing import Any

import tigerbeetle as tb

from tbledger.cdc import ChangeAccount, ChangeEvent, ChangeEventType, ChangeTransfer

_F = tb.TransferFlags


def event_type_of(transfer: tb.Transfer) -> ChangeEventType:
    if transfer.flags & _F.PENDING:
        return ChangeEventType.TWO_PHASE_PENDING
    if transfer.flags & _F.POST_PENDING_TRANSFER:
        return ChangeEventType.TWO_PHASE_POSTED
    if transfer.flags & _F.VOID_PENDING_TRANSFER:
        return ChangeEventType.TWO_PHASE_VOIDED
    return ChangeEventType.SINGLE_PHASE


def change_account(account: tb.Account) -> ChangeAccount:
    return ChangeAccount(
        id=account.id,
        debits_pending=account.debits_pending,
        debits_posted=account.debits_posted,
        credits_pending=account.credits_pending,
        credits_posted=account.credits_posted,
        user_data_128=account.user_data_128,
        user_data_64=account.user_data_64,
        user_data_32=account.user_data_32,
        code=account.code,
        flags=int(account.flags),
        timestamp=account.timestamp,
    )


def change_event(
    transfer: tb.Transfer,
    debit: tb.Account,
    credit: tb.Account,
    *,
    type_: ChangeEventType | None = None,
    timestamp: int | None = None,
) -> ChangeEvent:
    return ChangeEvent(
        timestamp=transfer.timestamp if timestamp is None else timestamp,
        type=event_type_of(transfer) if type_ is None else type_,
        ledger=transfer.ledger,
        transfer=ChangeTransfer(
            id=transfer.id,
            amount=transfer.amount,
            pending_id=transfer.pending_id,
            user_data_128=transfer.user_data_128,
            user_data_64=transfer.user_data_64,
            user_data_32=transfer.user_data_32,
            timeout=transfer.timeout,
            code=transfer.code,
            flags=int(transfer.flags),
            timestamp=transfer.timestamp,
        ),
        debit_account=change_account(debit),
        credit_account=change_account(credit),
    )


async def event_now(
    client: Any,
    transfer_id: int,
    *,
    type_: ChangeEventType | None = None,
    timestamp: int | None = None,
) -> ChangeEvent:
    """The change event of `transfer_id` with both accounts as the engine holds them now."""
    (transfer,) = await client.lookup_transfers([transfer_id])
    debit, credit = await client.lookup_accounts(
        [transfer.debit_account_id, transfer.credit_account_id]
    )
    return change_event(transfer, debit, credit, type_=type_, timestamp=timestamp)
