"""An owner key reads the history, balances, activity and statements of its own accounts only,
on both stores: another owner's account answers exactly as a missing one, and what its own
activity shows of the other side is the other side's id only."""

from __future__ import annotations

from tests.adversarial.conftest import House

_MISSING = "0x" + "7" * 32
_READS = (
    ("history", {}),
    ("balance", {"as_of": "2100-01-01T00:00:00Z"}),
    ("activity", {"counterparty": _MISSING}),
    ("statement", {"from": "2000-01-01", "to": "2100-01-01"}),
    ("statement", {"from": "2000-01-01", "to": "2100-01-01", "format": "csv"}),
)


async def test_another_owners_account_reads_as_missing(house: House) -> None:
    for route, params in _READS:
        for caller, theirs in (
            (house.alice, house.BM),
            (house.bob, house.A),
            (house.bob, house.AE),
        ):
            other = await house.http.get(
                f"/v1/accounts/{theirs}/{route}", params=params, headers=caller
            )
            missing = await house.http.get(
                f"/v1/accounts/{_MISSING}/{route}", params=params, headers=caller
            )
            assert other.status_code == missing.status_code == 404, (route, other.text)
            assert other.text.replace(theirs, _MISSING) == missing.text
        for caller, own in ((house.alice, house.A), (house.bob, house.BM), (house.admin, house.A)):
            mine = await house.http.get(
                f"/v1/accounts/{own}/{route}", params=params, headers=caller
            )
            assert mine.status_code == 200, (route, mine.text)
    assert await house.posted(house.A) == "100.00"


async def test_own_activity_shows_the_other_side_by_id_only(house: House) -> None:
    paid = await house.http.post(
        "/v1/transfers",
        json={
            "debit_account_id": house.A,
            "credit_account_id": house.BM,
            "amount": "10.00",
            "ledger": "USD",
        },
        headers={**house.alice, "Idempotency-Key": "history-1"},
    )
    assert paid.status_code == 201, paid.text
    seen_by_bob = await house.http.get(
        f"/v1/accounts/{house.BM}/statement",
        params={"from": "2000-01-01", "to": "2100-01-01"},
        headers=house.bob,
    )
    assert seen_by_bob.status_code == 200, seen_by_bob.text
    (line,) = seen_by_bob.json()["lines"]
    assert line["counterparty"] == {
        "id": house.A,
        "name": None,
        "owner_id": None,
        "account_type": None,
    }
    assert seen_by_bob.json()["closing"]["posted"] == "10.00"
    activity = await house.http.get(f"/v1/accounts/{house.BM}/activity", headers=house.bob)
    (entry,) = activity.json()["entries"]
    assert entry["idempotency_key"] is None  # alice's key wrote it
    assert entry["counterparty"]["owner_id"] is None
    assert await house.posted(house.A) == "90.00"
