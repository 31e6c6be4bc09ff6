"""Admission before the body: the key is checked and rate limited from the headers alone.

A hostile caller's cheapest attack is a large body: reading and parsing it costs the server far
more than sending it costs the caller. So this pure ASGI middleware runs before anything reads a
byte of the body. For every route but the public ones (`PUBLIC_PATHS`: probes, documentation,
the console's empty pages and their assets) it takes the key from the headers (``Authorization:
Bearer`` or ``X-API-Key``), verifies it, takes a request token and, from a declared
``Content-Length``, the body's bytes from the key's budgets, and answers 401 or 429 without
reading the body. Requests with no valid key are limited per client address and globally;
public routes take no body, so theirs is never read. The principal found is left in the scope
(`PRINCIPAL`) for the routes (`context.authenticate` reads it).

While the body is read, it also bounds the wait for each chunk (408 and the connection closed
when a body stalls), charges a chunked body's bytes as they arrive, and treats a client that
disconnects mid-body as what it is, a client closing its request: one log line, no traceback, and
status 499 in the metrics (`STATUS_OVERRIDE`), never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse

from tbledger.api.console import CONSOLE_PATHS
from tbledger.api.docs import DOCS_PATHS
from tbledger.api.keys import Principal, token_of
from tbledger.limits import HTTP_BODY_IDLE_TIMEOUT_S

if TYPE_CHECKING:
    from tbledger.api.context import ApiContext

__all__ = ["PRINCIPAL", "PUBLIC_PATHS", "STATUS_OVERRIDE", "GuardMiddleware"]

log = logging.getLogger("tbledger.api")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Routes anyone may call (ops.py's probes, the OpenAPI document, the documentation pages with
# their vendored assets, and the console's empty pages with their assets, each at a fixed path);
# none takes a body. The console's fragments carry data, so they need a key like the API.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"}) | DOCS_PATHS | CONSOLE_PATHS
# Probes are limited per client address only: a keyless flood from elsewhere must not make a load
# balancer's health check fail.
_PROBES = frozenset({"/healthz", "/readyz"})

# Scope keys: the verified caller, and a status for the metrics when no response was sent.
PRINCIPAL = "tbledger.principal"
STATUS_OVERRIDE = "tbledger.status"

# Not a standard status: nginx's "client closed request", which dashboards already know.
CLIENT_CLOSED_REQUEST = 499


class _BodyStalledError(Exception):
    pass


class _ClientGoneError(Exception):
    pass


def _error(status: int, code: str, message: str, headers: dict[str, str] | None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def _unauthorized() -> JSONResponse:
    return _error(
        401,
        "unauthorized",
        "a valid API key is required (Authorization: Bearer <key> or X-API-Key)",
        {"WWW-Authenticate": "Bearer"},
    )


def _rate_limited(message: str, wait_s: int) -> JSONResponse:
    return _error(429, "rate_limited", message, {"Retry-After": str(wait_s)})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return max(0, int(value))
            except ValueError:
                return None  # BodyLimitMiddleware refuses it
    return None


class GuardMiddleware:
    """Authenticate and rate limit from the headers; bound and account for the body's reading."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        body_idle_timeout_s: float = HTTP_BODY_IDLE_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.body_idle_timeout_s = body_idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx: ApiContext = scope["app"].state.ctx
        client = scope.get("client")
        address = str(client[0]) if client else ""
        path = scope["path"]
        if path in PUBLIC_PATHS:
            wait_s = ctx.limiter.acquire_keyless(address, shared=path not in _PROBES)
            if wait_s:
                ctx.metrics.rate_limited.inc()
                await self._keyless_limited(wait_s)(scope, receive, send)
                return
            await self.app(scope, _without_body(receive), send)
            return
        principal = await self._principal(ctx, scope, address)
        if not isinstance(principal, Principal):
            await principal(scope, receive, send)
            return
        refusal = self._limited(ctx, principal, _content_length(scope))
        if refusal is not None:
            ctx.metrics.rate_limited.inc()
            await refusal(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        await self._admitted(ctx, principal, scope, receive, send)

    async def _principal(
        self, ctx: ApiContext, scope: Scope, address: str
    ) -> Principal | JSONResponse:
        """The verified caller, or the answer to send instead (401, or 429 past the keyless
        limits)."""
        token = token_of(scope.get("headers", ()))
        principal = None
        if token is not None:
            # A store read is the most a keyless request can cost; a flood past the keyless
            # limits is refused before it.
            if ctx.keys.needs_lookup(token) and ctx.limiter.keyless_blocked(address):
                wait_s = ctx.limiter.acquire_keyless(address)
                ctx.metrics.rate_limited.inc()
                return self._keyless_limited(wait_s or 1)
            principal = await ctx.keys.verify(token)
        if principal is not None:
            return principal
        wait_s = ctx.limiter.acquire_keyless(address)
        if wait_s:
            ctx.metrics.rate_limited.inc()
            return self._keyless_limited(wait_s)
        return _unauthorized()

    @staticmethod
    def _keyless_limited(wait_s: int) -> JSONResponse:
        return _rate_limited("too many requests without a valid API key", wait_s)

    @staticmethod
    def _limited(
        ctx: ApiContext, principal: Principal, declared: int | None
    ) -> JSONResponse | None:
        wait_s = ctx.limiter.acquire(principal)
        if wait_s:
            return _rate_limited(f"rate limit of {principal.rate_per_s}/s exceeded", wait_s)
        if declared:
            wait_s = ctx.limiter.acquire_bytes(principal, declared)
            if wait_s:
                return _rate_limited(
                    f"body rate limit of {principal.bytes_per_s} bytes/s exceeded", wait_s
                )
        return None

    async def _admitted(
        self, ctx: ApiContext, principal: Principal, scope: Scope, receive: Receive, send: Send
    ) -> None:
        chunked = _content_length(scope) is None
        done = False
        started = False

        async def guarded() -> MutableMapping[str, Any]:
            nonlocal done
            if done:  # the body is in; later calls wait for a disconnect (streams), unbounded
                return await receive()
            try:
                async with asyncio.timeout(self.body_idle_timeout_s):
                    message = await receive()
            except TimeoutError:
                raise _BodyStalledError from None
            if message["type"] == "http.disconnect":
                raise _ClientGoneError
            if message["type"] == "http.request":
                if chunked:
                    ctx.limiter.charge_bytes(principal, len(message.get("body", b"")))
                done = not message.get("more_body", False)
            return message

        async def tracking(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded, tracking)
        except _BodyStalledError:
            log.info(
                "%s %s: the body stalled for %ss; closing the connection",
                scope.get("method"),
                scope["path"],
                self.body_idle_timeout_s,
            )
            if not started:
                response = _error(
                    408,
                    "request_timeout",
                    f"no body bytes arrived for {self.body_idle_timeout_s} s",
                    {"Connection": "close"},
                )
                await response(scope, receive, send)
        except (_ClientGoneError, ClientDisconnect):
            log.info(
                "%s %s: the client closed the connection before sending its whole body",
                scope.get("method"),
                scope["path"],
            )
            if not started:
                scope[STATUS_OVERRIDE] = CLIENT_CLOSED_REQUEST


def _without_body(receive: Receive) -> Receive:
    """A receive that reports an empty body without reading the real one (then passes on only
    a disconnect)."""
    given = False

    async def empty() -> MutableMapping[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message

    return empty
