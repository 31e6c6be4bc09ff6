"""Direct routes: the hottest writes answered without the framework's per-request machinery.

``POST /v1/transfers`` (and its siblings) are declared as FastAPI routes like every other: that
is where the OpenAPI document comes from, and the route functions call the same handlers as
here. But FastAPI spends far more per request than the service does on a single transfer
(matching the path against every route in turn, solving the dependency graph, an exit stack, a
`Request` object; measured: about half the server's CPU per single-transfer request). So this
pure ASGI middleware, innermost of the app's own (after `GuardMiddleware` has admitted the key
and `BodyLimitMiddleware` bounds the body), answers those paths itself, with the same steps in
the same order:

1. the strict body checks (`strict.checked_document`: NUL in the query, content type, strict
   JSON, metadata total, the events charged to the key);
2. the ``Idempotency-Key`` header and the body validated by the same pydantic models; their
   errors are one `RequestValidationError` with the locations FastAPI gives them
   (``["header", "Idempotency-Key"]``, ``["body", ...]``);
3. the route's handler, and its result rendered as its response model;
4. an exception becomes the answer of the handler the app registered for it, as Starlette's
   exception middleware would choose it (a handler for ``Exception`` is the server-error
   handler's, further out, as there).

The metrics label the request with the route's path template, as for any other route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from tbledger.api.context import (
    IDEMPOTENCY_KEY_PATTERN,
    ApiContext,
    caller_of,
    namespaced_key,
)
from tbledger.api.keys import Principal
from tbledger.api.strict import checked_document

__all__ = ["DirectRoute", "DirectRoutes"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_IDEMPOTENCY_KEY: TypeAdapter[str] = TypeAdapter(
    Annotated[str, Field(pattern=IDEMPOTENCY_KEY_PATTERN)]
)

Handler = Callable[[ApiContext, Principal, Any, "str | None"], Awaitable[BaseModel]]


@dataclass(frozen=True, slots=True)
class DirectRoute:
    """``POST path``: `body` validated, then ``handler(ctx, caller, body, idempotency_key)``,
    whose result is the response with `status`."""

    path: str
    body: type[BaseModel]
    handler: Handler
    status: int = 200


@dataclass(frozen=True, slots=True)
class _Matched:
    """What the metrics read of a matched route: its path template."""

    path: str


class DirectRoutes:
    """Answer the `routes` (``POST`` only) directly; pass everything else on."""

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], routes: Iterable[DirectRoute]
    ) -> None:
        self.app = app
        self.routes = {route.path: route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = _Matched(route.path)
        try:
            response = await _answer(route, scope, receive)
        except Exception as exc:
            handler = _handler_for(scope["app"].exception_handlers, exc)
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
        await response(scope, receive, send)


async def _answer(route: DirectRoute, scope: Scope, receive: Receive) -> Response:
    principal = caller_of(scope)  # the guard admits these paths with a key only
    query = scope.get("query_string", b"")
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True) if query else ()
    document = checked_document(scope, pairs, await _body(receive))
    errors: list[dict[str, Any]] = []
    key = _idempotency_key(scope, principal, errors)
    body = None
    if document is None:
        errors.append({"type": "missing", "loc": ("body",), "msg": "Field required"})
    else:
        try:
            body = route.body.model_validate(document)
        except PydanticValidationError as exc:
            errors.extend(
                {**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)
            )
    if errors or body is None:
        raise RequestValidationError(errors, body=document)
    result = await route.handler(scope["app"].state.ctx, principal, body, key)
    return Response(
        result.model_dump_json().encode(),
        status_code=route.status,
        media_type="application/json",
    )


def _idempotency_key(scope: Scope, caller: Principal, errors: list[dict[str, Any]]) -> str | None:
    """The ``Idempotency-Key`` header namespaced by the calling key, or None; a malformed one
    adds its validation error."""
    for name, value in scope.get("headers", ()):
        if name == b"idempotency-key":
            raw = value.decode("latin-1")
            try:
                _IDEMPOTENCY_KEY.validate_python(raw)
            except PydanticValidationError as exc:
                errors.extend(
                    {**error, "loc": ("header", "Idempotency-Key")}
                    for error in exc.errors(include_url=False)
                )
                return None
            return namespaced_key(caller, raw)
    return None


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _handler_for(
    handlers: dict[Any, Callable[..., Awaitable[Response]]], exc: Exception
) -> Callable[..., Awaitable[Response]] | None:
    """The handler Starlette's exception middleware would pick for `exc` (by its classes, most
    specific first); the ``Exception`` handler is left to the server-error middleware."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
