"""The console's routes: public shells and assets, the keyed fragments, and ``/`` to the console.

`install_console` adds them to the app. The shells (`CONSOLE_PAGES`) and assets
(`CONSOLE_ASSETS`) are what the guard admits without a key: a shell holds the page's frame and,
at most, the id or filters its address names, escaped; it never reads the service. What a page
shows comes from requests the page makes with the signed-in key: the ``/v1`` routes themselves
(the balance chart, the live event feed) and the fragment routes (`fragments`), which render
the ``/v1`` routes' answers as HTML. None of them is in the OpenAPI document: they are the
console, not the API, and the authority table lists them all the same.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from tbledger.api.console import ASSET_ROUTE, CONSOLE_ASSETS, CONSOLE_PAGES, CONSOLE_URL
from tbledger.api.console._views import asset, page, root_of
from tbledger.api.console.fragments import FRAGMENTS
from tbledger.api.schemas import ID_PATTERN

__all__ = ["install_console"]

_ID = re.compile(ID_PATTERN)
# The accounts page's filters, echoed into its form so a link can open a filtered list.
_FILTERS: Final = ("name", "account_type", "ledger", "status", "owner_id")
_FILTER_CHARS_MAX: Final = 200

Handler = Callable[[Request], Awaitable[Response]]


def install_console(app: FastAPI) -> None:
    """Serve the console on `app`: ``/`` redirects to it; its shells and assets need no key."""
    app.add_route("/", _to_console, include_in_schema=False)
    for path, template in CONSOLE_PAGES.items():
        app.add_route(path, _shell(template), include_in_schema=False)
    app.add_route(ASSET_ROUTE, _asset, include_in_schema=False)
    for path, endpoint in FRAGMENTS.items():
        app.add_api_route(
            path, endpoint, methods=["GET"], response_class=HTMLResponse, include_in_schema=False
        )


async def _to_console(request: Request) -> Response:
    return RedirectResponse(root_of(request) + CONSOLE_URL, status_code=307)


def _shell(template: str) -> Handler:
    async def shell(request: Request) -> Response:
        query = request.query_params
        wanted = query.get("id", "")
        filters = {
            name: query.get(name, "")[:_FILTER_CHARS_MAX] for name in _FILTERS if name in query
        }
        return page(
            request,
            template,
            # An id only as the API spells one; anything else is no id (the page says so).
            id=wanted if _ID.fullmatch(wanted) else None,
            filters=filters,
        )

    return shell


async def _asset(request: Request) -> Response:
    # The guard admits only the listed names without a key; a keyed request for another name
    # finds nothing here either.
    found = CONSOLE_ASSETS.get(request.path_params["asset"])
    if found is None:
        return PlainTextResponse("no such asset", status_code=404)
    name, media_type, versioned = found
    return asset(name, media_type, versioned=versioned)
