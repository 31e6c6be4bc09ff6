"""The seeded day's statement: Alice's whole day, closing where the engine says it closed.

The statement for the UTC day the scenario ran in (both days, should it have run across
midnight) opens before her account existed, at zero, and must close at the balance the engine
holds for the period's end: as of that moment (the engine's history) and now (her account's
balance; nothing moves her money after the day). The CSV, as a person would download it, is
printed so it can be quoted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.browser.conftest import Live

pytestmark = pytest.mark.timeout(120)

_NS_PER_S = 1_000_000_000


def _day_of(timestamp_ns: int) -> datetime:
    moment = datetime.fromtimestamp(timestamp_ns // _NS_PER_S, UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def test_the_days_statement_closes_at_the_engines_balance(live: Live) -> None:
    alice = live.account("alice")
    start = _day_of(int(live.day["started_ns"]))
    end = _day_of(int(live.day["ended_ns"])) + timedelta(days=1)
    period = {"from": start.isoformat(), "to": end.isoformat()}
    with live.api() as api:
        statement = api.get(f"/v1/accounts/{alice}/statement", params=period).json()
        as_of = api.get(f"/v1/accounts/{alice}/balance", params={"as_of": period["to"]}).json()
        now = api.get(f"/v1/balances/{alice}").json()
        csv = api.get(f"/v1/accounts/{alice}/statement", params={**period, "format": "csv"})
    assert csv.status_code == 200, csv.text

    closing = statement["closing"]
    assert statement["opening"]["posted"] == "0.00"
    assert closing["posted"] == as_of["balance"]["posted"] == now["posted"]
    assert closing["available"] == as_of["balance"]["available"] == now["available"]
    changes = sum(Decimal(line["change"]) for line in statement["lines"])
    assert Decimal(statement["opening"]["posted"]) + changes == Decimal(closing["posted"])
    assert Decimal(statement["total_in"]) - Decimal(statement["total_out"]) == changes
    kinds = {line["description"] for line in statement["lines"]}
    assert {"deposit", "payment", "payment: fee", "exchange: exchange_out"} <= kinds, kinds

    print(
        f"\nStatement of {statement['account_name']} ({statement['ledger_name']}), "
        f"{statement['start_time']} to {statement['end_time']}:"
    )
    print(csv.text)
    print(
        f"closing posted {closing['posted']} == engine as of {as_of['as_of_time']} "
        f"{as_of['balance']['posted']} == engine now {now['posted']}; "
        f"available {closing['available']} (holds {now['held']})"
    )
