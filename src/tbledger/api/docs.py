"""The API's documentation pages, offline: Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank where the service
runs without internet access, and every visit tells a third party who reads the documentation.
Both viewers are vendored into the package instead (``static/vendor``: swagger-ui-dist and
redoc from the npm registry, unmodified, with their licences; see the README there) and served
by the app itself, at fixed paths that carry the viewer's version, so a browser may keep them
for a year and never mixes an old cached file with a new page. The pages come from FastAPI's
`get_swagger_ui_html` and `get_redoc_html` pointed at those paths, with Swagger UI's online
validator and ReDoc's web fonts turned off: a page asks nothing of anyone but the service.

The documentation is public, as ``/openapi.json`` is: the guard admits exactly `DOCS_PATHS`
without a key (none takes a body), under the limits for requests without a key. `install_docs`
adds the routes to an app created with ``docs_url=None, redoc_url=None``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.responses import HTMLResponse, Response

__all__ = [
    "DOCS_ASSETS",
    "DOCS_PATHS",
    "REDOC_VERSION",
    "SWAGGER_UI_VERSION",
    "install_docs",
]

# The vendored releases (static/vendor/README.md says where they come from and how to update).
SWAGGER_UI_VERSION: Final = "5.36.0"
REDOC_VERSION: Final = "2.5.4"

DOCS_URL: Final = "/docs"
OAUTH2_REDIRECT_URL: Final = "/docs/oauth2-redirect"
REDOC_URL: Final = "/redoc"

_SWAGGER = f"/docs/static/swagger-ui-dist-{SWAGGER_UI_VERSION}"
_REDOC = f"/docs/static/redoc-{REDOC_VERSION}"
SWAGGER_JS_URL: Final = f"{_SWAGGER}/swagger-ui-bundle.js"
SWAGGER_CSS_URL: Final = f"{_SWAGGER}/swagger-ui.css"
FAVICON_URL: Final = f"{_SWAGGER}/favicon-32x32.png"
REDOC_JS_URL: Final = f"{_REDOC}/redoc.standalone.js"

# Each asset's URL path: its file under the package's static/vendor, and its media type.
DOCS_ASSETS: Final = {
    SWAGGER_JS_URL: ("swagger-ui-dist/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    SWAGGER_CSS_URL: ("swagger-ui-dist/swagger-ui.css", "text/css; charset=utf-8"),
    FAVICON_URL: ("swagger-ui-dist/favicon-32x32.png", "image/png"),
    REDOC_JS_URL: ("redoc/redoc.standalone.js", "text/javascript; charset=utf-8"),
}

# Every path the documentation answers on, all public.
DOCS_PATHS: Final = frozenset({DOCS_URL, OAUTH2_REDIRECT_URL, REDOC_URL, *DOCS_ASSETS})

# The asset paths name one release each: a cached copy is never stale.
_ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"

# Swagger UI sends the whole document to validator.swagger.io for a badge unless told not to.
_SWAGGER_UI_PARAMETERS = {
    "validatorUrl": None,
    "deepLinking": True,
    "persistAuthorization": False,
}


@functools.cache
def _asset(name: str) -> bytes:
    """A vendored file's bytes, read once (a few MiB for all of them, only once asked for)."""
    return files("tbledger.api").joinpath(f"static/vendor/{name}").read_bytes()


def _root(request: Request) -> str:
    # Behind a proxy that mounts the app under a prefix, the pages' URLs carry it, as FastAPI's
    # own documentation pages do.
    return str(request.scope.get("root_path", "")).rstrip("/")


def install_docs(app: FastAPI, *, title: str) -> None:
    """Serve the documentation pages and their vendored assets on `app` (out of the OpenAPI)."""
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=root + SWAGGER_JS_URL,
            swagger_css_url=root + SWAGGER_CSS_URL,
            swagger_favicon_url=root + FAVICON_URL,
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            swagger_ui_parameters=_SWAGGER_UI_PARAMETERS,
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=root + REDOC_JS_URL,
            redoc_favicon_url=root + FAVICON_URL,
            with_google_fonts=False,
        )

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    for path, (name, media_type) in DOCS_ASSETS.items():
        app.add_route(path, _asset_route(name, media_type), include_in_schema=False)


def _asset_route(name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    async def asset(request: Request) -> Response:
        return Response(
            _asset(name), media_type=media_type, headers={"Cache-Control": _ASSET_CACHE_CONTROL}
        )

    return asset
