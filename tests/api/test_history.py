"""History, as-of balances, activity and statements over HTTP: who may read them, paging,
times in both spellings, and the CSV a spreadsheet can check.

The app runs over the twin (on a `ManualClock`) and PostgreSQL (`tests/api/conftest.py`);
`tests/adversarial/test_history_authority.py` runs the authority cases on SQLite as well.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any, get_args

from tbledger.api.routes.history import StatusName
from tbledger.model import TRANSFER_EVENT_KINDS
from tests.api.conftest import Api


async def _pay(api: Api, headers: dict[str, str], debit: str, credit: str, amount: str) -> str:
    r = await api.http.post(
        "/v1/transfers",
        json={
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount": amount,
            "ledger": "USD",
            "metadata": {"memo": '=HYPERLINK("x")'},
        },
        headers={**headers, "Idempotency-Key": f"pay-{amount}"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _setup(api: Api) -> tuple[str, str, list[str]]:
    alice = await api.account("alice", name="Alice")
    bob = await api.account("bob", account_type="merchant", name="Bob's shop")
    await api.deposit(alice, "100.00")
    paid = []
    for amount in ("1.00", "2.00", "3.00", "4.00", "5.00"):
        api.clock.advance(1)
        paid.append(await _pay(api, await api.owner("alice"), alice, bob, amount))
    return alice, bob, paid


async def _get(api: Api, path: str, headers: dict[str, str], **params: Any) -> Any:
    r = await api.http.get(path, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_history_pages_and_times(api: Api) -> None:
    alice, bob, paid = await _setup(api)
    owner = await api.owner("alice")
    whole = await _get(api, f"/v1/accounts/{alice}/history", owner)
    assert [p["kind"] for p in whole["points"]] == ["opening", "single", *["single"] * 5]
    assert [p["posted"] for p in whole["points"]] == [
        "0.00",
        "100.00",
        "99.00",
        "97.00",
        "94.00",
        "90.00",
        "85.00",
    ]
    assert whole["points"][2]["counterparty_id"] == bob
    assert whole["points"][2]["counterparty"] == {
        "id": bob,
        "name": None,
        "owner_id": None,
        "account_type": None,
    }
    seen_by_admin = await _get(api, f"/v1/accounts/{alice}/history", api.admin, limit=3)
    assert seen_by_admin["points"][2]["counterparty"]["name"] == "Bob's shop"
    assert whole["next_cursor"] is None

    for reverse in ("false", "true"):
        seen: list[str] = []
        params: dict[str, Any] = {"limit": 3, "reverse": reverse}
        while True:
            page = await _get(api, f"/v1/accounts/{alice}/history", owner, **params)
            seen.extend(p["timestamp"] for p in page["points"])
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        expected = [p["timestamp"] for p in whole["points"]]
        assert seen == (expected[::-1] if reverse == "true" else expected)

    # A window given in ISO times: [from, to).
    third = whole["points"][3]
    window = await _get(
        api,
        f"/v1/accounts/{alice}/history",
        owner,
        **{"from": third["time"], "to": whole["points"][5]["timestamp"]},
    )
    assert [p["transfer_id"] for p in window["points"]] == paid[1:3]

    as_of = await _get(api, f"/v1/accounts/{alice}/balance", owner, as_of=third["time"])
    assert as_of["existed"] and as_of["balance"]["posted"] == "97.00"
    assert as_of["as_of"] == third["timestamp"] and as_of["note"] is None
    before = await _get(api, f"/v1/accounts/{alice}/balance", owner, as_of="1999-12-31")
    assert not before["existed"] and before["balance"] is None and "did not exist" in before["note"]

    for bad in ("yesterday", "2026-13-01", "0", "99999999999999999999"):
        r = await api.http.get(f"/v1/accounts/{alice}/balance?as_of={bad}", headers=owner)
        assert r.status_code == 422, (bad, r.text)
    r = await api.http.get(
        f"/v1/accounts/{alice}/history?cursor=9999999999999999999", headers=owner
    )
    assert r.status_code == 422, r.text


async def test_owners_read_only_their_own_accounts(api: Api) -> None:
    alice, bob, _ = await _setup(api)
    carol = await api.owner("carol")
    missing = "0x" + "7" * 32
    routes = [
        ("history", {}),
        ("balance", {"as_of": "2026-01-01T00:00:00Z"}),
        ("activity", {}),
        ("statement", {"from": "1", "to": "2"}),
        ("statement", {"from": "1", "to": "2", "format": "csv"}),
    ]
    for route, params in routes:
        for account in (alice, bob):
            theirs = await api.http.get(
                f"/v1/accounts/{account}/{route}", params=params, headers=carol
            )
            nowhere = await api.http.get(
                f"/v1/accounts/{missing}/{route}", params=params, headers=carol
            )
            assert theirs.status_code == nowhere.status_code == 404, theirs.text
            # Exactly as missing: the same code, the same words but the id asked about.
            assert theirs.json()["error"]["code"] == "account_not_found"
            assert theirs.text.replace(account, missing) == nowhere.text
        # Each owner reads its own; an admin reads any.
        for account, headers in ((alice, await api.owner("alice")), (bob, api.admin)):
            r = await api.http.get(
                f"/v1/accounts/{account}/{route}", params=params, headers=headers
            )
            assert r.status_code == 200, (route, r.text)


async def test_activity_shows_what_the_key_may_see(api: Api) -> None:
    alice, bob, paid = await _setup(api)
    owner = await api.owner("alice")
    mine = await _get(api, f"/v1/accounts/{alice}/activity", owner)
    deposit, *payments = mine["entries"]
    assert (deposit["flow"], deposit["status"], deposit["direction"]) == (
        "deposit",
        "posted",
        "credit",
    )
    # The treasury and Bob's shop are not Alice's: their ids only.
    assert deposit["counterparty"] == {
        "id": deposit["counterparty"]["id"],
        "name": None,
        "owner_id": None,
        "account_type": None,
    }
    assert payments[0]["counterparty"] == {
        "id": bob,
        "name": None,
        "owner_id": None,
        "account_type": None,
    }
    # Alice's key wrote these keys, and reads them as it sent them.
    assert [p["idempotency_key"] for p in payments] == [
        f"pay-{a}" for a in ("1.00", "2.00", "3.00", "4.00", "5.00")
    ]
    assert [p["transfer_id"] for p in payments] == paid

    # Bob's key sees its side of the same payments, with neither the payer's name nor the key
    # the payer's key wrote.
    shop = await _get(api, f"/v1/accounts/{bob}/activity", await api.owner("bob"), limit=2)
    assert [e["direction"] for e in shop["entries"]] == ["credit", "credit"]
    assert shop["entries"][0]["counterparty"]["name"] is None
    assert shop["entries"][0]["idempotency_key"] is None
    assert shop["next_cursor"] is not None
    # The admin key sees names and owners, and keys in full.
    admin = await _get(api, f"/v1/accounts/{alice}/activity", api.admin, counterparty=bob, limit=1)
    (first,) = admin["entries"]
    assert first["counterparty"] == {
        "id": bob,
        "name": "Bob's shop",
        "owner_id": "bob",
        "account_type": "merchant",
    }
    assert first["idempotency_key"].endswith(":pay-1.00")

    filtered = await _get(api, f"/v1/accounts/{alice}/activity", owner, code="DEPOSIT")
    assert [e["transfer_id"] for e in filtered["entries"]] == [deposit["transfer_id"]]
    by_flow = await _get(api, f"/v1/accounts/{alice}/activity", owner, flow="deposit")
    assert len(by_flow["entries"]) == 1
    by_status = await _get(api, f"/v1/accounts/{alice}/activity", owner, status="pending")
    assert by_status["entries"] == []
    bad = await api.http.get(f"/v1/accounts/{alice}/activity?status=nope", headers=owner)
    assert bad.status_code == 422


async def test_statement_json_and_csv_reconcile(api: Api) -> None:
    alice, bob, paid = await _setup(api)
    owner = await api.owner("alice")
    points = (await _get(api, f"/v1/accounts/{alice}/history", owner))["points"]
    period = {"from": points[3]["timestamp"], "to": points[6]["time"]}
    body = await _get(api, f"/v1/accounts/{alice}/statement", owner, **period)
    assert (body["opening"]["posted"], body["closing"]["posted"]) == ("99.00", "90.00")
    assert [line["transfer_id"] for line in body["lines"]] == paid[1:4]
    assert [line["change"] for line in body["lines"]] == ["-2.00", "-3.00", "-4.00"]
    assert body["total_out"] == "9.00" and body["total_in"] == "0.00"
    assert body["lines"][0]["counterparty"]["id"] == bob

    r = await api.http.get(
        f"/v1/accounts/{alice}/statement", params={**period, "format": "csv"}, headers=owner
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["kind"] for row in rows] == ["opening", "single", "single", "single", "closing"]
    opening, *lines, closing = rows
    total = Decimal(opening["balance"]) + sum(Decimal(row["change"]) for row in lines)
    assert total == Decimal(closing["balance"]) == Decimal("90.00")
    assert [row["balance"] for row in lines] == ["97.00", "94.00", "90.00"]
    # A memo that a spreadsheet would run as a formula is written as text.
    assert all(row["description"].startswith("'=") for row in lines)

    backwards = await api.http.get(
        f"/v1/accounts/{alice}/statement",
        params={"from": period["to"], "to": period["from"]},
        headers=owner,
    )
    assert backwards.status_code == 422


async def test_an_account_without_history_is_a_409(api: Api) -> None:
    anchor = await api.account(None, account_type="anchor")  # type: ignore[arg-type]
    for route, params in (
        ("history", {}),
        ("balance", {"as_of": "2026-01-01"}),
        ("statement", {"from": "1", "to": "2"}),
    ):
        r = await api.http.get(f"/v1/accounts/{anchor}/{route}", params=params, headers=api.admin)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "history_not_kept"
    activity = await api.http.get(f"/v1/accounts/{anchor}/activity", headers=api.admin)
    assert activity.status_code == 200 and activity.json()["entries"] == []


def test_the_status_filter_names_every_transfer_status() -> None:
    assert set(get_args(StatusName)) == {kind.value for kind in TRANSFER_EVENT_KINDS}
