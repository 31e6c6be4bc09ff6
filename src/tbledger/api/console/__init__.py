"""The web console's addresses: its public pages and assets, and the policy its answers carry.

The console (`tbledger.api.console.routes`) is a shell like the API (DESIGN §10): served by the
same process, every asset from the package, and scoped exactly as the key that signed in. Its
pages are empty shells that anyone may load, as anyone may load ``/docs``; the key lives in the
browser's session storage and goes, as the API's ``Authorization`` header, with every request the
page makes for data, to the ``/v1`` routes or to the console's fragment routes, which the guard
authenticates and `tbledger.api.policy` scopes like any other route.

This module holds only the fixed paths and headers, so the guard can admit `CONSOLE_PATHS`
without a key while importing nothing of the routes. Vendored libraries sit at paths that carry
their version (a browser may keep them for a year); the console's own script and stylesheet at
fixed paths that are revalidated on every load.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ASSET_ROUTE",
    "CONSOLE_ASSETS",
    "CONSOLE_PAGES",
    "CONSOLE_PATHS",
    "CONSOLE_URL",
    "CONTENT_SECURITY_POLICY",
    "HTMX_VERSION",
    "SECURITY_HEADERS",
    "UPLOT_VERSION",
]

# The vendored releases (static/vendor/README.md says where they come from and how to update).
HTMX_VERSION: Final = "2.0.11"
UPLOT_VERSION: Final = "1.6.32"

CONSOLE_URL: Final = "/console"
_STATIC = "/console/static"

# Each public page's path and its template: shells that hold no data.
CONSOLE_PAGES: Final = {
    CONSOLE_URL: "accounts.html",
    "/console/sign-in": "sign_in.html",
    "/console/account": "account.html",
    "/console/transfer": "transfer.html",
    "/console/system": "system.html",
    "/console/events": "events.html",
    "/console/health": "health.html",
}

# The assets, served at ``/console/static/{asset}``: each name's file under the console's static
# folder, its media type, and whether the name carries one release (cached for good) or is the
# console's own file (revalidated on every load).
CONSOLE_ASSETS: Final = {
    f"htmx-{HTMX_VERSION}.min.js": (
        "vendor/htmx.org/htmx.min.js",
        "text/javascript; charset=utf-8",
        True,
    ),
    f"uplot-{UPLOT_VERSION}.iife.min.js": (
        "vendor/uplot/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        True,
    ),
    f"uplot-{UPLOT_VERSION}.min.css": (
        "vendor/uplot/uPlot.min.css",
        "text/css; charset=utf-8",
        True,
    ),
    "console.js": ("console.js", "text/javascript; charset=utf-8", False),
    "console.css": ("console.css", "text/css; charset=utf-8", False),
    "favicon.svg": ("favicon.svg", "image/svg+xml", False),
}
ASSET_ROUTE: Final = f"{_STATIC}/{{asset}}"

# Every path the guard admits without a key: the root (a redirect to the console), the pages and
# each asset (exactly: a neighbour of an asset needs a key like any other path). The fragment
# routes are not here: they answer with data, so they need a key.
CONSOLE_PATHS: Final = frozenset(
    {"/", *CONSOLE_PAGES, *(f"{_STATIC}/{name}" for name in CONSOLE_ASSETS)}
)

# Scripts, styles, images and requests from the service itself only: no inline script or style
# (so text that reaches a page, an account's name or metadata, can never run), no eval, no
# frames, no plugins, forms posting nowhere else.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
