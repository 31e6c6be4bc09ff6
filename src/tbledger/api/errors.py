"""Errors as HTTP answers: one JSON shape, one status per kind of failure, never a 5xx for input.

Every error body is ``{"error": {"code": ..., "message": ..., "details": {...}}}``. The library's
exception tree maps onto statuses here, in one table, so a route never chooses a status itself:

* 400 malformed JSON (duplicate keys, NaN, nesting), 401 no or bad key, 403 a scope that may not
  use the route, 404 unknown (or another owner's) account, transfer or reference;
* 409 the engine refused the money movement (the status name is the code), an idempotency key was
  reused for a different request, a record already exists, or the platform cannot price the
  request now (``rate_unavailable``, ``quote_expired``, ``quote_used``, ``quote_mismatch``);
* 413 a body or a batch past its limit, 415 a body that is not JSON, 422 input out of range or
  malformed, 429 rate limited;
* 503 the engine or the database cannot be reached, the circuit is open, or the outcome is not
  known yet (retry with the same ``Idempotency-Key``: it is safe).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from tbledger.api.guard import PRINCIPAL
from tbledger.errors import (
    AccountNotFoundError,
    CircuitOpenError,
    DuplicateRecordError,
    IdempotencyConflictError,
    InsufficientLiquidityError,
    LimitExceededError,
    NotConnectedError,
    OutcomeUnknownError,
    PriceError,
    RecordNotFoundError,
    StoreUnavailableError,
    TbledgerError,
    TigerBeetleError,
    TransferFailedError,
    UnknownReferenceError,
    ValidationError,
)

__all__ = ["ERROR_RESPONSES", "ApiError", "ErrorBody", "ErrorDetail", "install_error_handlers"]

log = logging.getLogger("tbledger.api")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = {}


class ErrorBody(BaseModel):
    error: ErrorDetail


# Documented on every route, so generated clients (and schemathesis) know every answer's shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in {
        400: "Malformed JSON",
        401: "Missing or invalid API key",
        403: "The key's scope may not use this route",
        404: "Not found (or not visible to this key)",
        409: "Refused by the engine, or an idempotency conflict",
        413: "Body or batch too large",
        415: "The body is not JSON (send application/json)",
        422: "Invalid input",
        429: "Rate limited (see Retry-After)",
        503: "Engine or database unavailable; retry with the same Idempotency-Key",
    }.items()
}


class ApiError(Exception):
    """An error answer chosen by the API layer itself (auth, scope, visibility, size)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"{what}_not_found", f"no {what.replace('_', ' ')} {ident}")


def _body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": _jsonable(details or {})}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    # Integers can be u128 (amounts, ids): strings keep them exact in every JSON reader.
    return str(value)


def _status_of(exc: TbledgerError) -> tuple[int, str]:
    """The HTTP status and error code for a library exception (first match wins)."""
    code = getattr(exc, "code", None)
    if isinstance(exc, LimitExceededError):
        return 413, "limit_exceeded"
    if isinstance(exc, AccountNotFoundError | RecordNotFoundError | UnknownReferenceError):
        return 404, code if isinstance(code, str) and code else "not_found"
    if isinstance(exc, ValidationError):
        return 422, "invalid_input"
    if isinstance(exc, IdempotencyConflictError):
        return 409, "idempotency_conflict"
    if isinstance(exc, DuplicateRecordError):
        return 409, "already_exists"
    if isinstance(exc, PriceError):
        return 409, exc.code
    if isinstance(exc, TransferFailedError):
        return 409, code if isinstance(code, str) and code else "transfer_failed"
    if isinstance(exc, OutcomeUnknownError):
        return 503, "outcome_unknown"
    if isinstance(exc, CircuitOpenError):
        return 503, "circuit_open"
    if isinstance(exc, NotConnectedError | StoreUnavailableError):
        return 503, "unavailable"
    if isinstance(exc, TigerBeetleError):
        return 409, code if isinstance(code, str) and code else "engine_refused"
    return 500, "internal_error"


# What an owner key hears when the platform's liquidity cannot cover its exchange: the amount the
# platform holds is the platform's business (DESIGN §9), so neither the message nor the details
# name it, nor the liquidity account.
_LIQUIDITY_MESSAGE = "the platform cannot cover this exchange now; nothing moved"


def error_response(exc: TbledgerError, *, admin: bool = True) -> JSONResponse:
    status, code = _status_of(exc)
    if isinstance(exc, InsufficientLiquidityError) and not admin:
        return JSONResponse(_body(code, _LIQUIDITY_MESSAGE), status_code=status)
    if isinstance(exc, DuplicateRecordError):
        # The driver's message names constraints and key values: internals, not an answer.
        return JSONResponse(
            _body(code, "a record with this id, name or key already exists"), status_code=409
        )
    details = getattr(exc, "details", None)
    headers = {"Retry-After": "1"} if status == 503 else None
    if status >= 500 and status != 503:
        log.error("unexpected library error", exc_info=exc)
        return JSONResponse(_body(code, "internal error"), status_code=status)
    return JSONResponse(
        _body(code, str(exc), details if isinstance(details, dict) else None),
        status_code=status,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            _body(exc.code, exc.message, exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(TbledgerError)
    async def _library_error(request: Request, exc: TbledgerError) -> JSONResponse:
        principal = request.scope.get(PRINCIPAL)
        return error_response(exc, admin=bool(getattr(principal, "is_admin", False)))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()[:20]
        ]
        return JSONResponse(
            _body("invalid_input", "the request is invalid", {"errors": errors}),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            _body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(_body("internal_error", "internal error"), status_code=500)
