"""tbledger: run money on TigerBeetle from Python.

The public API is what this module exports. The engine port is the official ``tigerbeetle``
client's API; ``tbledger.embedded`` is a drop-in TigerBeetle twin that runs it in-process.
"""

from tbledger.balances import AccountType, Balance, NormalSide
from tbledger.config import Settings
from tbledger.embedded import ClientAsync, ClientSync, ManualClock
from tbledger.engine import EngineConfig, connect, connect_sync, parse_engine_url
from tbledger.errors import (
    AccountFrozenError,
    AccountNotFoundError,
    CircuitOpenError,
    ConfigurationError,
    DuplicateRecordError,
    HistoryNotKeptError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    InsufficientLiquidityError,
    InvalidIdError,
    InvariantViolationError,
    JournalCorruptError,
    JournalError,
    LimitExceededError,
    NotConnectedError,
    OutcomeUnknownError,
    PendingHoldsError,
    PriceError,
    RecordNotFoundError,
    RefundExceedsPaymentError,
    StoreError,
    StoreUnavailableError,
    TbledgerError,
    TigerBeetleError,
    TransferFailedError,
    UnknownReferenceError,
    ValidationError,
)
from tbledger.events import LedgerEvent, LedgerEventName
from tbledger.flows import SpendEngine
from tbledger.ids import format_id, new_id, parse_id
from tbledger.service import (
    AccountInfo,
    Health,
    IntentPage,
    LedgerService,
    RecoveryReport,
    TransferPage,
    TransferRequest,
    TransferResult,
    TransferStatus,
)
from tbledger.service_sync import LedgerServiceSync

__version__ = "0.1.0"

__all__ = [
    "AccountFrozenError",
    "AccountInfo",
    "AccountNotFoundError",
    "AccountType",
    "Balance",
    "CircuitOpenError",
    "ClientAsync",
    "ClientSync",
    "ConfigurationError",
    "DuplicateRecordError",
    "EngineConfig",
    "Health",
    "HistoryNotKeptError",
    "IdempotencyConflictError",
    "InsufficientBalanceError",
    "InsufficientLiquidityError",
    "IntentPage",
    "InvalidIdError",
    "InvariantViolationError",
    "JournalCorruptError",
    "JournalError",
    "LedgerEvent",
    "LedgerEventName",
    "LedgerService",
    "LedgerServiceSync",
    "LimitExceededError",
    "ManualClock",
    "NormalSide",
    "NotConnectedError",
    "OutcomeUnknownError",
    "PendingHoldsError",
    "PriceError",
    "RecordNotFoundError",
    "RecoveryReport",
    "RefundExceedsPaymentError",
    "Settings",
    "SpendEngine",
    "StoreError",
    "StoreUnavailableError",
    "TbledgerError",
    "TigerBeetleError",
    "TransferFailedError",
    "TransferPage",
    "TransferRequest",
    "TransferResult",
    "TransferStatus",
    "UnknownReferenceError",
    "ValidationError",
    "__version__",
    "connect",
    "connect_sync",
    "format_id",
    "new_id",
    "parse_engine_url",
    "parse_id",
]
