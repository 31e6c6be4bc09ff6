"""Strict request bodies: a size cap before reading, and JSON parsed with no surprises.

Python's ``json`` accepts things a money API must not: a repeated key silently keeps the last
value (``{"amount": "1", "amount": "1000"}``), ``NaN`` and ``Infinity`` are numbers, ``1e400``
becomes ``inf``, and deep nesting raises ``RecursionError``. Every body is parsed here instead,
and each of those is a 400 with a reason; so is an unpaired surrogate escape (not Unicode). A
``\\u0000`` (NUL, which no PostgreSQL text column stores) is a 422, in a body or a query. The
parsed document is handed to FastAPI (it reads ``request.json()``, which returns what is
cached), so pydantic validates what was checked.

The size cap is an ASGI middleware: a ``Content-Length`` past it is refused before any byte is
read, and a chunked body is cut off as soon as it passes the cap (413 either way).

Once a body is parsed, and before anything reaches the service, the key pays for the events it
carries (a batch's transfers; any other body is one event: a flow's legs are the flow's, not
the caller's, choice) and the request's metadata is bounded in all
(`HTTP_METADATA_BYTES_PER_REQUEST_MAX`, measured as the store writes it), since intents and
their metadata are stored even when the engine then refuses them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse

from tbledger.api.errors import ApiError
from tbledger.api.guard import PRINCIPAL
from tbledger.api.keys import Principal
from tbledger.limits import HTTP_JSON_INT_DIGITS_MAX, HTTP_METADATA_BYTES_PER_REQUEST_MAX

__all__ = ["BodyLimitMiddleware", "StrictJsonRoute", "checked_document", "strict_loads"]


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ApiError(
                    400, "malformed_json", f"duplicate key {key[:64]!r} in a JSON object"
                )
            seen.add(key)
    return document


def _constant(name: str) -> Any:
    raise ApiError(400, "malformed_json", f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ApiError(400, "malformed_json", f"number {text[:64]} is out of range")
    return value


def _int(text: str) -> int:
    # Refused before int() converts it: conversion is quadratic in the digits, and Python's own
    # refusal past 4300 digits names an interpreter setting, not the caller's mistake.
    if len(text) > HTTP_JSON_INT_DIGITS_MAX and len(text.lstrip("-")) > HTTP_JSON_INT_DIGITS_MAX:
        raise ApiError(
            400,
            "malformed_json",
            f"an integer has more than {HTTP_JSON_INT_DIGITS_MAX} digits",
        )
    return int(text)


def _check_text(document: Any) -> None:
    """Refuse strings no store can hold: NUL (U+0000; PostgreSQL text refuses it) with a 422,
    and unpaired surrogates (escapes that are not Unicode: no UTF-8 encoding) with a 400."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            if "\x00" in value:
                raise ApiError(422, "invalid_input", "text must not contain NUL (U+0000)")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ApiError(
                    400, "malformed_json", "a string holds an unpaired surrogate escape"
                ) from None


def strict_loads(body: bytes) -> Any:
    """Parse `body` as strict JSON (UTF-8) or raise a 400 `ApiError` saying why."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "the body is not UTF-8") from None
    try:
        document = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except RecursionError:
        raise ApiError(400, "malformed_json", "the JSON document is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"invalid JSON: {exc.msg} at {exc.pos}") from None
    except ValueError:  # a number Python cannot convert; its message would name interpreter knobs
        raise ApiError(400, "malformed_json", "invalid JSON: a number out of range") from None
    # Decoded UTF-8 holds neither NUL (a raw control character is not JSON) nor surrogates, so
    # only a \u escape can bring one in.
    if "\\u" in text:
        _check_text(document)
    return document


def checked_document(
    scope: MutableMapping[str, Any], query: Iterable[tuple[str, str]], body: bytes
) -> Any:
    """The checks every JSON route makes before validation, in order: no NUL in the query
    (422), a JSON content type when there is a body (415), strict JSON (400), the request's
    metadata in all (413), and the events it carries charged to the key (429). Returns the
    parsed document, or None for an empty body."""
    if any("\x00" in k or "\x00" in v for k, v in query):
        raise ApiError(422, "invalid_input", "text must not contain NUL (U+0000)")
    if not body:
        return None
    content_type = ""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            content_type = value.decode("latin-1")
            break
    if not content_type.split(";")[0].strip().lower().endswith("json"):
        raise ApiError(415, "unsupported_media_type", "send application/json")
    document = strict_loads(body)
    if b'"metadata"' in body:
        _check_metadata_total(document)
    principal = scope.get(PRINCIPAL)
    if isinstance(principal, Principal):
        _charge_events(scope["app"].state.ctx, principal, document)
    return document


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is parsed by `strict_loads` before FastAPI validates it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            body = await request.body()
            document = checked_document(request.scope, request.query_params.multi_items(), body)
            if document is not None:
                # Starlette's request.json() returns this cached document.
                request._json = document
            return await handler(request)

        return strict_handler


def _events_of(document: Any) -> int:
    """What a body costs in events: a batch its transfers, anything else one."""
    if isinstance(document, dict):
        transfers = document.get("transfers")
        if isinstance(transfers, list) and transfers:
            return len(transfers)
    return 1


def _charge_events(ctx: Any, principal: Principal, document: Any) -> None:
    wait_s = ctx.limiter.acquire_events(principal, _events_of(document))
    if wait_s:
        ctx.metrics.rate_limited.inc()
        raise ApiError(
            429,
            "rate_limited",
            f"transfer rate limit of {principal.events_per_s}/s exceeded",
            headers={"Retry-After": str(wait_s)},
        )


def _check_metadata_total(document: Any) -> None:
    """Refuse (413) a request whose `metadata` objects, as the store encodes them (compact JSON,
    ASCII), add up past `HTTP_METADATA_BYTES_PER_REQUEST_MAX`."""
    total = 0
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, list):
            pending.extend(v for v in value if isinstance(v, dict | list))
        elif isinstance(value, dict):
            for key, item in value.items():
                if key == "metadata":
                    total += _stored_size(item)
                elif isinstance(item, dict | list):
                    pending.append(item)
    if total > HTTP_METADATA_BYTES_PER_REQUEST_MAX:
        raise ApiError(
            413,
            "limit_exceeded",
            f"the request's metadata is {total} bytes in all; "
            f"HTTP_METADATA_BYTES_PER_REQUEST_MAX is {HTTP_METADATA_BYTES_PER_REQUEST_MAX}",
        )


def _stored_size(value: Any) -> int:
    try:
        return len(json.dumps(value, separators=(",", ":"), allow_nan=False))
    except (TypeError, ValueError):
        return 0  # not a JSON document: the schema refuses it


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _TooLargeError(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse bodies larger than `bytes_max` with 413, without reading them into memory."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], bytes_max: int):
        self.app = app
        self.bytes_max = bytes_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.bytes_max:
                    await self._refuse(scope, receive, send)
                    return
        seen = 0
        started = False

        async def limited() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.bytes_max:
                    raise _TooLargeError
            return message

        async def tracking(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except _TooLargeError:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "error": {
                    "code": "body_too_large",
                    "message": f"the body is larger than {self.bytes_max} bytes",
                    "details": {},
                }
            },
            status_code=413,
        )
        await response(scope, receive, send)
