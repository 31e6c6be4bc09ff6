"""tbledger's exception tree: every exception tbledger raises has ``TbledgerError`` at its root.

Outcomes are values, faults are exceptions: a rejected transfer is a result with a status, not an
exception. Exceptions are for configuration, lifecycle, limits, I/O and broken invariants::

    TbledgerError
    ├── ConfigurationError          bad engine URL, bad store URL, bad settings
    │   └── ChartError              a chart of accounts (TOML) is malformed or inconsistent
    ├── ValidationError             input out of range or malformed (also a ValueError)
    │   ├── InvalidIdError          not a u128 id (int, decimal or "0x" hex string)
    │   ├── LimitExceededError      more rows, bytes or characters than a named limit allows
    │   ├── AmountError             not an exact, non-negative amount in a ledger's minor units
    │   ├── UnknownLedgerError      no ledger with this number or name (also a LookupError)
    │   ├── UnknownCodeError        no account or transfer code with this number or name
    │   ├── UnknownReferenceError   a flow named a payment, contract, settlement or hold not found
    │   └── ChangeEventError        a change-stream (CDC) message that is not TigerBeetle's shape
    ├── ChangePublishError          the change stream cannot be published (broker unreachable,
    │                               exchange missing, another publisher holds the cluster's lock)
    ├── JournalError                the embedded engine's journal cannot be used
    │   └── JournalCorruptError     checksum or framing damage before the last record
    ├── StoreError                  the intent/audit store failed (driver error wrapped)
    │   ├── StoreUnavailableError   the database cannot be reached or the connection was lost
    │   ├── DuplicateRecordError    a unique key (id, idempotency key, name) is already taken
    │   └── RecordNotFoundError     a write named a record the store does not have
    ├── PriceError                  no operator rate for a pair, or a quote that is expired, spent
    │                               or for another exchange (`code`, `details`)
    ├── TigerBeetleError            the engine refused or could not be asked (`code`, `details`)
    │   ├── TransferFailedError     the engine refused a transfer; `code` is its status name
    │   │   ├── InsufficientBalanceError  exceeds_credits/exceeds_debits (`available`, `requested`)
    │   │   ├── AccountFrozenError  a frozen or closed account was refused by the engine
    │   │   ├── RefundExceedsPaymentError  refunds past the payment's amount (`refundable`)
    │   │   └── InsufficientLiquidityError  the platform's float cannot pay out an exchange
    │   ├── AccountNotFoundError    no such account (also a LookupError)
    │   ├── PendingHoldsError       an account cannot close while holds on it are pending
    │   ├── HistoryNotKeptError     the account keeps no balance history (no `history` flag)
    │   ├── NotConnectedError       the service is not connected (call `connect()`)
    │   ├── OutcomeUnknownError     the deadline passed; the request may still be applied
    │   ├── CircuitOpenError        too many recent engine faults; calls fail fast for a while
    │   └── IdempotencyConflictError  an idempotency key was reused for a different request
    ├── InvariantViolationError     an internal money invariant failed (a bug; never ignored)
    └── HttpApiError                our HTTP API answered an error no class above names, or
        │                           none at all (`status`, `code`, `details`; `tbledger.client`)
        ├── ApiUnreachableError     no answer: the service could not be reached (`status` None)
        ├── ApiAuthError            401/403: no key, a bad or revoked one, or a scope too narrow
        ├── RateLimitedError        429: the key's budget ran out (`retry_after_s`)
        └── ServiceUnavailableError  503 ``unavailable``: the engine or the database is down

`tbledger.client` raises the classes above the API's errors stand for (a 409 ``exceeds_credits``
is an `InsufficientBalanceError`, a 422 a `ValidationError`, a 503 ``outcome_unknown`` an
`OutcomeUnknownError`...), each raised ``from`` the `HttpApiError` that carries the answer.

The engine port keeps the official client's own exceptions (``tigerbeetle.TooMuchDataError``,
``tigerbeetle.ClientClosedError``, ``tigerbeetle.IntegerOverflowError``, ...), so code written for
the official client handles the embedded engine unchanged.
"""

from __future__ import annotations


class TbledgerError(Exception):
    """Root of every exception raised by tbledger itself."""


class ConfigurationError(TbledgerError, ValueError):
    """The configuration (an engine URL, a setting) is invalid."""


class ValidationError(TbledgerError, ValueError):
    """Input is malformed or out of range; it was refused before reaching the engine or store."""


class InvalidIdError(ValidationError):
    """A value is not a u128 id: not an int, decimal string or "0x" hex string in [0, 2^128-1]."""


class LimitExceededError(ValidationError):
    """A request exceeds a limit named in ``tbledger.limits``; nothing was truncated."""


class JournalError(TbledgerError):
    """The embedded engine's journal could not be opened, read or written."""


class JournalCorruptError(JournalError):
    """The journal is damaged somewhere other than a torn last record; it is refused whole."""


class StoreError(TbledgerError):
    """The intent/audit store failed; the driver's exception is the ``__cause__``."""


class StoreUnavailableError(StoreError):
    """The store's database cannot be reached, refused the login, or dropped the connection."""


class DuplicateRecordError(StoreError):
    """A unique key is already taken; `constraint` names it when the database says which."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class RecordNotFoundError(StoreError, LookupError):
    """A write named a record (an account, a transfer) that the store does not have."""


class PriceError(TbledgerError):
    """The platform cannot price this operation now; nothing moved.

    `code` says why: ``"rate_unavailable"`` (no current operator rate for the pair),
    ``"quote_expired"``, ``"quote_used"`` (a quote is spent by the first exchange that names it),
    ``"quote_mismatch"`` (the quote is for another pair or amount).
    """

    def __init__(
        self, message: str, *, code: str, details: dict[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details: dict[str, object] = dict(details or {})


class TigerBeetleError(TbledgerError):
    """The ledger engine refused a request or could not be asked.

    `code` is a stable machine-readable name (for a refused transfer, the engine's status name,
    e.g. ``"exceeds_credits"``); `details` carries the context (ids, amounts) as plain values.
    """

    def __init__(
        self, message: str, *, code: str = "engine_error", details: dict[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details: dict[str, object] = dict(details or {})


class TransferFailedError(TigerBeetleError):
    """The engine refused a transfer; `code` is the ``CreateTransferStatus`` name, lowercase."""


class InsufficientBalanceError(TransferFailedError):
    """The debit (or credit) account's limit flag refused the amount.

    `available` is what the account could move at the time it was read (it may have changed since),
    `requested` the amount asked for.
    """

    def __init__(
        self,
        message: str,
        *,
        available: int,
        requested: int,
        code: str = "exceeds_credits",
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.available = available
        self.requested = requested


class AccountFrozenError(TransferFailedError):
    """The engine refused a transfer because an account is frozen or closed (its `closed` flag)."""


class AccountNotFoundError(TigerBeetleError, LookupError):
    """No account has this id (in the engine or in the account mapping)."""


class PendingHoldsError(TigerBeetleError):
    """An account cannot be closed while holds on it are pending: a hold voided after the close
    would put money into an account nothing can move it out of. `details["hold_ids"]` lists them
    (hex ids); void or post them, or let them expire, and close again."""


class HistoryNotKeptError(TigerBeetleError):
    """The account was created without the engine's ``history`` flag, so the engine keeps no
    balance after each of its transfers: its balance at a past time, its balance history and its
    statements cannot be read, and are never guessed (code ``history_not_kept``)."""


class NotConnectedError(TigerBeetleError):
    """The service is not connected; call ``connect()`` first (or it was closed)."""


class OutcomeUnknownError(TigerBeetleError):
    """The deadline passed before the engine answered. The request was not cancelled and may still
    be applied; recovery resolves it by resubmitting the same ids. `transfer_ids` names them."""

    def __init__(
        self,
        message: str,
        *,
        transfer_ids: list[int] | None = None,
        code: str = "outcome_unknown",
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.transfer_ids = list(transfer_ids or [])


class CircuitOpenError(TigerBeetleError):
    """The circuit breaker is open after repeated engine faults; calls fail fast until a health
    probe succeeds. Nothing was submitted."""


class IdempotencyConflictError(TigerBeetleError):
    """An idempotency key (or a caller-chosen transfer id) was reused with different fields."""


class InvariantViolationError(TbledgerError, AssertionError):
    """A money invariant failed. This is a bug; the engine refuses to continue."""


class ChartError(ConfigurationError):
    """A chart of accounts is malformed or inconsistent; the message names the offending entry."""


class AmountError(ValidationError):
    """A value is not an exact, non-negative amount at the ledger's asset scale (never rounded)."""


class UnknownLedgerError(ValidationError, LookupError):
    """The chart of accounts has no ledger with this number or name."""


class UnknownCodeError(ValidationError, LookupError):
    """The chart of accounts has no account code or transfer code with this number or name."""


class RefundExceedsPaymentError(TransferFailedError):
    """A refund would return more in total than the payment's amount; the engine refused it.

    The payment's refundable account (``refundable:<payment id>``) cannot be overdrawn, so the
    ceiling holds across concurrent refunds. `refundable` is what was left when read (it may have
    changed since), `requested` the amount asked for.
    """

    def __init__(
        self,
        message: str,
        *,
        refundable: int,
        requested: int,
        code: str = "exceeds_credits",
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.refundable = refundable
        self.requested = requested


class InsufficientLiquidityError(TransferFailedError):
    """An exchange would pay out more than the platform's liquidity account on the target ledger
    holds; nothing moved (the user's side of the exchange is in the same linked chain).

    `available` is what the liquidity account held when read, `requested` the payout asked for.
    """

    def __init__(
        self,
        message: str,
        *,
        available: int,
        requested: int,
        code: str = "exceeds_credits",
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.available = available
        self.requested = requested


class ChangeEventError(ValidationError):
    """A change-stream (CDC) message that is not exactly the shape `tigerbeetle amqp` publishes."""


class ChangePublishError(TbledgerError):
    """The embedded engine's change stream cannot be published: the broker cannot be reached,
    the exchange does not exist, or another publisher runs for the same cluster."""


class UnknownReferenceError(ValidationError, LookupError):
    """A flow named a payment, escrow contract, settlement or anchor authorization that the store
    does not have. `code` says which (``"payment_not_found"``, ...); `details` carries the id."""

    def __init__(
        self, message: str, *, code: str = "not_found", details: dict[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.details: dict[str, object] = dict(details or {})


class HttpApiError(TbledgerError):
    """Our HTTP API answered with an error (or did not answer: `status` is None).

    `status` is the HTTP status, `code` the API's stable error code, `details` its details. The
    client raises it directly for answers no library class names (401, 403, 429, 405, 500...),
    and as the ``__cause__`` of the library error it raises for the others.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        code: str,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, object] = dict(details or {})


class ApiUnreachableError(HttpApiError):
    """The service could not be reached, or the connection broke before an answer: a write may
    or may not have been applied; retry it with the same idempotency key."""


class ApiAuthError(HttpApiError):
    """401: no API key, or a malformed, unknown or revoked one; 403: the key's scope may not use
    this route or open this kind of account."""


class RateLimitedError(HttpApiError):
    """429: the key's requests, transfers or body bytes per second ran out; `retry_after_s` is
    the service's ``Retry-After`` (whole seconds), None when it sent none."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        code: str = "rate_limited",
        details: dict[str, object] | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, details=details)
        self.retry_after_s = retry_after_s


class ServiceUnavailableError(HttpApiError):
    """503 ``unavailable``: the service cannot reach its engine or its database now. Nothing is
    known to have been applied; retry with the same idempotency key."""
