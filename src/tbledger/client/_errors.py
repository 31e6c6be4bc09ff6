"""The API's error answers as the library's exceptions: one table, read from the answer's
``code`` first and its HTTP status second.

The API maps the library's exception tree onto statuses (`tbledger.api.errors`); this is the
inverse, so that code written against `LedgerService` catches the same classes from the client.
Every exception raised here has the `HttpApiError` that carries the answer (status, code, message,
details) as its ``__cause__``; answers no library class stands for (401, 403, 429, 405, 500...)
are raised as that `HttpApiError` (or a subclass) itself.

Some detail does not cross the wire: the API never sends the balances behind a refusal (an owner
must not learn what it cannot read), so `InsufficientBalanceError.available` and ``.requested``
(and `RefundExceedsPaymentError.refundable`) read 0 over HTTP unless the answer carries them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from tbledger.errors import (
    AccountFrozenError,
    AccountNotFoundError,
    ApiAuthError,
    CircuitOpenError,
    DuplicateRecordError,
    HistoryNotKeptError,
    HttpApiError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    LimitExceededError,
    OutcomeUnknownError,
    PendingHoldsError,
    PriceError,
    RateLimitedError,
    RefundExceedsPaymentError,
    ServiceUnavailableError,
    TbledgerError,
    TransferFailedError,
    UnknownReferenceError,
    ValidationError,
)
from tbledger.ids import parse_id

__all__ = ["answer_of", "error_from_answer"]

# 409 codes that are not an engine status: each names its own class.
_PRICE_CODES = frozenset({"rate_unavailable", "quote_expired", "quote_used", "quote_mismatch"})
_INSUFFICIENT_CODES = frozenset({"exceeds_credits", "exceeds_debits"})
_CLOSED_CODES = frozenset(
    {"account_frozen", "debit_account_already_closed", "credit_account_already_closed"}
)
_ACCOUNT_MISSING_CODES = frozenset(
    {"account_not_found", "debit_account_not_found", "credit_account_not_found"}
)


def _int(details: Mapping[str, object], key: str) -> int:
    value = details.get(key)
    try:
        return int(str(value)) if value is not None else 0
    except ValueError:
        return 0


def _library_error(answer: HttpApiError) -> TbledgerError:
    """The library's exception for an error answer (`answer` itself when none stands for it)."""
    status, code, message, details = answer.status, answer.code, answer.message, answer.details
    if status == 404:
        if code in _ACCOUNT_MISSING_CODES:
            return AccountNotFoundError(message, code=code, details=details)
        return UnknownReferenceError(message, code=code, details=details)
    if status == 409:
        if code == "idempotency_conflict":
            return IdempotencyConflictError(message, code=code, details=details)
        if code == "already_exists":
            return DuplicateRecordError(message)
        if code in _PRICE_CODES:
            return PriceError(message, code=code, details=details)
        if code == "pending_holds":
            return PendingHoldsError(message, code=code, details=details)
        if code == "history_not_kept":
            return HistoryNotKeptError(message, code=code, details=details)
        if code == "nothing_to_refund":
            return RefundExceedsPaymentError(
                message, refundable=0, requested=0, code=code, details=details
            )
        if code in _INSUFFICIENT_CODES:
            return InsufficientBalanceError(
                message,
                available=_int(details, "available"),
                requested=_int(details, "requested"),
                code=code,
                details=details,
            )
        if code in _CLOSED_CODES:
            return AccountFrozenError(message, code=code, details=details)
        return TransferFailedError(message, code=code, details=details)
    if status == 413:
        return LimitExceededError(message)
    if status in (400, 422):
        return ValidationError(message)
    if status == 503:
        if code == "outcome_unknown":
            ids = details.get("transfer_ids")
            transfer_ids = [parse_id(str(i)) for i in ids] if isinstance(ids, list) else []
            return OutcomeUnknownError(
                message, transfer_ids=transfer_ids, code=code, details=details
            )
        if code == "circuit_open":
            return CircuitOpenError(message, code=code, details=details)
        return ServiceUnavailableError(message, status=status, code=code, details=details)
    if status in (401, 403):
        return ApiAuthError(message, status=status, code=code, details=details)
    return answer


def error_from_answer(
    status: int, content: bytes, *, retry_after: str | None = None
) -> TbledgerError:
    """The exception for an error answer: `status` and its body (the API's error object, or
    anything else a proxy in between may have sent)."""
    try:
        error = json.loads(content)["error"]
        code = str(error["code"])
        message = str(error["message"])
        raw_details = error.get("details") or {}
        details = dict(raw_details) if isinstance(raw_details, dict) else {}
    except (ValueError, KeyError, TypeError):
        code = "http_error"
        message = content[:500].decode(errors="replace") or f"HTTP {status}"
        details = {}
    if status == 429:
        seconds = int(retry_after) if retry_after and retry_after.isdigit() else None
        return RateLimitedError(
            message, status=status, code=code, details=details, retry_after_s=seconds
        )
    answer = HttpApiError(message, status=status, code=code, details=details)
    error_ = _library_error(answer)
    if error_ is not answer:
        error_.__cause__ = answer
    return error_


def answer_of(exc: BaseException) -> HttpApiError | None:
    """The API's answer behind an exception the client raised (None for any other exception)."""
    if isinstance(exc, HttpApiError):
        return exc
    cause = exc.__cause__
    return cause if isinstance(cause, HttpApiError) else None
