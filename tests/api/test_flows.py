"""The payment flows over HTTP: every route moves money as its flow does, replays safely, and
refuses what it must (wrong key, unknown or foreign accounts, bad amounts, engine refusals).

Balances are read back through ``GET /v1/balances/{id}``; "nothing reached the engine" is the
service batcher's request count standing still.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.api import Api

USD = 1
EUR = 2
GROCERY = 1001


# -- helpers --------------------------------------------------------------------------------------


async def post(
    api: Api,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
    key: str | None = None,
) -> httpx.Response:
    """POST `body` to a flow route, with an ``Idempotency-Key`` when `key` is given."""
    sent = dict(headers)
    if key is not None:
        sent["Idempotency-Key"] = key
    return await api.http.post(f"/v1/flows/{path}", json=body, headers=sent)


async def posted(api: Api, account_id: str) -> str:
    r = await api.http.get(f"/v1/balances/{account_id}", headers=api.admin)
    assert r.status_code == 200, r.text
    return str(r.json()["posted"])


async def balance(api: Api, account_id: str) -> dict[str, Any]:
    r = await api.http.get(f"/v1/balances/{account_id}", headers=api.admin)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def system_account(api: Api, role: str, ledger: str = "USD") -> str:
    """A system account's id (fee_pool, liquidity, treasury...) in hex."""
    systems = await api.app.state.ctx.flows.ensure_system_accounts([ledger])
    account_id = getattr(next(iter(systems.values())), role)
    assert account_id is not None
    return f"0x{account_id:032x}"


async def set_rate(api: Api, rate: str = "0.915", source: str = "USD", target: str = "EUR") -> None:
    """The operator's rate for a pair (admin key): what exchanges run at."""
    body = {"source_ledger": source, "target_ledger": target, "rate": rate}
    r = await api.http.post("/v1/rates", json=body, headers=api.admin)
    assert r.status_code == 201, r.text


async def set_fee(api: Api, merchant: str, **schedule: Any) -> None:
    """A merchant's fee schedule (admin key): what payments to it are charged."""
    r = await api.http.put(f"/v1/fees/merchants/{merchant}", json=schedule, headers=api.admin)
    assert r.status_code == 200, r.text


def error_code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


@pytest.fixture
async def alice_funded(api: Api) -> str:
    """alice's USD account with 100.00."""
    alice = await api.account("alice")
    await api.deposit(alice, "100.00")
    return alice


# -- deposit and withdrawal -----------------------------------------------------------------------


async def test_a_deposit_credits_the_account_and_a_replay_moves_nothing(api: Api) -> None:
    alice = await api.account("alice")
    body = {"account_id": alice, "amount": "12.50", "ledger": "USD", "payment_id": "dep-1"}
    r = await post(api, "deposit", body, api.admin, key="dep-1")
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["flow"], out["amount"], out["amount_minor"], out["ledger"]) == (
        "deposit",
        "12.50",
        "1250",
        USD,
    )
    assert (out["ledger_name"], out["payment_id"], out["replayed"]) == ("USD", "dep-1", False)
    assert out["details"] == {"account_id": alice}
    assert [t["status"] for t in out["transfers"]] == ["created"]
    assert await posted(api, alice) == "12.50"

    again = await post(api, "deposit", body, api.admin, key="dep-1")
    assert again.status_code == 201, again.text
    assert again.json()["replayed"] is True
    assert again.json()["transfers"][0]["id"] == out["transfers"][0]["id"]
    assert await posted(api, alice) == "12.50"

    # The same key with another body is a conflict, not a second deposit.
    other = await post(api, "deposit", {**body, "amount": "13.00"}, api.admin, key="dep-1")
    assert other.status_code == 409 and error_code(other) == "idempotency_conflict"
    assert await posted(api, alice) == "12.50"


async def test_a_deposit_in_minor_units(api: Api) -> None:
    alice = await api.account("alice")
    body = {"account_id": alice, "amount": "1250", "amount_unit": "minor", "ledger": "USD"}
    r = await post(api, "deposit", body, api.admin)
    assert r.status_code == 201, r.text
    assert (r.json()["amount"], r.json()["amount_minor"]) == ("12.50", "1250")
    assert await posted(api, alice) == "12.50"


async def test_a_deposit_needs_an_admin_key(api: Api) -> None:
    alice = await api.account("alice")
    before = api.engine_requests()
    body = {"account_id": alice, "amount": "1.00", "ledger": "USD"}
    r = await post(api, "deposit", body, await api.owner("alice"))
    assert r.status_code == 403 and error_code(r) == "forbidden"
    assert api.engine_requests() == before
    assert await posted(api, alice) == "0.00"


@pytest.mark.parametrize(
    ("amount", "unit"),
    [("1.001", "major"), ("0", "major"), ("abc", "major"), ("-1", "major"), ("1.5", "minor")],
)
async def test_bad_amounts_are_refused_before_the_engine(api: Api, amount: str, unit: str) -> None:
    alice = await api.account("alice")
    before = api.engine_requests()
    body = {"account_id": alice, "amount": amount, "amount_unit": unit, "ledger": "USD"}
    r = await post(api, "deposit", body, api.admin)
    assert r.status_code == 422, r.text
    assert error_code(r) == "invalid_input"
    assert api.engine_requests() == before


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 12.5},  # a JSON number, never read as money
        {"amount": True},
        {"timestamp": "1"},  # unknown fields are refused
        {"ledger": "XYZ"},  # not in the chart
        {"account_id": "0"},
    ],
)
async def test_malformed_bodies_are_refused(api: Api, change: dict[str, Any]) -> None:
    alice = await api.account("alice")
    before = api.engine_requests()
    body = {"account_id": alice, "amount": "1.00", "ledger": "USD", **change}
    r = await post(api, "deposit", body, api.admin)
    assert r.status_code == 422, r.text
    assert api.engine_requests() == before


async def test_a_deposit_to_an_unknown_account_or_on_another_ledger_moves_nothing(
    api: Api,
) -> None:
    alice = await api.account("alice")
    before = api.engine_requests()
    unknown = {"account_id": "0x" + "ab" * 16, "amount": "1.00", "ledger": "USD"}
    r = await post(api, "deposit", unknown, api.admin)
    assert r.status_code == 404 and error_code(r) == "account_not_found"
    wrong = await post(api, "deposit", {**unknown, "account_id": alice, "ledger": "EUR"}, api.admin)
    assert wrong.status_code == 422, wrong.text
    # A system account is not a flow's customer account.
    fee_pool = await system_account(api, "fee_pool")
    system = await post(api, "deposit", {**unknown, "account_id": fee_pool}, api.admin)
    assert system.status_code == 422, system.text
    assert api.engine_requests() == before


async def test_a_withdrawal_debits_the_account_and_never_overdraws(
    api: Api, alice_funded: str
) -> None:
    body = {"account_id": alice_funded, "amount": "30.00", "ledger": "USD"}
    r = await post(api, "withdrawal", body, api.admin, key="wd-1")
    assert r.status_code == 201, r.text
    assert (r.json()["flow"], r.json()["details"]) == ("withdrawal", {"account_id": alice_funded})
    assert await posted(api, alice_funded) == "70.00"
    again = await post(api, "withdrawal", body, api.admin, key="wd-1")
    assert again.status_code == 201 and again.json()["replayed"] is True
    assert await posted(api, alice_funded) == "70.00"

    too_much = await post(api, "withdrawal", {**body, "amount": "70.01"}, api.admin)
    assert too_much.status_code == 409 and error_code(too_much) == "exceeds_credits"
    assert await posted(api, alice_funded) == "70.00"

    owner = await post(api, "withdrawal", body, await api.owner("alice"))
    assert owner.status_code == 403
    assert await posted(api, alice_funded) == "70.00"


# -- liquidity ------------------------------------------------------------------------------------


async def test_liquidity_funding_and_what_is_available(api: Api) -> None:
    body = {"amount": "500.00", "ledger": "EUR"}
    r = await post(api, "liquidity", body, api.admin, key="liq-1")
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["flow"], out["ledger"], out["amount"]) == ("liquidity_funding", EUR, "500.00")
    assert out["details"]["liquidity_account_id"] == await system_account(api, "liquidity", "EUR")
    again = await post(api, "liquidity", body, api.admin, key="liq-1")
    assert again.json()["replayed"] is True

    available = await api.http.get("/v1/flows/liquidity/EUR", headers=api.admin)
    assert available.status_code == 200, available.text
    assert available.json() == {
        "ledger": EUR,
        "ledger_name": "EUR",
        "available": "500.00",
        "available_minor": "50000",
    }
    owner = await api.owner("alice")
    assert (await post(api, "liquidity", body, owner)).status_code == 403
    assert (await api.http.get("/v1/flows/liquidity/EUR", headers=owner)).status_code == 403
    grocery = await api.http.get("/v1/flows/liquidity/GROCERY_OBLIGATION", headers=api.admin)
    assert grocery.status_code == 422


# -- payments and refunds -------------------------------------------------------------------------


async def shop(api: Api) -> str:
    return await api.account("bob", account_type="merchant")


def payment(payer: str, merchant: str, amount: str = "20.00", **extra: Any) -> dict[str, Any]:
    return {"payer_id": payer, "merchant_id": merchant, "amount": amount, "ledger": "USD", **extra}


async def test_an_owner_pays_a_merchant_with_a_fee(api: Api, alice_funded: str) -> None:
    merchant = await shop(api)
    owner = await api.owner("alice")
    await set_fee(api, merchant, fee_bps=0, fee_fixed="0.50")
    body = payment(alice_funded, merchant, payment_id="pay-1")
    r = await post(api, "payments", body, owner, key="pay-1")
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["flow"], out["payment_id"], out["amount"]) == ("payment", "pay-1", "20.00")
    details = out["details"]
    assert (details["payer_id"], details["merchant_id"]) == (alice_funded, merchant)
    assert (details["fee"], details["fee_minor"], details["fee_payer"]) == ("0.50", "50", "payer")
    assert [t["status"] for t in out["transfers"]] == ["created"] * 3
    fee_pool = await system_account(api, "fee_pool")
    assert await posted(api, alice_funded) == "79.50"
    assert await posted(api, merchant) == "20.00"
    assert await posted(api, fee_pool) == "0.50"

    again = await post(api, "payments", body, owner, key="pay-1")
    assert again.status_code == 201 and again.json()["replayed"] is True
    assert await posted(api, alice_funded) == "79.50"
    assert await posted(api, merchant) == "20.00"

    left = await api.http.get("/v1/flows/payments/pay-1/refundable", headers=owner)
    assert left.status_code == 200, left.text
    assert left.json() == {
        "payment_id": "pay-1",
        "payer_id": alice_funded,
        "merchant_id": merchant,
        "ledger": USD,
        "ledger_name": "USD",
        "refundable": "20.00",
        "refundable_minor": "2000",
    }


async def test_a_merchant_can_pay_the_fee(api: Api, alice_funded: str) -> None:
    merchant = await shop(api)
    await set_fee(api, merchant, fee_bps=300, fee_payer="merchant")  # 3% of 10.00
    body = payment(alice_funded, merchant, "10.00")
    r = await post(api, "payments", body, await api.owner("alice"))
    assert r.status_code == 201, r.text
    assert r.json()["details"]["fee_payer"] == "merchant"
    assert await posted(api, alice_funded) == "90.00"
    assert await posted(api, merchant) == "9.70"
    assert await posted(api, await system_account(api, "fee_pool")) == "0.30"


async def test_a_payment_the_payer_cannot_cover_moves_nothing(api: Api, alice_funded: str) -> None:
    merchant = await shop(api)
    await set_fee(api, merchant, fee_bps=0, fee_fixed="0.01")
    r = await post(api, "payments", payment(alice_funded, merchant, "100.00"), api.admin)
    assert r.status_code == 409 and error_code(r) == "exceeds_credits"
    assert await posted(api, alice_funded) == "100.00"
    assert await posted(api, merchant) == "0.00"


async def test_payments_from_foreign_or_to_unknown_accounts_never_reach_the_engine(
    api: Api, alice_funded: str
) -> None:
    merchant = await shop(api)
    before = api.engine_requests()
    # bob's key cannot spend alice's money: her account reads as missing.
    r = await post(api, "payments", payment(alice_funded, merchant), await api.owner("bob"))
    assert r.status_code == 404 and error_code(r) == "account_not_found"
    unknown = await post(
        api, "payments", payment(alice_funded, "0x" + "cd" * 16), await api.owner("alice")
    )
    assert unknown.status_code == 404 and error_code(unknown) == "account_not_found"
    # A system account cannot be paid as a merchant.
    fee_pool = await system_account(api, "fee_pool")
    system = await post(api, "payments", payment(alice_funded, fee_pool), await api.owner("alice"))
    assert system.status_code == 422, system.text
    same = await post(api, "payments", payment(alice_funded, alice_funded), api.admin)
    assert same.status_code == 422
    assert api.engine_requests() == before
    assert await posted(api, alice_funded) == "100.00"


async def test_the_merchant_refunds_part_then_the_rest_and_never_more(
    api: Api, alice_funded: str
) -> None:
    merchant = await shop(api)
    paid = await post(
        api, "payments", payment(alice_funded, merchant, payment_id="p-2"), await api.owner("alice")
    )
    assert paid.status_code == 201, paid.text
    bob = await api.owner("bob")

    part = await post(api, "refunds", {"payment_id": "p-2", "amount": "5.00"}, bob, key="r-1")
    assert part.status_code == 201, part.text
    out = part.json()
    assert (out["flow"], out["payment_id"], out["amount"]) == ("refund", "p-2", "5.00")
    assert out["details"] == {"payer_id": alice_funded, "merchant_id": merchant}
    assert await posted(api, alice_funded) == "85.00"
    assert await posted(api, merchant) == "15.00"
    again = await post(api, "refunds", {"payment_id": "p-2", "amount": "5.00"}, bob, key="r-1")
    assert again.status_code == 201 and again.json()["replayed"] is True
    assert await posted(api, merchant) == "15.00"

    over = await post(api, "refunds", {"payment_id": "p-2", "amount": "15.01"}, bob)
    assert over.status_code == 409 and error_code(over) == "exceeds_credits"
    assert await posted(api, merchant) == "15.00"

    rest = await post(api, "refunds", {"payment_id": "p-2"}, bob, key="r-2")
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"] == "15.00"
    assert await posted(api, alice_funded) == "100.00"
    assert await posted(api, merchant) == "0.00"
    nothing = await post(api, "refunds", {"payment_id": "p-2"}, bob)
    assert nothing.status_code == 409 and error_code(nothing) == "nothing_to_refund"
    left = await api.http.get("/v1/flows/payments/p-2/refundable", headers=bob)
    assert left.json()["refundable"] == "0.00"


async def test_only_the_merchants_owner_or_an_admin_refunds(api: Api, alice_funded: str) -> None:
    merchant = await shop(api)
    await post(api, "payments", payment(alice_funded, merchant, payment_id="p-3"), api.admin)
    before = api.engine_requests()
    # The payer cannot refund itself; a stranger cannot even see the payment.
    payer = await post(api, "refunds", {"payment_id": "p-3"}, await api.owner("alice"))
    assert payer.status_code == 404 and error_code(payer) == "payment_not_found"
    stranger = await api.owner("carol")
    r = await post(api, "refunds", {"payment_id": "p-3"}, stranger)
    assert r.status_code == 404
    unknown = await post(api, "refunds", {"payment_id": "no-such-payment"}, api.admin)
    assert unknown.status_code == 404 and error_code(unknown) == "payment_not_found"
    looked = await api.http.get("/v1/flows/payments/p-3/refundable", headers=stranger)
    assert looked.status_code == 404
    assert api.engine_requests() == before
    by_admin = await post(api, "refunds", {"payment_id": "p-3", "amount": "1.00"}, api.admin)
    assert by_admin.status_code == 201, by_admin.text
    assert await posted(api, merchant) == "19.00"


# -- anchors --------------------------------------------------------------------------------------


def authorization(user: str, amount: str = "30.00", **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "amount": amount, "obligation": "grocery", "timeout_s": 60, **extra}


async def test_an_anchor_is_authorized_then_partly_fulfilled(api: Api, alice_funded: str) -> None:
    r = await post(api, "anchors", authorization(alice_funded), api.admin, key="a-1")
    assert r.status_code == 201, r.text
    out = r.json()
    details = out["details"]
    assert (out["flow"], out["ledger"], out["amount"]) == ("anchor_authorization", USD, "30.00")
    assert (details["user_id"], details["obligation_ledger"], details["timeout_s"]) == (
        alice_funded,
        GROCERY,
        60,
    )
    assert details["obligation_ledger_name"] == "GROCERY_OBLIGATION"
    held = await balance(api, alice_funded)
    assert (held["posted"], held["held"], held["available"]) == ("100.00", "30.00", "70.00")
    again = await post(api, "anchors", authorization(alice_funded), api.admin, key="a-1")
    assert again.json()["replayed"] is True
    assert (await balance(api, alice_funded))["held"] == "30.00"

    hold = details["hold_id"]
    status = await api.http.get(f"/v1/flows/anchors/{hold}", headers=await api.owner("alice"))
    assert status.status_code == 200, status.text
    assert status.json() == {
        "hold_id": hold,
        "obligation_hold_id": details["obligation_hold_id"],
        "user_id": alice_funded,
        "state": "authorized",
        "transfer_code": "ANCHOR_AUTHORIZATION",
        "ledger": USD,
        "ledger_name": "USD",
        "amount": "30.00",
        "amount_minor": "3000",
    }

    done = await post(api, f"anchors/{hold}/fulfill", {"amount": "25.00"}, api.admin, key="f-1")
    assert done.status_code == 201, done.text
    assert (done.json()["flow"], done.json()["amount"]) == ("anchor_fulfillment", "25.00")
    assert (done.json()["details"]["released"], done.json()["details"]["released_minor"]) == (
        "5.00",
        "500",
    )
    after = await balance(api, alice_funded)
    assert (after["posted"], after["held"], after["available"]) == ("75.00", "0.00", "75.00")
    replay = await post(api, f"anchors/{hold}/fulfill", {"amount": "25.00"}, api.admin, key="f-1")
    assert replay.status_code == 201 and replay.json()["replayed"] is True
    assert await posted(api, alice_funded) == "75.00"
    state = await api.http.get(f"/v1/flows/anchors/{hold}", headers=api.admin)
    assert (state.json()["state"], state.json()["transfer_code"]) == (
        "fulfilled",
        "ANCHOR_FULFILLMENT",
    )


async def test_an_anchor_released_early_gives_the_funds_back(api: Api, alice_funded: str) -> None:
    r = await post(api, "anchors", authorization(alice_funded, "40.00"), api.admin)
    hold = r.json()["details"]["hold_id"]
    released = await post(api, f"anchors/{hold}/release", None, api.admin, key="rel-1")
    assert released.status_code == 201, released.text
    assert (released.json()["flow"], released.json()["amount"]) == ("anchor_release", "40.00")
    assert released.json()["details"]["hold_id"] == hold
    after = await balance(api, alice_funded)
    assert (after["posted"], after["held"], after["available"]) == ("100.00", "0.00", "100.00")
    again = await post(api, f"anchors/{hold}/release", None, api.admin, key="rel-1")
    assert again.status_code == 201 and again.json()["replayed"] is True
    state = await api.http.get(f"/v1/flows/anchors/{hold}", headers=api.admin)
    assert (state.json()["state"], state.json()["transfer_code"]) == ("released", "ANCHOR_EXPIRY")
    # A released hold cannot be fulfilled any more.
    late = await post(api, f"anchors/{hold}/fulfill", None, api.admin)
    assert late.status_code == 409, late.text


async def test_an_anchor_that_times_out_reads_as_expired(api: Api, alice_funded: str) -> None:
    r = await post(api, "anchors", authorization(alice_funded, timeout_s=5), api.admin)
    hold = r.json()["details"]["hold_id"]
    api.clock.advance(6)
    assert await api.service.expire_holds() == 2
    state = await api.http.get(f"/v1/flows/anchors/{hold}", headers=api.admin)
    assert (state.json()["state"], state.json()["transfer_code"]) == ("expired", "ANCHOR_EXPIRY")
    assert (await balance(api, alice_funded))["available"] == "100.00"


async def test_anchor_refusals(api: Api, alice_funded: str) -> None:
    before = api.engine_requests()
    owner = await post(api, "anchors", authorization(alice_funded), await api.owner("alice"))
    assert owner.status_code == 403
    unknown = await post(api, "anchors", authorization("0x" + "ef" * 16), api.admin)
    assert unknown.status_code == 404 and error_code(unknown) == "account_not_found"
    no_ledger = await post(
        api, "anchors", authorization(alice_funded, obligation="rent"), api.admin
    )
    assert no_ledger.status_code == 422
    not_obligation = await post(
        api, "anchors", authorization(alice_funded, obligation="EUR"), api.admin
    )
    assert not_obligation.status_code == 422
    no_timeout = await post(api, "anchors", authorization(alice_funded, timeout_s=0), api.admin)
    assert no_timeout.status_code == 422
    missing = "0x" + "12" * 16
    for path in (f"anchors/{missing}/fulfill", f"anchors/{missing}/release"):
        r = await post(api, path, None, api.admin)
        assert r.status_code == 404 and error_code(r) == "authorization_not_found"
    assert api.engine_requests() == before

    too_much = await post(api, "anchors", authorization(alice_funded, "100.01"), api.admin)
    assert too_much.status_code == 409 and error_code(too_much) == "exceeds_credits"
    ok = await post(api, "anchors", authorization(alice_funded, "10.00"), api.admin)
    hold = ok.json()["details"]["hold_id"]
    over = await post(api, f"anchors/{hold}/fulfill", {"amount": "10.01"}, api.admin)
    assert over.status_code == 422
    bob = await api.owner("bob")
    assert (await api.http.get(f"/v1/flows/anchors/{hold}", headers=bob)).status_code == 404
    assert (await post(api, f"anchors/{hold}/fulfill", None, bob)).status_code == 403
    assert (await post(api, f"anchors/{hold}/release", None, bob)).status_code == 403
    assert (await balance(api, alice_funded))["held"] == "10.00"


# -- escrow ---------------------------------------------------------------------------------------


async def test_escrow_lock_release_and_void(api: Api, alice_funded: str) -> None:
    merchant = await shop(api)
    owner = await api.owner("alice")
    lock = {"contract_id": "c-1", "payer_id": alice_funded, "amount": "60.00", "ledger": "USD"}
    r = await post(api, "escrow/lock", lock, owner, key="lock-1")
    assert r.status_code == 201, r.text
    details = r.json()["details"]
    assert (r.json()["flow"], details["contract_id"], details["payer_id"]) == (
        "escrow_lock",
        "c-1",
        alice_funded,
    )
    escrow = details["escrow_account_id"]
    assert await posted(api, alice_funded) == "40.00"
    assert await posted(api, escrow) == "60.00"
    again = await post(api, "escrow/lock", lock, owner, key="lock-1")
    assert again.status_code == 201 and again.json()["replayed"] is True
    assert await posted(api, escrow) == "60.00"

    release = {"contract_id": "c-1", "merchant_id": merchant, "amount": "25.00"}
    released = await post(api, "escrow/release", release, api.admin, key="er-1")
    assert released.status_code == 201, released.text
    assert released.json()["details"] == {
        "contract_id": "c-1",
        "escrow_account_id": escrow,
        "merchant_id": merchant,
    }
    replay = await post(api, "escrow/release", release, api.admin, key="er-1")
    assert replay.json()["replayed"] is True
    assert await posted(api, merchant) == "25.00"

    over = await post(api, "escrow/release", {**release, "amount": "35.01"}, api.admin)
    assert over.status_code == 409 and error_code(over) == "exceeds_credits"

    voided = await post(api, "escrow/void", {"contract_id": "c-1"}, api.admin, key="ev-1")
    assert voided.status_code == 201, voided.text
    assert (voided.json()["amount"], voided.json()["details"]["payer_id"]) == (
        "35.00",
        alice_funded,
    )
    again_void = await post(api, "escrow/void", {"contract_id": "c-1"}, api.admin, key="ev-1")
    assert again_void.json()["replayed"] is True
    assert await posted(api, alice_funded) == "75.00"
    assert await posted(api, escrow) == "0.00"
    assert await posted(api, merchant) == "25.00"


async def test_escrow_refusals(api: Api, alice_funded: str) -> None:
    merchant = await shop(api)
    lock = {"contract_id": "c-2", "payer_id": alice_funded, "amount": "10.00", "ledger": "USD"}
    before = api.engine_requests()
    foreign = await post(api, "escrow/lock", lock, await api.owner("bob"))
    assert foreign.status_code == 404 and error_code(foreign) == "account_not_found"
    nope = {"contract_id": "nope", "merchant_id": merchant}
    unknown = await post(api, "escrow/release", nope, api.admin)
    assert unknown.status_code == 404 and error_code(unknown) == "contract_not_found"
    assert (await post(api, "escrow/void", {"contract_id": "nope"}, api.admin)).status_code == 404
    assert api.engine_requests() == before

    too_much = await post(api, "escrow/lock", {**lock, "amount": "100.01"}, api.admin)
    assert too_much.status_code == 409 and error_code(too_much) == "exceeds_credits"
    assert (await post(api, "escrow/lock", lock, await api.owner("alice"))).status_code == 201
    bob = await api.owner("bob")
    release = {"contract_id": "c-2", "merchant_id": merchant}
    assert (await post(api, "escrow/release", release, bob)).status_code == 403
    assert (await post(api, "escrow/void", {"contract_id": "c-2"}, bob)).status_code == 403
    missing_merchant = await post(
        api, "escrow/release", {**release, "merchant_id": "0x" + "34" * 16}, api.admin
    )
    assert missing_merchant.status_code == 404
    assert await posted(api, alice_funded) == "90.00"


# -- settlement -----------------------------------------------------------------------------------


async def test_a_settlement_sweeps_the_merchant_and_is_reversed_once(
    api: Api, alice_funded: str
) -> None:
    merchant = await shop(api)
    await post(api, "payments", payment(alice_funded, merchant, "25.00"), api.admin)
    body = {"merchant_id": merchant, "ledger": "USD"}
    r = await post(api, "settlements", body, api.admin, key="s-1")
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["flow"], out["amount"], out["amount_minor"]) == ("settlement", "25.00", "2500")
    assert out["details"]["merchant_id"] == merchant
    settlement = out["details"]["settlement_id"]
    assert settlement == out["transfers"][0]["id"]
    assert await posted(api, merchant) == "0.00"
    again = await post(api, "settlements", body, api.admin, key="s-1")
    assert again.status_code == 201 and again.json()["replayed"] is True
    assert again.json()["amount"] == "25.00"

    reversed_ = await post(api, f"settlements/{settlement}/reverse", None, api.admin)
    assert reversed_.status_code == 201, reversed_.text
    rev = reversed_.json()
    assert (rev["flow"], rev["amount"], rev["replayed"]) == ("settlement_reversal", "25.00", False)
    assert (rev["details"]["settlement_id"], rev["details"]["merchant_id"]) == (
        settlement,
        merchant,
    )
    assert rev["details"]["reversal_id"] == rev["transfers"][0]["id"]
    assert await posted(api, merchant) == "25.00"
    twice = await post(api, f"settlements/{settlement}/reverse", {}, api.admin)
    assert twice.status_code == 201 and twice.json()["replayed"] is True
    assert await posted(api, merchant) == "25.00"


async def test_a_partial_settlement_and_refusals(api: Api, alice_funded: str) -> None:
    merchant = await shop(api)
    await post(api, "payments", payment(alice_funded, merchant, "10.00"), api.admin)
    part = {"merchant_id": merchant, "ledger": "USD", "amount": "4.00"}
    r = await post(api, "settlements", part, api.admin)
    assert r.status_code == 201 and r.json()["amount"] == "4.00"
    over = await post(api, "settlements", {**part, "amount": "6.01"}, api.admin)
    assert over.status_code == 409 and error_code(over) == "exceeds_credits"
    assert await posted(api, merchant) == "6.00"

    before = api.engine_requests()
    bob = await api.owner("bob")
    assert (await post(api, "settlements", part, bob)).status_code == 403
    settlement = r.json()["details"]["settlement_id"]
    assert (await post(api, f"settlements/{settlement}/reverse", None, bob)).status_code == 403
    unknown = await post(api, "settlements", {**part, "merchant_id": "0x" + "56" * 16}, api.admin)
    assert unknown.status_code == 404
    missing = await post(api, f"settlements/0x{'78' * 16}/reverse", None, api.admin)
    assert missing.status_code == 404 and error_code(missing) == "settlement_not_found"
    bad_id = await post(api, "settlements/not-an-id/reverse", None, api.admin)
    assert bad_id.status_code == 422
    assert api.engine_requests() == before


# -- exchange -------------------------------------------------------------------------------------


def exchange(source: str, target: str, amount: str = "10.00", **extra: Any) -> dict[str, Any]:
    return {
        "source_account_id": source,
        "target_account_id": target,
        "amount": amount,
        "source_ledger": "USD",
        "target_ledger": "EUR",
        **extra,
    }


async def test_an_owner_exchanges_between_its_accounts(api: Api, alice_funded: str) -> None:
    alice_eur = await api.account("alice", ledger="EUR")
    await set_rate(api, "0.915")
    funded = await post(api, "liquidity", {"amount": "500.00", "ledger": "EUR"}, api.admin)
    assert funded.status_code == 201
    owner = await api.owner("alice")
    r = await post(api, "exchanges", exchange(alice_funded, alice_eur), owner, key="x-1")
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["flow"], out["ledger"], out["amount"]) == ("exchange", USD, "10.00")
    assert out["details"] == {
        "source_account_id": alice_funded,
        "target_account_id": alice_eur,
        "target_ledger": EUR,
        "target_ledger_name": "EUR",
        "target_amount": "9.15",
        "target_amount_minor": "915",
        "rate": "0.915",
    }
    assert await posted(api, alice_funded) == "90.00"
    assert await posted(api, alice_eur) == "9.15"
    again = await post(api, "exchanges", exchange(alice_funded, alice_eur), owner, key="x-1")
    assert again.status_code == 201 and again.json()["replayed"] is True
    assert await posted(api, alice_eur) == "9.15"
    left = await api.http.get("/v1/flows/liquidity/EUR", headers=api.admin)
    assert left.json()["available"] == "490.85"
    # Rounding is always down: 0.0915 EUR pays out 0.09.
    small = await post(api, "exchanges", exchange(alice_funded, alice_eur, "0.10"), owner)
    assert small.json()["details"]["target_amount"] == "0.09"


async def test_exchange_refusals(api: Api, alice_funded: str) -> None:
    alice_eur = await api.account("alice", ledger="EUR")
    bob_eur = await api.account("bob", ledger="EUR")
    owner = await api.owner("alice")
    await post(api, "liquidity", {"amount": "5.00", "ledger": "EUR"}, api.admin)
    before = api.engine_requests()
    # No operator rate for the pair yet: nothing can be priced.
    unpriced = await post(api, "exchanges", exchange(alice_funded, alice_eur), owner)
    assert unpriced.status_code == 409 and error_code(unpriced) == "rate_unavailable"
    await set_rate(api, "0.915")
    # The target must be the caller's own too.
    foreign = await post(api, "exchanges", exchange(alice_funded, bob_eur), owner)
    assert foreign.status_code == 404 and error_code(foreign) == "account_not_found"
    # A request never sets the rate: the field does not exist, whatever its value.
    for rate in ["1000000", "0.915", 0.915, "1e3", "-1", "abc"]:
        r = await post(api, "exchanges", exchange(alice_funded, alice_eur, rate=rate), owner)
        assert r.status_code == 422, (rate, r.text)
    wrong_ledger = await post(api, "exchanges", exchange(alice_eur, alice_funded), owner)
    assert wrong_ledger.status_code == 422
    # 0.01 USD at 0.915 is less than one EUR cent.
    nothing = await post(api, "exchanges", exchange(alice_funded, alice_eur, "0.01"), owner)
    assert nothing.status_code == 422
    assert api.engine_requests() == before

    # The platform's liquidity (5.00 EUR) cannot cover 9.15 EUR: nothing moves.
    short = await post(api, "exchanges", exchange(alice_funded, alice_eur), owner)
    assert short.status_code == 409 and error_code(short) == "exceeds_credits"
    beyond = await post(api, "exchanges", exchange(alice_funded, alice_eur, "100.01"), owner)
    assert beyond.status_code == 409 and error_code(beyond) == "exceeds_credits"
    assert await posted(api, alice_funded) == "100.00"
    assert await posted(api, alice_eur) == "0.00"


# -- the documented contract ----------------------------------------------------------------------


async def test_every_flow_route_documents_a_typed_response(api: Api) -> None:
    schema = (await api.http.get("/openapi.json")).json()
    routes = {
        (method, path): operation
        for path, item in schema["paths"].items()
        if path.startswith("/v1/flows/")
        for method, operation in item.items()
    }
    expected = {
        ("post", "/v1/flows/deposit"),
        ("post", "/v1/flows/withdrawal"),
        ("post", "/v1/flows/liquidity"),
        ("get", "/v1/flows/liquidity/{ledger}"),
        ("post", "/v1/flows/payments"),
        ("get", "/v1/flows/payments/{payment_id}/refundable"),
        ("post", "/v1/flows/refunds"),
        ("post", "/v1/flows/anchors"),
        ("get", "/v1/flows/anchors/{hold_id}"),
        ("post", "/v1/flows/anchors/{hold_id}/fulfill"),
        ("post", "/v1/flows/anchors/{hold_id}/release"),
        ("post", "/v1/flows/escrow/lock"),
        ("post", "/v1/flows/escrow/release"),
        ("post", "/v1/flows/escrow/void"),
        ("post", "/v1/flows/settlements"),
        ("post", "/v1/flows/settlements/{settlement_id}/reverse"),
        ("post", "/v1/flows/exchanges"),
        ("post", "/v1/flows/exchanges/quotes"),
    }
    assert set(routes) == expected
    components = schema["components"]["schemas"]
    for (method, path), operation in routes.items():
        success = "201" if method == "post" else "200"
        ref = operation["responses"][success]["content"]["application/json"]["schema"]["$ref"]
        model = components[ref.rsplit("/", 1)[-1]]
        if "details" in model["properties"]:
            # A named model with its own fields, not a free-form object.
            details = model["properties"]["details"]["$ref"].rsplit("/", 1)[-1]
            assert components[details]["properties"], (path, details)
        # Money is never a JSON number.
        for name, field in model["properties"].items():
            if name.startswith("amount"):
                assert field["type"] == "string", (path, name)
