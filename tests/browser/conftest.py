"""The console in a real browser: a live ``tbledger serve``, a seeded day, and headless Chromium.

The service is ``tbledger serve`` in a process of its own on the embedded engine, its keys made by
``tbledger keys create`` and its day played by ``tbledger demo --day`` (seed 1): the console is
tested as an operator would run it. The browser is Debian's Chromium driven by Playwright's Python
package; Playwright's own browser downloads are never used. When Chromium is missing it is
installed with apt-get if the tests run as root (once per session), and the browser tests are
skipped, saying why, otherwise.

Each page a test opens is watched: an error in the console, an uncaught exception or a
Content-Security-Policy violation fails the test when it ends (`Watched`), unless the test said
beforehand which error it expects (a 404 it provoked on purpose).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.serve_process import cli_json, create_key, served

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAY_SEED = 1
VIEWPORT = {"width": 1280, "height": 900}
# Reports every Content-Security-Policy violation of every page to the test, from before any of
# the page's own scripts run (Playwright's init scripts are not subject to the page's policy).
_CSP_WATCH = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.reportCspViolation(`${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}`);
});
"""


def _install_chromium() -> str | None:
    """Install Debian's chromium with apt-get; None, or why it could not be."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]

    def attempt() -> subprocess.CompletedProcess[str]:
        return subprocess.run(install, env=env, capture_output=True, text=True, check=False)

    done = attempt()
    if done.returncode != 0:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        done = attempt()
    if done.returncode != 0:
        return f"apt-get install chromium failed: {done.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, installed now if missing and we are root; else a skip that says why."""
    if shutil.which("chromium") is None:
        if os.geteuid() != 0:
            pytest.skip("no chromium on PATH, and not root to apt-get install it")
        failure = _install_chromium()
        if failure is not None:
            pytest.skip(failure)
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is on PATH but not at {CHROMIUM}")
    return CHROMIUM


@pytest.fixture(scope="package")
def browser(chromium: str) -> Iterator[Browser]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is in the dev extras: pip install -e '.[dev]'"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Live:
    """The running service, its keys, and what the seeded day made."""

    url: str
    admin_key: str
    owner_key: str
    owner: str
    day: dict[str, Any]
    data_dir: Path

    def api(self, key: str | None = None) -> httpx.Client:
        """A client of the service's API with a key (the admin key by default)."""
        token = key or self.admin_key
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def account(self, handle: str) -> str:
        account_id: str = self.day["accounts"][handle]
        return account_id


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """``tbledger serve`` with a seeded day, an admin key and an owner key for Alice."""
    data_dir = tmp_path_factory.mktemp("console")
    with served(data_dir) as url:
        admin_key = create_key(data_dir, name="console admin")
        owner_key = create_key(data_dir, name="alice's console", owner="alice")
        day = cli_json(
            "demo", "--day", "--seed", str(DAY_SEED), "--url", url, "--api-key", admin_key
        )
        yield Live(url, admin_key, owner_key, "alice", day, data_dir)


@dataclass
class Watched:
    """A page, and every error it showed: console errors, uncaught exceptions, CSP violations."""

    page: Page
    base: str
    errors: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect_error(self, pattern: str) -> None:
        """An error the test provokes on purpose (matched with re.search) is not a failure."""
        self.expected.append(re.compile(pattern))

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.expected)]

    def sign_in(self, key: str) -> None:
        """Sign in through the sign-in page, as a person would, and land on the accounts page."""
        self.goto("/")
        self.page.wait_for_url(re.compile(r"/console/sign-in"))
        self.page.fill("#api-key", key)
        self.page.click("#sign-in-form button[type=submit]")
        self.page.wait_for_url(re.compile(r"/console$"))


@pytest.fixture
def watched(browser: Browser, live: Live) -> Iterator[Watched]:
    context = browser.new_context(viewport=VIEWPORT)
    errors: list[str] = []
    context.expose_function(
        "reportCspViolation", lambda text: errors.append(f"CSP violation: {text}")
    )
    context.add_init_script(_CSP_WATCH)
    page = context.new_page()
    seen = Watched(page, live.url, errors)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.errors.append(f"console error: {message.text}")
        # Chromium reports a policy violation as a console message too.
        if "Content Security Policy" in message.text:
            seen.errors.append(f"CSP: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
    try:
        yield seen
        assert seen.unexpected() == [], "the console showed errors"
    finally:
        context.close()
