"""Operations on accounts under attack: a frozen account stays frozen, and says so.

A freeze is the engine's `closed` flag (DESIGN §4), so the engine refuses every transfer from a
frozen account with ``debit_account_already_closed``; the service, which alone knows the account
is frozen rather than closed for good, answers 409 ``account_frozen``, on a plain transfer and in
a flow alike. Batches report the engine's own per-transfer statuses. Every test checks the money
in the engine, not only the answer.
"""

from __future__ import annotations

import tigerbeetle as tb

from tbledger.ids import parse_id
from tests.adversarial.conftest import House
from tests.support.api import transfer_body


async def _engine_accounts(house: House, *ids: str) -> list[tb.Account]:
    found = await house.api.engine.lookup_accounts([parse_id(i) for i in ids])
    assert len(found) == len(ids)
    return found


def _counters(account: tb.Account) -> tuple[int, int, int, int]:
    return (
        account.debits_posted,
        account.debits_pending,
        account.credits_posted,
        account.credits_pending,
    )


async def _freeze(house: House, account_id: str) -> None:
    r = await house.http.post(f"/v1/accounts/{account_id}/freeze", headers=house.admin)
    assert (r.status_code, r.json()["status"]) == (200, "frozen"), r.text


async def test_a_transfer_from_a_frozen_account_answers_account_frozen(house: House) -> None:
    await _freeze(house, house.A)
    a_before, bm_before = await _engine_accounts(house, house.A, house.BM)
    r = await house.http.post(
        "/v1/transfers", json=transfer_body(house.A, house.BM, "1.00"), headers=house.alice
    )
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "account_frozen"
    a_after, bm_after = await _engine_accounts(house, house.A, house.BM)
    assert _counters(a_after) == _counters(a_before)
    assert _counters(bm_after) == _counters(bm_before)
    assert await house.posted(house.A) == "100.00"
    assert await house.posted(house.BM) == "0.00"


async def test_a_payment_from_a_frozen_payer_answers_account_frozen(house: House) -> None:
    await _freeze(house, house.A)
    a_before, bm_before = await _engine_accounts(house, house.A, house.BM)
    payment = {"payer_id": house.A, "merchant_id": house.BM, "amount": "10.00", "ledger": "USD"}
    r = await house.http.post("/v1/flows/payments", json=payment, headers=house.alice)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "account_frozen"
    a_after, bm_after = await _engine_accounts(house, house.A, house.BM)
    assert _counters(a_after) == _counters(a_before)
    assert _counters(bm_after) == _counters(bm_before)


async def test_a_transfer_to_a_frozen_account_answers_account_frozen(house: House) -> None:
    await _freeze(house, house.BM)
    r = await house.http.post(
        "/v1/transfers", json=transfer_body(house.A, house.BM, "1.00"), headers=house.alice
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "account_frozen"), r.text
    assert await house.posted(house.A) == "100.00"
    assert await house.posted(house.BM) == "0.00"


async def test_a_batch_from_a_frozen_account_reports_the_engine_status(house: House) -> None:
    await _freeze(house, house.A)
    (a_before,) = await _engine_accounts(house, house.A)
    body = {"transfers": [transfer_body(house.A, house.BM, "1.00")] * 2}
    r = await house.http.post("/v1/transfers/batch", json=body, headers=house.alice)
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == ["debit_account_already_closed"] * 2
    (a_after,) = await _engine_accounts(house, house.A)
    assert _counters(a_after) == _counters(a_before)


async def test_unfreezing_lets_the_money_move_again(house: House) -> None:
    await _freeze(house, house.A)
    r = await house.http.post(f"/v1/accounts/{house.A}/unfreeze", headers=house.admin)
    assert (r.status_code, r.json()["status"]) == (200, "active"), r.text
    r = await house.http.post(
        "/v1/transfers", json=transfer_body(house.A, house.BM, "1.00"), headers=house.alice
    )
    assert r.status_code == 201, r.text
    assert (await house.posted(house.A), await house.posted(house.BM)) == ("99.00", "1.00")


async def test_an_account_closed_for_good_keeps_the_engine_code(house: House) -> None:
    r = await house.http.post(f"/v1/accounts/{house.A}/close", headers=house.admin)
    assert (r.status_code, r.json()["status"]) == (200, "closed"), r.text
    (a_before,) = await _engine_accounts(house, house.A)
    r = await house.http.post(
        "/v1/transfers", json=transfer_body(house.A, house.BM, "1.00"), headers=house.alice
    )
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "debit_account_already_closed"
    (a_after,) = await _engine_accounts(house, house.A)
    assert _counters(a_after) == _counters(a_before)
    assert await house.posted(house.BM) == "0.00"
