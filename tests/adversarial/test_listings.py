"""Listings another owner cannot break: `GET /v1/transfers?event_id=` filters by owner and pages
in the store.

An event id is a caller-written label: bob may tag as many transfers as he likes with alice's
event id. Alice's listing of it must still answer, with exactly her own transfers, paged; bob's
shows only his; the admin pages through all of them. No page depends on how many transfers share
the event id.
"""

from __future__ import annotations

from typing import Any

import pytest

from tbledger.limits import BATCH_EVENTS_MAX, HTTP_PAGE_LIMIT_MAX
from tests.adversarial.conftest import House
from tests.support.api import transfer_body

pytestmark = pytest.mark.slow

EVENT = "alice-order-1"


def _transfer(debit: str, credit: str, amount: str) -> dict[str, Any]:
    return transfer_body(debit, credit, amount, event_id=EVENT)


async def _listing(house: House, headers: dict[str, str], limit: int) -> list[list[str]]:
    """Every page of the event's listing as `headers` sees it: the ids of each page."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"event_id": EVENT, "limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        r = await house.http.get("/v1/transfers", params=params, headers=headers)
        assert r.status_code == 200, r.text[:500]
        body = r.json()
        assert len(body["transfers"]) <= limit
        pages.append([t["id"] for t in body["transfers"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_another_owner_cannot_flood_an_event_listing(house: House) -> None:
    # Even a key whose budgets admit the flood cannot break another owner's listing.
    house.bob = await house.api.owner("bob", rate_per_s=10_000, burst=10_000)
    # Alice: two transfers between her own accounts under her event id.
    a2 = await house.api.account("alice")
    mine = []
    for _ in range(2):
        r = await house.http.post(
            "/v1/transfers", json=_transfer(house.A, a2, "1.00"), headers=house.alice
        )
        assert r.status_code == 201, r.text
        mine.append(r.json()["id"])
    # Bob: 8190 transfers tagged with the same event id, all between his own accounts (refused:
    # his merchant account is empty).
    b2 = await house.api.account("bob")
    batch = {"transfers": [_transfer(house.BM, b2, "0.01")] * BATCH_EVENTS_MAX}
    r = await house.http.post("/v1/transfers/batch", json=batch, headers=house.bob)
    assert r.status_code == 200, r.text[:500]
    assert r.json()["failed"] == BATCH_EVENTS_MAX
    bobs = [x["id"] for x in r.json()["results"]]
    r = await house.http.post(
        "/v1/transfers", json=_transfer(house.BM, b2, "0.01"), headers=house.bob
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "exceeds_credits")
    bobs.append(r.json()["error"]["details"]["transfer_id"])
    assert len(bobs) == BATCH_EVENTS_MAX + 1

    # Alice sees exactly her two, a page at a time.
    assert await _listing(house, house.alice, 1) == [[mine[0]], [mine[1]]]
    assert await _listing(house, house.alice, 100) == [mine]
    r = await house.http.get("/v1/transfers", params={"event_id": EVENT}, headers=house.alice)
    listed = r.json()["transfers"]
    assert [(t["status"], t["amount"]) for t in listed] == [("posted", "1.00")] * 2
    # Bob sees only his, in id order, paged.
    pages = await _listing(house, house.bob, HTTP_PAGE_LIMIT_MAX)
    assert [len(p) for p in pages] == [HTTP_PAGE_LIMIT_MAX] * 8 + [190]
    assert [i for p in pages for i in p] == sorted(bobs, key=lambda i: int(i, 16))
    # The admin pages through all of them.
    everything = [i for p in await _listing(house, house.admin, HTTP_PAGE_LIMIT_MAX) for i in p]
    assert everything == sorted(mine + bobs, key=lambda i: int(i, 16))
    # Money: alice moved 2.00 between her accounts; bob's refusals moved nothing.
    assert await house.posted(house.A) == "98.00"
    assert await house.posted(a2) == "2.00"
    assert await house.posted(house.BM) == "0.00"
    assert await house.posted(b2) == "0.00"


async def test_another_owner_cannot_flood_a_metadata_listing(house: House) -> None:
    """The same holds for metadata, which any caller writes: bob's copies of alice's tag neither
    show in her listing nor push her own past a page; the admin sees both."""
    tag = {"order": "alice-A-17"}
    params = {"metadata[order]": "alice-A-17", "limit": 5}
    a2 = await house.api.account("alice")
    r = await house.http.post(
        "/v1/transfers",
        json={**_transfer(house.A, a2, "1.00"), "metadata": tag},
        headers=house.alice,
    )
    assert r.status_code == 201, r.text
    mine = r.json()["id"]
    b2 = await house.api.account("bob")
    batch = {"transfers": [{**_transfer(house.BM, b2, "0.01"), "metadata": tag}] * 50}
    r = await house.http.post("/v1/transfers/batch", json=batch, headers=house.bob)
    assert r.status_code == 200, r.text[:500]
    bobs = [x["id"] for x in r.json()["results"]]
    r = await house.http.get("/v1/transfers", params=params, headers=house.alice)
    assert r.status_code == 200, r.text
    assert ([t["id"] for t in r.json()["transfers"]], r.json()["next_cursor"]) == ([mine], None)
    r = await house.http.get("/v1/transfers", params=params, headers=house.bob)
    assert [t["id"] for t in r.json()["transfers"]] == bobs[:5]
    r = await house.http.get("/v1/transfers", params=params, headers=house.admin)
    assert [t["id"] for t in r.json()["transfers"]] == sorted(
        [mine, *bobs], key=lambda i: int(i, 16)
    )[:5]
    # An owner's account listing never reaches past its owner, whatever it names.
    for query in ({}, {"owner_id": "bob"}, {"account_type": "treasury"}, {"status": "active"}):
        r = await house.http.get("/v1/accounts", params=query, headers=house.alice)
        assert r.status_code == 200, r.text
        assert {a["owner_id"] for a in r.json()["accounts"]} <= {"alice"}, query
    assert await house.posted(house.A) == "99.00"
    assert await house.posted(house.BM) == "0.00"
