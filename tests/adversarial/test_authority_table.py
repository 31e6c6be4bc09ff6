"""The authority table is the specification: every route is in it and answers as it says.

`tbledger.api.policy.ROUTES` lists every route with who may call it; docs/api.md shows the same
table. These tests walk the app's OpenAPI, and the web console's routes, which stay out of the
API's document: a route missing from the table (or a table row with no route) fails, the
documentation must match the table row for row, and each route is called with no key, an owner
key and an admin key to check that the app enforces what the table says.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.routing import Route

from tbledger.api.console import CONSOLE_ASSETS
from tbledger.api.policy import ROUTES, Access
from tests.adversarial.conftest import House

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
_KEY_WORD = {Access.PUBLIC: "none", Access.KEY: "any", Access.ADMIN: "admin"}
# A well-formed id that names nothing: routes get as far as their authority check.
_SOME_ID = "0x" + "7" * 32


def _operations(house: House) -> set[tuple[str, str]]:
    spec: dict[str, Any] = house.api.app.openapi()
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    return documented | _console_operations(house)


def _console_operations(house: House) -> set[tuple[str, str]]:
    """The console's routes (its pages, assets and fragments, and ``/`` leading to it)."""
    return {
        (method, route.path)
        for route in house.api.app.routes
        if isinstance(route, Route) and (route.path == "/" or route.path.startswith("/console"))
        for method in route.methods or ()
        if method != "HEAD"  # answered with GET's headers, by Starlette, for every GET route
    }


# A real name for the placeholders that name something fixed (an id names nothing instead).
_PLACEHOLDERS = {"{ledger}": "USD", "{asset}": next(iter(CONSOLE_ASSETS))}


def _concrete(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", lambda m: _PLACEHOLDERS.get(m.group(0), _SOME_ID), path)


async def _call(house: House, method: str, path: str, headers: dict[str, str]) -> Any:
    body = {} if method in ("POST", "PUT") else None
    # The event feed follows the audit log forever unless told not to.
    params = {"follow": "false"} if path == "/v1/events" else None
    return await house.http.request(
        method, _concrete(path), json=body, params=params, headers=headers
    )


async def test_every_route_is_in_the_authority_table_and_nothing_else_is(house: House) -> None:
    operations = _operations(house)
    assert operations - set(ROUTES) == set(), "routes missing from tbledger.api.policy.ROUTES"
    assert set(ROUTES) - operations == set(), "table rows with no route"


def test_the_documented_table_is_the_policy_table() -> None:
    section = DOCS.read_text().split("\n## Authority\n", 1)[1].split("\n## ", 1)[0]
    documented = [
        line
        for line in section.splitlines()
        if re.match(r"^\| `(GET|POST|PUT|PATCH|DELETE) /[^`]*` \| (none|any|admin) \| ", line)
    ]
    expected = [
        f"| `{method} {path}` | {_KEY_WORD[rule.access]} | {rule.owner} |"
        for (method, path), rule in ROUTES.items()
    ]
    assert documented == expected


async def test_each_route_answers_as_the_table_says(house: House) -> None:
    for (method, path), rule in ROUTES.items():
        keyless = await _call(house, method, path, {})
        owner = await _call(house, method, path, house.alice)
        admin = await _call(house, method, path, house.admin)
        where = f"{method} {path}"
        assert admin.status_code < 500, (where, admin.text)
        assert admin.status_code not in (401, 403), (where, admin.text)
        if rule.access is Access.PUBLIC:
            assert keyless.status_code not in (401, 403), (where, keyless.text)
            continue
        assert keyless.status_code == 401, (where, keyless.text)
        if rule.access is Access.ADMIN:
            assert owner.status_code == 403, (where, owner.text)
            assert owner.json()["error"]["code"] == "forbidden", (where, owner.text)
        else:
            assert owner.status_code not in (401, 403) or (
                owner.json()["error"]["message"] != "this route needs an admin key"
            ), (where, owner.text)
    # Nothing above moved money.
    assert await house.posted(house.A) == "100.00"
    assert await house.posted(house.BM) == "0.00"
