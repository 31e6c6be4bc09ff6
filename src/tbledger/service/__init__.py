"""The ledger service: accounts, balances and transfers over TigerBeetle, with an audit trail.

`LedgerService` is the only door to money (DESIGN §8): the HTTP API, the command line and the
payment flows call its public methods and nothing behind it. A write goes down once and comes
back once (DESIGN §3, "write last, read first"), through these parts:

* ``_values``: what callers pass in and get back (`TransferRequest`, `TransferResult`, ...);
* ``_intents``: requests to intents, pure: validation, chart names to numbers, ids, flags,
  linked chains;
* ``_outcomes``: engine statuses to results, audit kinds and errors, pure: the one mapping;
* ``_discovery``: accounts by their columns and transfers by their metadata, a page at a time;
* ``_service``: `LedgerService` itself: lifecycle, engine calls (deadline, retry, breaker),
  the write pipeline (claims, grouping, persist, submit, record, replay), recovery and hold
  expiry, accounts and their status;
* ``_history``: balance history, balances as of a time, account activity and statements, read
  from the engine's history and joined with the store (DESIGN §10);
* ``_service``: `LedgerService` itself, a small facade: the lifecycle, the wiring of the
  collaborators below (each handed its store, gateway and event bus), one delegation per method;
* ``_gateway``: `EngineGateway`, every engine call: deadline, retry, circuit breaker, the
  batcher, a replaced client after eviction, the engine's clock;
* ``_claims``: `Claims`, the transfer ids this process is submitting (replays wait for them);
* ``_writer``: `Writer`, the write pipeline: claims, grouping, persist, submit, replays;
* ``_recorder``: `Recorder`, outcomes to the audit trail and to listeners;
* ``_recovery``: `Recovery`, settling intents without outcome, the background loop;
* ``_holds``: `Holds`, a hold's status decided from the engine when it is read (a hold past its
  timeout reads expired) and the recovery pass's expiry, through one code path; what a posted
  hold captured and released;
* ``_accounts``: `Accounts` (creation, balances, status changes) and `AccountStatuses` (the
  status the engine made effective, and why a transfer was refused);
* ``_reads``: `Reads`, transfers from the engine and bounded pages;
* ``_changes``: `Changes`, TigerBeetle's change stream into the store: every event with its
  balances, a hold's expiry as the engine releases it, transfers no intent asked for;
* ``sync``: `LedgerServiceSync`, the same service for code without an event loop.

    async with LedgerService(Settings()) as ledger:
        result = await ledger.create_transfer(debit_account_id=a, credit_account_id=b, ...)
"""

from tbledger.service._changes import ChangeReport
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
    TransferStatus,
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
    "ChangeReport",
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
    "TransferStatus",
    "engine_status",
    "iso_time",
    "refusal_of",
    "timestamp_ns_of",
]
