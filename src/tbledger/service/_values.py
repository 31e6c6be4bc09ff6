"""The service's values: what a caller passes in (requests, resolutions) and gets back (results,
pages, account views, transfer statuses, health, recovery reports). Plain dataclasses, no
behaviour beyond derived properties; re-exported by `tbledger.service`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import tigerbeetle as tb

from tbledger.balances import (
    Balance,
)
from tbledger.ids import format_id
from tbledger.model import (
    AccountRecord,
    AccountStatus,
    AuditEvent,
    TransferIntent,
)
from tbledger.resilience import CircuitState


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferRequest:
    """One transfer to create. Amounts are integers in the ledger's minor unit.

    `ledger` and `code` are engine numbers, or names (or numbers in digits) in the service's
    chart of accounts, ``ledger="USD", code="PAYMENT"``. `transfer_id` lets the caller choose the
    id (retries then reuse it); otherwise a time-ordered id is minted. `idempotency_key` makes a
    retry with a fresh id return the original outcome.
    """

    debit_account_id: int | str
    credit_account_id: int | str
    amount: int
    ledger: int | str
    code: int | str
    transfer_id: int | str | None = None
    pending: bool = False
    timeout: int = 0
    # `amount` becomes an upper bound: the engine moves at most what keeps the debit (credit)
    # account from passing its credit (debit) balance, e.g. AMOUNT_MAX to sweep a balance.
    balancing_debit: bool = False
    balancing_credit: bool = False
    user_data_128: int = 0
    user_data_64: int = 0
    user_data_32: int = 0
    payment_id: str | None = None
    event_id: str | None = None
    chain_tx_hash: str | None = None
    idempotency_key: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class TransferFields(TypedDict, total=False):
    """`TransferRequest`'s fields as keywords: what ``create_transfer(**fields)`` takes, typed
    field by field, so a type checker refuses a misspelt or mistyped keyword (``amount="12.50"``)
    as it would in a `TransferRequest`. The first five are required unless a `TransferRequest`
    is passed instead (checked at run time: a type checker cannot express "either")."""

    debit_account_id: int | str
    credit_account_id: int | str
    amount: int
    ledger: int | str
    code: int | str
    transfer_id: int | str | None
    pending: bool
    timeout: int
    balancing_debit: bool
    balancing_credit: bool
    user_data_128: int
    user_data_64: int
    user_data_32: int
    payment_id: str | None
    event_id: str | None
    chain_tx_hash: str | None
    idempotency_key: str | None
    metadata: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingResolution:
    """One post or void of a hold, for `LedgerService.resolve_pending_transfers`.

    `amount` posts that much (None: the whole hold) and is ignored by a void. `control` is the
    platform's own facts about the transfer (the flows' leg labels), never a caller's input.
    """

    pending_id: int | str
    post: bool
    amount: int | None = None
    transfer_id: int | str | None = None
    idempotency_key: str | None = None
    event_id: str | None = None
    payment_id: str | None = None
    metadata: Mapping[str, Any] | None = None
    control: Mapping[str, Any] | None = None


# Told of each engine request: its operation, how many events it carried, how long it took (s).
EngineObserver = Callable[[str, int, float], None]


@dataclass(frozen=True, slots=True)
class TransferResult:
    """The outcome of one transfer: `status` is the engine's status name, lowercase."""

    id: int
    status: str
    timestamp: int | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.status in ("created", "exists")

    @property
    def id_hex(self) -> str:
        return format_id(self.id)


@dataclass(frozen=True, slots=True)
class TransferStatus:
    """A transfer's current status: its latest audit event, exact for holds.

    A hold past its timeout by the engine's clock is ``expired`` (the engine has released it),
    whether or not a recovery pass has come by yet. For a posted hold, `captured_amount` is what
    its post moved and `released_amount` what went back to the payer (minor units, read from the
    engine; a partial post captures part and releases the rest); None for anything else.
    """

    transfer_id: int
    latest: AuditEvent
    captured_amount: int | None = None
    released_amount: int | None = None

    @property
    def status(self) -> str:
        """The latest event's kind: ``pending``, ``posted``, ``voided``, ``expired``, ..."""
        return self.latest.kind.value


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """An account's mapping (who, what, status) and, when read from the engine, its balance."""

    record: AccountRecord
    balance: Balance | None = None

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def status(self) -> AccountStatus:
        return self.record.status


@dataclass(frozen=True, slots=True)
class TransferPage:
    """A page of an account's transfers; pass `next_cursor` back for the next page."""

    transfers: list[tb.Transfer]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class IntentPage:
    """A page of recorded transfers (intents) in id order; pass `next_cursor` back for the next."""

    intents: list[TransferIntent]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class Health:
    engine_ok: bool
    store_ok: bool
    breaker: CircuitState
    engine_latency_ms: float | None
    detail: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.engine_ok and self.store_ok and self.breaker is not CircuitState.OPEN


@dataclass
class RecoveryReport:
    """What one `recover()` pass did."""

    examined: int = 0
    found_in_engine: int = 0
    resubmitted: int = 0
    failed: int = 0
    expired: int = 0
    unresolved: int = 0
