"""The ledger service: accounts, balances and transfers over TigerBeetle, with an audit trail.

`LedgerService` is the only door to money (DESIGN §8): the HTTP API, the command line and the
payment flows call its public methods and nothing behind it. A write goes down once and comes
back once (DESIGN §3, "write last, read first"), through these parts:

* ``_values``: what callers pass in and get back (`TransferRequest`, `TransferResult`, ...);
* ``_intents``: requests to intents, pure: validation, ids, flags, linked chains;
* ``_outcomes``: engine statuses to results, audit kinds and errors, pure: the one mapping;
* ``_discovery``: accounts by their columns and transfers by their metadata, a page at a time;
* ``_service``: `LedgerService` itself: lifecycle, engine calls (deadline, retry, breaker),
  the write pipeline (claims, grouping, persist, submit, record, replay), recovery and hold
  expiry, accounts and their status;
* ``_history``: balance history, balances as of a time, account activity and statements, read
  from the engine's history and joined with the store (DESIGN §10);
* ``sync``: `LedgerServiceSync`, the same service for code without an event loop.

    async with LedgerService(Settings()) as ledger:
        result = await ledger.create_transfer(debit_account_id=a, credit_account_id=b, ...)
"""

from tbledger.service._discovery import AccountRecordPage
from tbledger.service._history import (
    ActivityEntry,
    ActivityPage,
    BalanceAsOf,
    BalanceHistory,
    BalancePoint,
    Statement,
    StatementLine,
    TimeLike,
    TransferKind,
    iso_time,
    timestamp_ns_of,
)
from tbledger.service._intents import AMOUNT_MAX, CONTROL_TRANSFER_CODE
from tbledger.service._outcomes import ACCOUNT_FROZEN, Refusal, engine_status, refusal_of
from tbledger.service._service import LedgerService
from tbledger.service._values import (
    AccountInfo,
    EngineObserver,
    Health,
    IntentPage,
    PendingResolution,
    RecoveryReport,
    TransferFields,
    TransferPage,
    TransferRequest,
    TransferResult,
)

__all__ = [
    "ACCOUNT_FROZEN",
    "AMOUNT_MAX",
    "CONTROL_TRANSFER_CODE",
    "AccountInfo",
    "AccountRecordPage",
    "ActivityEntry",
    "ActivityPage",
    "BalanceAsOf",
    "BalanceHistory",
    "BalancePoint",
    "EngineObserver",
    "Health",
    "IntentPage",
    "LedgerService",
    "PendingResolution",
    "RecoveryReport",
    "Refusal",
    "Statement",
    "StatementLine",
    "TimeLike",
    "TransferFields",
    "TransferKind",
    "TransferPage",
    "TransferRequest",
    "TransferResult",
    "engine_status",
    "iso_time",
    "refusal_of",
    "timestamp_ns_of",
]
