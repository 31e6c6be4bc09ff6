"""The console in Chromium, against ``tbledger serve`` with a seeded day: what a person sees.

An admin signs in, finds Alice by name and opens her account: the chart draws exactly the points
of ``GET /v1/accounts/{id}/history``, the balances are the engine's and her two open holds count
down. A transfer opened from an account's activity shows its audit history as the API has it. A
transfer made while the live feed is open appears in it. An owner key sees its own accounts and
nothing of anyone else's. No page shows a console error or breaks its Content-Security-Policy
(the `watched` fixture checks every page).

``TBLEDGER_UPDATE_SCREENSHOTS=1`` also writes the account page's screenshot to
docs/images/console-account.png, which the README shows.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Live, Watched

pytestmark = pytest.mark.timeout(180)

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "console-account.png"
_COUNTDOWN = re.compile(r"in (\d+d )?(\d+h )?\d\dm \d\ds")
# Counts the painted pixels of the chart's canvas: uPlot drew something, not only a frame.
_PAINTED = """(box) => {
  const canvas = box.querySelector("canvas");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let alpha = 3; alpha < pixels.length; alpha += 4) if (pixels[alpha]) painted++;
  return painted;
}"""


def _history(api: httpx.Client, account_id: str) -> list[dict[str, Any]]:
    """Every point of the account's history, through the API's pages."""
    points: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        answer = api.get(f"/v1/accounts/{account_id}/history", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        points.extend(body["points"])
        cursor = body["next_cursor"]
        if cursor is None:
            return points


def _open_account(watched: Watched, name: str, account_id: str) -> None:
    """Find an account by name in the list and open it, as a person would."""
    page = watched.page
    page.wait_for_selector("#accounts-table")
    page.fill("#account-filters input[name=name]", name)
    page.click("#account-filters button[type=submit]")
    row = f'#accounts-table tr[data-account-id="{account_id}"]'
    page.wait_for_selector(row)
    assert page.locator("#accounts-table tbody tr").count() == 1
    page.click(f"{row} a")
    page.wait_for_url(re.compile(r"/console/account\?id="))
    page.wait_for_selector("#balance-chart[data-state=drawn]")


def test_an_account_page_draws_the_engines_history(
    watched: Watched, live: Live, tmp_path: Path
) -> None:
    alice = live.account("alice")
    watched.sign_in(live.admin_key)
    _open_account(watched, "alice@day1", alice)
    page = watched.page

    with live.api() as api:
        history = _history(api, alice)
        balance = api.get(f"/v1/balances/{alice}").json()
    rendered = json.loads(page.get_attribute("#balance-chart", "data-points") or "[]")
    assert rendered == [[p["timestamp"], p["posted"], p["available"]] for p in history]
    # The opening zero, the payroll, the day's spending, two holds and the exchange.
    assert len(history) > 10
    assert history[0]["kind"] == "opening" and history[0]["posted"] == "0.00"
    assert history[-1]["posted"] == balance["posted"]
    assert page.get_attribute("#balance-chart", "data-drawn") == str(len(history))
    assert page.locator("#balance-chart").evaluate(_PAINTED) > 1000

    # The balances are the engine's, now.
    assert page.inner_text("#balance-available") == balance["available"]
    assert page.inner_text("#balance-held") == balance["held"] == "265.00"
    assert page.inner_text("#balance-posted") == balance["posted"]

    # Her two open holds, each counting down to its expiry.
    holds = page.locator("#holds-table tbody tr")
    assert holds.count() == len(live.day["open_holds"]) == 2
    for hold_id in live.day["open_holds"]:
        assert page.locator(f'#holds-table a[title="{hold_id}"]').count() == 1
    first = page.locator("time.countdown").first.inner_text()
    assert _COUNTDOWN.fullmatch(first), first
    page.wait_for_timeout(2100)  # two ticks of the second hand: at least one second less
    assert page.locator("time.countdown").first.inner_text() != first

    # The activity, newest first: the evening's two holds, then the exchange.
    newest = page.locator("#activity-table tbody tr a").evaluate_all(
        "(links) => links.slice(0, 3).map(a => a.title)"
    )
    assert newest == [*reversed(live.day["open_holds"]), live.day["transfers"]["exchange"]]

    page.wait_for_timeout(300)  # the chart's cursor legend settles
    shot = tmp_path / "console-account.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("TBLEDGER_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(shot.read_bytes())


def test_a_transfer_shows_its_audit_history(watched: Watched, live: Live) -> None:
    """Bob's fuel hold, captured in part: opened from his account's activity."""
    bob = live.account("bob")
    hold = live.day["transfers"]["partial-capture-hold"]
    watched.sign_in(live.admin_key)
    _open_account(watched, "bob@day1", bob)
    page = watched.page
    page.click(f'#activity-table a[title="{hold}"] >> nth=0')
    page.wait_for_url(re.compile(r"/console/transfer\?id="))
    page.wait_for_selector("#audit-history")

    with live.api() as api:
        found = api.get(f"/v1/transfers/{hold}").json()
    shown = page.locator("#audit-history li").evaluate_all(
        "(items) => items.map(i => i.dataset.kind)"
    )
    assert shown == [event["kind"] for event in found["audit"]]
    assert shown[0] == "submitted" and "pending" in shown and shown[-1] == "posted"
    seqs = page.locator("#audit-history .seq").all_inner_texts()
    assert seqs == [f"#{event['seq']}" for event in found["audit"]]
    assert "80.00 USD" in page.inner_text(".facts")
    assert "pending" in page.inner_text(".facts")  # its flags


def test_the_live_feed_shows_a_new_transfer(watched: Watched, live: Live) -> None:
    watched.sign_in(live.admin_key)
    watched.goto("/console/events")
    page = watched.page
    page.wait_for_selector('#feed-state[data-state="live"]')
    before = page.locator("#event-rows tr").count()
    assert before > 0  # the day's newest events

    # Dave pays the grocer while the page is open (Alice's account stays as the day left it).
    with live.api() as api:
        made = api.post(
            "/v1/transfers",
            json={
                "debit_account_id": live.account("dave"),
                "credit_account_id": live.account("grocer"),
                "amount": "1.23",
                "ledger": "USD",
                "code": "PAYMENT",
            },
        )
    assert made.status_code == 201, made.text
    transfer_id = made.json()["id"]
    arrived = page.locator(f'#event-rows tr a[title="{transfer_id}"]')
    arrived.first.wait_for(timeout=15_000)
    kinds = page.locator("#event-rows tr").evaluate_all(
        "(rows) => rows.map(r => r.querySelector('td:nth-child(2)').innerText)"
    )
    assert "posted" in kinds[:2] and "submitted" in kinds[:2]
    assert page.locator("#event-rows tr").count() >= before + 2


def test_an_owner_key_sees_only_its_own_accounts(watched: Watched, live: Live) -> None:
    page = watched.page
    watched.sign_in(live.owner_key)
    page.wait_for_selector("#accounts-table")
    shown = set(
        page.locator("#accounts-table tbody tr").evaluate_all(
            "(rows) => rows.map(r => r.dataset.accountId)"
        )
    )
    with live.api(live.owner_key) as api:
        listed = api.get("/v1/accounts").json()["accounts"]
    assert {a["owner_id"] for a in listed} == {live.owner}
    assert shown == {a["id"] for a in listed} == {live.account("alice"), live.account("alice-eur")}
    assert "owner alice" in page.inner_text("#whoami")
    for link in ("system", "events", "health"):
        assert page.locator(f'nav [data-nav="{link}"]').is_hidden()

    # Another owner's account answers as a missing one; the platform's pages need an admin key.
    watched.expect_error(r"status of 404|Error Code 404")
    watched.goto(f"/console/account?id={live.account('bob')}")
    page.wait_for_selector("#account .error")
    assert "no account" in page.inner_text("#account .error")
    watched.expect_error(r"status of 403|Error Code 403")
    watched.goto("/console/system")
    page.wait_for_selector("#system .error")
    assert "admin key" in page.inner_text("#system .error")

    # Searching another owner's name finds nothing either.
    watched.goto("/console")
    page.wait_for_selector("#accounts-table")
    page.fill("#account-filters input[name=name]", "bob@day1")
    page.click("#account-filters button[type=submit]")
    page.wait_for_selector("#account-results .empty")
    assert "bob@day1" in page.inner_text("#account-results .empty")


def test_system_accounts_and_health_for_an_admin(watched: Watched, live: Live) -> None:
    page = watched.page
    watched.sign_in(live.admin_key)
    watched.goto("/console/system")
    page.wait_for_selector("#system-table")
    with live.api() as api:
        treasury = api.get("/v1/accounts/by-name/system:treasury:1").json()
        fees = api.get("/v1/accounts/by-name/system:fee_pool:1").json()
    usd = page.locator('#system-table tr[data-ledger="USD"]')
    assert usd.locator('[data-role="treasury"]').inner_text() == treasury["balance"]["posted"]
    assert usd.locator('[data-role="fee_pool"]').inner_text() == fees["balance"]["posted"]
    assert fees["balance"]["posted"] != "0.00"  # the café's fees

    watched.goto("/console/health")
    page.wait_for_selector("#health-tiles")
    assert page.get_attribute("#health-tiles", "data-ready") == "true"
    assert page.inner_text("#breaker .value") == "closed"
    assert page.inner_text("#backlog .value") == "0"


def test_without_a_key_every_page_asks_for_one(watched: Watched, live: Live) -> None:
    page = watched.page
    watched.goto(f"/console/account?id={live.account('alice')}")
    page.wait_for_url(re.compile(r"/console/sign-in\?next="))
    page.fill("#api-key", live.admin_key)
    page.click("#sign-in-form button[type=submit]")
    # Back where it was going, signed in.
    page.wait_for_url(re.compile(r"/console/account\?id="))
    page.wait_for_selector("#balance-chart[data-state=drawn]")
    page.click("#sign-out")
    page.wait_for_url(re.compile(r"/console/sign-in"))
    assert page.evaluate("window.sessionStorage.getItem('tbledger.console.key')") is None
    # Nothing the key read was kept either: htmx keeps no page snapshots (historyCacheSize 0).
    assert page.evaluate("window.sessionStorage.getItem('htmx-history-cache')") is None
    assert page.evaluate("window.localStorage.length") == 0
    watched.goto("/console/events")
    page.wait_for_url(re.compile(r"/console/sign-in\?next="))
