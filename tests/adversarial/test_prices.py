"""Prices come from the platform: no request sets an exchange rate, a fee or who pays it.

The house's admin funds EUR liquidity and sets the operator's USD->EUR rate; alice and bob then
try to price their own operations. Every test reads the money back from the engine: alice's
accounts, bob's merchant account, the fee pool and the platform's EUR liquidity.
"""

from __future__ import annotations

from typing import Any

import httpx

from tbledger.limits import QUOTE_VALIDITY_S
from tests.adversarial.conftest import House

LIQUIDITY = "10000.00"


async def fund_liquidity(house: House, amount: str = LIQUIDITY) -> None:
    body = {"amount": amount, "ledger": "EUR"}
    r = await house.http.post("/v1/flows/liquidity", json=body, headers=house.admin)
    assert r.status_code == 201, r.text


async def set_rate(house: House, rate: str) -> None:
    body = {"source_ledger": "USD", "target_ledger": "EUR", "rate": rate, "source": "ECB"}
    r = await house.http.post("/v1/rates", json=body, headers=house.admin)
    assert r.status_code == 201, r.text


async def liquidity(house: House) -> str:
    r = await house.http.get("/v1/flows/liquidity/EUR", headers=house.admin)
    assert r.status_code == 200, r.text
    return str(r.json()["available"])


async def fee_pool(house: House) -> str:
    systems = await house.api.app.state.ctx.flows.ensure_system_accounts(["USD"])
    return f"0x{next(iter(systems.values())).fee_pool:032x}"


async def exchange(
    house: House, headers: dict[str, str], key: str | None = None, **body: Any
) -> httpx.Response:
    sent = {
        "source_account_id": house.A,
        "target_account_id": house.AE,
        "amount": "10.00",
        "source_ledger": "USD",
        "target_ledger": "EUR",
        **body,
    }
    extra = {} if key is None else {"Idempotency-Key": key}
    return await house.http.post("/v1/flows/exchanges", json=sent, headers={**headers, **extra})


async def quote(house: House, headers: dict[str, str], amount: str = "10.00") -> httpx.Response:
    body = {"source_ledger": "USD", "target_ledger": "EUR", "amount": amount}
    return await house.http.post("/v1/flows/exchanges/quotes", json=body, headers=headers)


def code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


# -- exchange rates -------------------------------------------------------------------------------


async def test_an_exchange_request_that_names_its_rate_is_refused_and_moves_nothing(
    house: House,
) -> None:
    await fund_liquidity(house)
    await set_rate(house, "0.92")
    r = await exchange(house, house.alice, amount="0.01", rate="1000000")
    assert r.status_code == 422, r.text
    assert await house.posted(house.AE) == "0.00"
    assert await house.posted(house.A) == "100.00"
    assert await liquidity(house) == LIQUIDITY


async def test_an_exchange_runs_at_the_operator_rate_exactly(house: House) -> None:
    await fund_liquidity(house)
    unpriced = await exchange(house, house.alice)
    assert unpriced.status_code == 409 and code(unpriced) == "rate_unavailable"
    assert await house.posted(house.A) == "100.00"

    await set_rate(house, "0.9137")
    r = await exchange(house, house.alice, amount="10.01")
    assert r.status_code == 201, r.text
    # 10.01 * 0.9137 = 9.146137 EUR, rounded down to 9.14.
    assert r.json()["details"]["rate"] == "0.9137"
    assert await house.posted(house.A) == "89.99"
    assert await house.posted(house.AE) == "9.14"
    assert await liquidity(house) == "9990.86"

    # A new rate supersedes the old one; the owner sees the rate it will be charged.
    await set_rate(house, "0.5")
    rates = await house.http.get("/v1/rates", headers=house.alice)
    assert rates.status_code == 200, rates.text
    [current] = rates.json()["rates"]
    assert (current["rate"], current["source"], current["set_by"]) == ("0.5", "ECB", None)
    assert (await exchange(house, house.alice, amount="2.00")).status_code == 201
    assert await house.posted(house.AE) == "10.14"
    # Owner keys cannot set a rate.
    body = {"source_ledger": "USD", "target_ledger": "EUR", "rate": "1000000"}
    forbidden = await house.http.post("/v1/rates", json=body, headers=house.alice)
    assert forbidden.status_code == 403
    assert (await house.http.get("/v1/rates", headers=house.admin)).json()["rates"][0]["rate"] == (
        "0.5"
    )


# -- quotes ---------------------------------------------------------------------------------------


async def test_a_quote_is_honoured_within_its_validity_and_refused_after(house: House) -> None:
    await fund_liquidity(house)
    await set_rate(house, "0.92")
    first = await quote(house, house.alice)
    assert first.status_code == 201, first.text
    issued = first.json()
    assert (issued["rate"], issued["target_amount"]) == ("0.92", "9.20")
    assert issued["valid_for_s"] == QUOTE_VALIDITY_S
    # The operator's rate moves; the quote still holds within its validity.
    await set_rate(house, "0.50")
    house.api.clock.advance(QUOTE_VALIDITY_S - 1)
    r = await exchange(house, house.alice, key="x-1", quote_id=issued["quote_id"])
    assert r.status_code == 201, r.text
    assert r.json()["details"]["rate"] == "0.92"
    assert await house.posted(house.AE) == "9.20"
    assert await house.posted(house.A) == "90.00"

    late = (await quote(house, house.alice)).json()
    assert late["rate"] == "0.50"
    house.api.clock.advance(QUOTE_VALIDITY_S)
    expired = await exchange(house, house.alice, quote_id=late["quote_id"])
    assert expired.status_code == 409 and code(expired) == "quote_expired"
    assert await house.posted(house.AE) == "9.20"
    assert await house.posted(house.A) == "90.00"
    # The exchange that spent the first quote replays at its rate, long after it expired.
    again = await exchange(house, house.alice, key="x-1", quote_id=issued["quote_id"])
    assert again.status_code == 201 and again.json()["replayed"] is True
    assert await house.posted(house.AE) == "9.20"
    assert await liquidity(house) == "9990.80"


async def test_a_quote_is_single_use_for_its_amount_and_only_its_owners(house: House) -> None:
    await fund_liquidity(house)
    await set_rate(house, "0.92")
    bob_usd = await house.api.account("bob")
    bob_eur = await house.api.account("bob", ledger="EUR")
    await house.api.deposit(bob_usd, "50.00")
    issued = (await quote(house, house.alice)).json()

    # bob cannot use alice's quote: to him it does not exist.
    foreign = await exchange(
        house,
        house.bob,
        source_account_id=bob_usd,
        target_account_id=bob_eur,
        quote_id=issued["quote_id"],
    )
    assert foreign.status_code == 404 and code(foreign) == "quote_not_found"
    assert await house.posted(bob_eur) == "0.00"
    # Not for another amount either.
    other = await exchange(house, house.alice, amount="20.00", quote_id=issued["quote_id"])
    assert other.status_code == 409 and code(other) == "quote_mismatch"
    assert await house.posted(house.AE) == "0.00"

    used = await exchange(house, house.alice, quote_id=issued["quote_id"])
    assert used.status_code == 201, used.text
    twice = await exchange(house, house.alice, quote_id=issued["quote_id"])
    assert twice.status_code == 409 and code(twice) == "quote_used"
    assert await house.posted(house.AE) == "9.20"
    assert await house.posted(house.A) == "90.00"
    assert await liquidity(house) == "9990.80"


# -- fees -----------------------------------------------------------------------------------------


def payment(house: House, amount: str = "10.00", **extra: Any) -> dict[str, Any]:
    return {
        "payer_id": house.A,
        "merchant_id": house.BM,
        "amount": amount,
        "ledger": "USD",
        **extra,
    }


async def test_a_payment_request_cannot_set_its_fee_or_who_pays_it(house: House) -> None:
    for extra in [{"fee": "10.00", "fee_payer": "merchant"}, {"fee": "0"}, {"fee_payer": "payer"}]:
        r = await house.http.post(
            "/v1/flows/payments", json=payment(house, **extra), headers=house.alice
        )
        assert r.status_code == 422, (extra, r.text)
    assert await house.posted(house.A) == "100.00"
    assert await house.posted(house.BM) == "0.00"
    assert await house.posted(await fee_pool(house)) == "0.00"


async def test_a_merchant_fee_schedule_charges_exactly_the_scheduled_fee(house: House) -> None:
    schedule = {"fee_bps": 250, "fee_fixed": "0.30", "fee_payer": "merchant"}
    path = f"/v1/fees/merchants/{house.BM}"
    assert (await house.http.put(path, json=schedule, headers=house.alice)).status_code == 403
    for bad in [{**schedule, "fee_bps": 10_001}, {**schedule, "fee_bps": -1}]:
        assert (await house.http.put(path, json=bad, headers=house.admin)).status_code == 422
    before = await house.http.get(path, headers=house.alice)
    assert before.status_code == 200 and before.json()["platform_default"] is True
    r = await house.http.put(path, json=schedule, headers=house.admin)
    assert r.status_code == 200, r.text
    shown = (await house.http.get(path, headers=house.alice)).json()
    assert (shown["fee_bps"], shown["fee_fixed"], shown["fee_payer"]) == (250, "0.30", "merchant")

    paid = await house.http.post("/v1/flows/payments", json=payment(house), headers=house.alice)
    assert paid.status_code == 201, paid.text
    details = paid.json()["details"]
    # 2.5% of 10.00 is 0.25, plus 0.30 fixed: 0.55, out of the merchant's 10.00.
    assert (details["fee"], details["fee_payer"]) == ("0.55", "merchant")
    assert await house.posted(house.A) == "90.00"
    assert await house.posted(house.BM) == "9.45"
    assert await house.posted(await fee_pool(house)) == "0.55"

    # 2.5% of 0.99 is 0.02475: rounded down to 0.02, plus 0.30.
    odd = await house.http.post(
        "/v1/flows/payments", json=payment(house, "0.99"), headers=house.alice
    )
    assert odd.status_code == 201 and odd.json()["details"]["fee"] == "0.32"
    assert await house.posted(house.BM) == "10.12"
    # A merchant-paid fee larger than the payment (0.30 on 0.20) is refused: nothing moves.
    small = await house.http.post(
        "/v1/flows/payments", json=payment(house, "0.20"), headers=house.alice
    )
    assert small.status_code == 422, small.text
    assert await house.posted(house.A) == "89.01"
    assert await house.posted(house.BM) == "10.12"
    assert await house.posted(await fee_pool(house)) == "0.87"


# -- what an owner key hears ----------------------------------------------------------------------


async def test_an_uncovered_exchange_tells_an_owner_key_no_amount(house: House) -> None:
    await fund_liquidity(house, "5.00")
    await set_rate(house, "0.92")
    r = await exchange(house, house.alice)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert not any(ch.isdigit() for ch in error["message"]), error
    assert error["details"] == {}
    assert "500" not in r.text and "5.00" not in r.text
    assert await house.posted(house.A) == "100.00"
    assert await house.posted(house.AE) == "0.00"
    assert await liquidity(house) == "5.00"
    # An admin key running the same exchange gets the detail.
    admin = await exchange(house, house.admin)
    assert admin.status_code == 409, admin.text
    assert admin.json()["error"]["details"]["leg"] == "exchange_in", admin.text
