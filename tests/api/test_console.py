"""The web console as the guard and the policy see it, without a browser (tests/browser has one).

Its pages and assets are public and hold no data: each is served without a key, under the
console's Content-Security-Policy, names only the service's own files, and carries no inline
script, style or event handler that the policy would have to allow. Its fragments carry data, so
they need a key and answer exactly as the ``/v1`` routes they render: an owner key sees its own
accounts, another owner's as missing, and gets 403 on the platform's pages. What callers write
(an account's name) is shown as text, never as markup. The vendored libraries are the versions
the package names, and the wheel takes every file the console serves.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from tbledger.api.console import (
    CONSOLE_ASSETS,
    CONSOLE_PAGES,
    CONSOLE_PATHS,
    CONTENT_SECURITY_POLICY,
    HTMX_VERSION,
    UPLOT_VERSION,
)
from tests.api.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tbledger"
CONSOLE = PACKAGE / "api" / "console"
STATIC = CONSOLE / "static"
_URL = re.compile(r"""(?:src|href|hx-get)="([^"]*)\"""")


@pytest.mark.parametrize("path", sorted(CONSOLE_PAGES))
async def test_each_page_is_public_local_and_under_the_policy(api: Api, path: str) -> None:
    r = await api.http.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    page = r.text
    assert "http://" not in page and "https://" not in page, page
    # No inline script, style or handler: the policy allows none, so none must be needed.
    assert not re.search(r"<script(?![^>]*\bsrc=)", page), page
    assert not re.search(r"\sstyle=|<style|\son[a-z]+=", page), page
    for url in _URL.findall(page):
        assert url.startswith("/console"), url
        if url.startswith("/console/static/"):
            served = await api.http.get(url)
            assert served.status_code == 200, url
            name, media_type, versioned = CONSOLE_ASSETS[url.removeprefix("/console/static/")]
            assert served.content == (STATIC / name).read_bytes()
            assert served.headers["content-type"] == media_type
            assert ("immutable" in served.headers["cache-control"]) is versioned
            assert served.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


async def test_the_root_leads_to_the_console_and_only_listed_files_are_public(api: Api) -> None:
    r = await api.http.get("/", follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == "/console"
    for path in ("/console/static/", "/console/static/secret.js", "/console/other"):
        assert (await api.http.get(path)).status_code == 401, path
    # A key does not make an unlisted asset appear.
    r = await api.http.get("/console/static/secret.js", headers=api.admin)
    assert r.status_code == 404
    assert {"/", "/console", "/console/static/console.js"} <= CONSOLE_PATHS
    spec = (await api.http.get("/openapi.json")).json()
    assert not any(p == "/" or p.startswith("/console") for p in spec["paths"])


async def test_an_id_in_the_address_is_only_ever_an_id(api: Api) -> None:
    page = (await api.http.get("/console/account", params={"id": '"><b>x</b>'})).text
    assert "<b>x</b>" not in page and 'hx-get="/console/fragments/account' not in page
    page = (await api.http.get("/console/account", params={"id": "0x1f"})).text
    assert 'hx-get="/console/fragments/account?id=0x1f"' in page
    page = (await api.http.get("/console", params={"owner_id": '"><i>y</i>'})).text
    assert "<i>y</i>" not in page and "&#34;&gt;&lt;i&gt;y&lt;/i&gt;" in page


@pytest.mark.parametrize(
    "path",
    [
        "/console/fragments/whoami",
        "/console/fragments/accounts",
        "/console/fragments/account?id=0x1",
        "/console/fragments/transfer?id=0x1",
        "/console/fragments/system",
        "/console/fragments/events",
        "/console/fragments/health",
    ],
)
async def test_fragments_need_a_key(api: Api, path: str) -> None:
    r = await api.http.get(path)
    assert r.status_code == 401, r.text


async def test_fragments_are_scoped_as_the_key(api: Api) -> None:
    alice = await api.owner("alice")
    mine = await api.account("alice")
    theirs = await api.account("bob", name="bob-checking")
    await api.deposit(mine, "12.50")

    r = await api.http.get("/console/fragments/accounts", headers=alice)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert mine in r.text and theirs not in r.text and "system:treasury" not in r.text
    r = await api.http.get("/console/fragments/accounts", headers=api.admin)
    assert mine in r.text and theirs in r.text and "system:treasury:1" in r.text
    # Naming another owner lists nothing, as GET /v1/accounts does.
    r = await api.http.get("/console/fragments/accounts", params={"owner_id": "bob"}, headers=alice)
    assert theirs not in r.text and "No accounts match" in r.text
    r = await api.http.get(
        "/console/fragments/accounts", params={"name": "bob-checking"}, headers=alice
    )
    assert theirs not in r.text and "No account named" in r.text

    r = await api.http.get("/console/fragments/account", params={"id": mine}, headers=alice)
    assert r.status_code == 200, r.text
    assert 'id="balance-posted">12.50<' in r.text
    r = await api.http.get("/console/fragments/account", params={"id": theirs}, headers=alice)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "account_not_found"

    for path in ("system", "events", "health"):
        r = await api.http.get(f"/console/fragments/{path}", headers=alice)
        assert r.status_code == 403, (path, r.text)
        r = await api.http.get(f"/console/fragments/{path}", headers=api.admin)
        assert r.status_code == 200, (path, r.text)

    who = await api.http.get("/console/fragments/whoami", headers=alice)
    assert 'data-scope="owner"' in who.text and "alice" in who.text


async def test_a_transfer_fragment_names_only_accounts_the_key_may_see(api: Api) -> None:
    alice = await api.owner("alice")
    mine = await api.account("alice", name="alice-checking")
    theirs = await api.account("bob", name="bob-checking")
    await api.deposit(mine, "10.00")
    paid = await api.http.post(
        "/v1/transfers",
        json={"debit_account_id": mine, "credit_account_id": theirs, "amount": "4.00",
              "ledger": "USD"},
        headers=alice,
    )  # fmt: skip
    assert paid.status_code == 201, paid.text
    transfer = paid.json()["id"]
    r = await api.http.get("/console/fragments/transfer", params={"id": transfer}, headers=alice)
    assert r.status_code == 200, r.text
    assert "alice-checking" in r.text and "bob-checking" not in r.text
    assert 'data-kind="submitted"' in r.text and 'data-kind="posted"' in r.text
    r = await api.http.get(
        "/console/fragments/transfer", params={"id": transfer}, headers=api.admin
    )
    assert "bob-checking" in r.text


async def test_what_callers_write_is_shown_as_text(api: Api) -> None:
    name = '<img src=x onerror="alert(1)">'
    account = await api.account("alice", name=name, metadata={"note": "<script>x</script>"})
    r = await api.http.get("/console/fragments/accounts", headers=api.admin)
    assert name not in r.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in r.text
    r = await api.http.get("/console/fragments/account", params={"id": account}, headers=api.admin)
    assert name not in r.text and "<script>" not in r.text


async def test_the_event_fragment_starts_the_feed_at_the_newest_event(api: Api) -> None:
    a = await api.account("alice")
    for _ in range(3):
        await api.deposit(a, "1.00")
    r = await api.http.get("/v1/events", params={"follow": "false"}, headers=api.admin)
    seqs = [int(line[4:]) for line in r.text.splitlines() if line.startswith("id: ")]
    r = await api.http.get("/console/fragments/events", headers=api.admin)
    assert r.status_code == 200, r.text
    assert f'data-since="{seqs[-1]}"' in r.text
    shown = [int(s) for s in re.findall(r'<tr data-seq="([0-9]+)"', r.text)]
    assert shown == sorted(seqs, reverse=True)[: len(shown)]


async def test_health_shows_the_breaker_and_the_backlog(api: Api) -> None:
    r = await api.http.get("/console/fragments/health", headers=api.admin)
    assert r.status_code == 200, r.text
    assert 'data-ready="true"' in r.text
    assert re.search(r'id="breaker">.*?closed', r.text, re.S)
    assert re.search(r'id="backlog">.*?<span class="value">0</span>', r.text, re.S)


def test_templates_need_no_inline_script_or_style() -> None:
    for template in (CONSOLE / "templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=|javascript:", text), template
    script = (STATIC / "console.js").read_text()
    assert "eval(" not in script and "innerHTML" not in script and "new Function" not in script


def test_the_vendored_versions_are_the_ones_the_package_names() -> None:
    htmx = json.loads((STATIC / "vendor" / "htmx.org" / "package.json").read_text())
    uplot = json.loads((STATIC / "vendor" / "uplot" / "package.json").read_text())
    assert (htmx["name"], htmx["version"]) == ("htmx.org", HTMX_VERSION)
    assert (uplot["name"], uplot["version"]) == ("uplot", UPLOT_VERSION)
    readme = (STATIC / "vendor" / "README.md").read_text()
    assert f"| htmx.org | {HTMX_VERSION} |" in readme
    assert f"| uplot | {UPLOT_VERSION} |" in readme
    for folder in ("htmx.org", "uplot"):
        assert (STATIC / "vendor" / folder / "LICENSE").is_file()


def test_the_wheel_takes_every_console_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["tbledger"]
    packaged = {path for pattern in patterns for path in PACKAGE.glob(pattern) if path.is_file()}
    console = {
        path
        for path in CONSOLE.rglob("*")
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts
    }
    assert console - packaged == set()
    assert {STATIC / name for name, _, _ in CONSOLE_ASSETS.values()} <= console
