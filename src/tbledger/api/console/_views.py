"""Rendering for the console: one Jinja2 environment over the package's templates, and answers.

Templates escape everything they print (autoescape): names, owners and metadata are written by
callers, and the console shows them as text, never as markup. With the Content-Security-Policy
(no inline script, no inline style) a name that slipped through would still not run. Every answer
carries the console's security headers; answers with data also say ``no-store``, so no cache on
the way or on disk keeps what one key was shown.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib.resources import files
from typing import Any, Final

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from tbledger.api.console import (
    CONSOLE_URL,
    HTMX_VERSION,
    SECURITY_HEADERS,
    UPLOT_VERSION,
)

__all__ = ["asset", "asset_bytes", "fragment", "page", "root_of"]

# The console's own files are revalidated on every load (their paths carry no version); the
# vendored ones name one release each, so a cached copy is never stale.
_REVALIDATE: Final = "no-cache"
_IMMUTABLE: Final = "public, max-age=31536000, immutable"
# Answers with data: never kept by a cache, on disk or on the way.
_NO_STORE: Final = "no-store"


def _clock(time_text: str | None) -> str:
    """An ISO 8601 UTC time to the nanosecond as people read it: to the second, in UTC."""
    if not time_text:
        return ""
    date, _, rest = time_text.partition("T")
    return f"{date} {rest[:8]} UTC" if rest else date


def _short_id(text: str | None) -> str:
    """A fixed-width hex id shortened for a table cell (the full id is in the link and title)."""
    if not text:
        return ""
    digits = text.removeprefix("0x").lstrip("0") or "0"
    return f"…{digits[-10:]}" if len(digits) > 10 else digits


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tbledger.api.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clock"] = _clock
    env.filters["short_id"] = _short_id
    env.globals.update(
        console_url=CONSOLE_URL, htmx_version=HTMX_VERSION, uplot_version=UPLOT_VERSION
    )
    return env


def root_of(request: Request) -> str:
    """The prefix a proxy mounted the app under, for the page's own URLs (as /docs does)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _render(template: str, context: Mapping[str, Any]) -> str:
    return _environment().get_template(template).render(**context)


def page(request: Request, template: str, **context: Any) -> HTMLResponse:
    """A public shell: no data, only what the address says (an id to ask for, escaped)."""
    body = _render(template, {"root": root_of(request), **context})
    headers = {**SECURITY_HEADERS, "Cache-Control": _REVALIDATE}
    return HTMLResponse(body, headers=headers)


def fragment(request: Request, template: str, **context: Any) -> HTMLResponse:
    """A piece of a page with data, for the key that asked: never cached."""
    body = _render(f"fragments/{template}", {"root": root_of(request), **context})
    headers = {**SECURITY_HEADERS, "Cache-Control": _NO_STORE}
    return HTMLResponse(body, headers=headers)


@functools.cache
def asset_bytes(name: str) -> bytes:
    """A static file's bytes, read once."""
    return files("tbledger.api.console").joinpath(f"static/{name}").read_bytes()


def asset(name: str, media_type: str, *, versioned: bool) -> Response:
    headers = {**SECURITY_HEADERS, "Cache-Control": _IMMUTABLE if versioned else _REVALIDATE}
    return Response(asset_bytes(name), media_type=media_type, headers=headers)
