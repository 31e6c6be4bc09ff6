"""Strict request bodies: a size cap before reading, and JSON parsed with no surprises.

Python's ``json`` accepts things a money API must not: a repeated key silently keeps the last
value (``{"amount": "1", "amount": "1000"}``), ``NaN`` and ``Infinity`` are numbers, ``1e400``
becomes ``inf``, and deep nesting raises ``RecursionError``. Every body is parsed here instead, and
each of those is a 400 with a reason. The parsed document is handed to FastAPI (it reads
``request.json()``, which returns what is cached), so pydantic validates what was checked.

The size cap is an ASGI middleware: a ``Content-Length`` past it is refused before any byte is
read, and a chunked body is cut off as soon as it passes the cap (413 either way).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse

from tbledger.api.errors import ApiError

__all__ = ["BodyLimitMiddleware", "StrictJsonRoute", "strict_loads"]


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ApiError(400, "malformed_json", f"duplicate key {key[:64]!r} in a JSON object")
        document[key] = value
    return document


def _constant(name: str) -> Any:
    raise ApiError(400, "malformed_json", f"{name} is not JSON")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ApiError(400, "malformed_json", f"number {text[:64]} is out of range")
    return value


def strict_loads(body: bytes) -> Any:
    """Parse `body` as strict JSON (UTF-8) or raise a 400 `ApiError` saying why."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "malformed_json", "the body is not UTF-8") from None
    try:
        return json.loads(
            text, object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float
        )
    except RecursionError:
        raise ApiError(400, "malformed_json", "the JSON document is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"invalid JSON: {exc.msg} at {exc.pos}") from None
    except ValueError as exc:  # e.g. an integer literal with more than 4300 digits
        raise ApiError(400, "malformed_json", f"invalid JSON: {exc}"[:200]) from None


class StrictJsonRoute(APIRoute):
    """A route whose JSON body is parsed by `strict_loads` before FastAPI validates it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            body = await request.body()
            if body:
                content_type = request.headers.get("content-type", "application/json")
                if not content_type.split(";")[0].strip().lower().endswith("json"):
                    raise ApiError(415, "unsupported_media_type", "send application/json")
                # Starlette's request.json() returns this cached document.
                request._json = strict_loads(body)
            return await handler(request)

        return strict_handler


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
