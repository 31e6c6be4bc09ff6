"""Authority: nothing a caller writes moves money it does not own or changes a status.

One test per attack an adversarial review reproduced on an earlier version, each asserting on
money and status in the engine and the store, not only on the answer. Owner keys: ``alice``
(`A`, funded 100.00; `AE`, EUR) and ``bob`` (`BM`, a merchant account); the admin key runs the
platform.
"""

from __future__ import annotations

from typing import Any

import httpx
import tigerbeetle as tb

from tbledger.ids import parse_id
from tbledger.store import AccountStatus
from tests.adversarial.conftest import House
from tests.support.api import transfer_body


def _code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


async def _status(house: House, account_id: str) -> tuple[AccountStatus, bool]:
    """The account's status in the store and whether the engine has it closed."""
    ident = parse_id(account_id)
    record = await house.api.store.get_account(ident)
    assert record is not None
    (account,) = await house.api.engine.lookup_accounts([ident])
    return record.status, bool(account.flags & tb.AccountFlags.CLOSED)


async def _systems(house: House) -> Any:
    systems = await house.api.app.state.ctx.flows.ensure_system_accounts(["USD"])
    return systems[1]


# -- control-plane state never comes from metadata ------------------------------------------------


async def test_transfer_metadata_cannot_change_an_accounts_status(house: House) -> None:
    # Alice pre-marks her own account "frozen" and bob's "closed" through metadata.
    for target in (house.A, house.BM):
        for purpose in ("freeze", "close", "unfreeze"):
            r = await house.http.post(
                "/v1/transfers",
                json=transfer_body(
                    house.A, house.BM, "0.01", metadata={"purpose": purpose, "account_id": target}
                ),
                headers=house.alice,
            )
            assert r.status_code == 201, r.text
    assert await _status(house, house.A) == (AccountStatus.ACTIVE, False)
    assert await _status(house, house.BM) == (AccountStatus.ACTIVE, False)
    # The admin's freeze takes effect: in the store and in the engine, and alice cannot spend.
    r = await house.http.post(f"/v1/accounts/{house.A}/freeze", headers=house.admin)
    assert r.status_code == 200 and r.json()["status"] == "frozen", r.text
    assert await _status(house, house.A) == (AccountStatus.FROZEN, True)
    r = await house.http.post(
        "/v1/transfers", json=transfer_body(house.A, house.BM, "1.00"), headers=house.alice
    )
    assert (r.status_code, _code(r)) == (409, "account_frozen")
    assert await house.posted(house.A) == "99.94"
    # A forged "unfreeze" by bob leaves the freeze in place; the admin's unfreeze lifts it.
    bob_user = await house.api.account("bob")
    await house.api.deposit(bob_user, "1.00")
    r = await house.http.post(
        "/v1/transfers",
        json=transfer_body(
            bob_user, house.BM, "0.01", metadata={"purpose": "unfreeze", "account_id": house.A}
        ),
        headers=house.bob,
    )
    assert r.status_code == 201, r.text
    assert await _status(house, house.A) == (AccountStatus.FROZEN, True)
    r = await house.http.post(f"/v1/accounts/{house.A}/unfreeze", headers=house.admin)
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    assert await _status(house, house.A) == (AccountStatus.ACTIVE, False)
    r = await house.http.post(
        "/v1/transfers", json=transfer_body(house.A, house.BM, "1.00"), headers=house.alice
    )
    assert r.status_code == 201, r.text
    # The admin's close of bob's account still works: bob's money was never stranded.
    r = await house.http.post(f"/v1/accounts/{house.BM}/close", headers=house.admin)
    assert r.status_code == 200 and r.json()["status"] == "closed", r.text
    assert await _status(house, house.BM) == (AccountStatus.CLOSED, True)


async def test_an_owner_flow_label_is_not_a_settlement_an_admin_can_reverse(house: House) -> None:
    r = await house.http.post(
        "/v1/transfers",
        json=transfer_body(
            house.A, house.BM, "5.00", metadata={"flow": "settlement", "leg": "settlement"}
        ),
        headers=house.alice,
    )
    assert r.status_code == 201, r.text
    forged = r.json()["id"]
    r = await house.http.post(f"/v1/flows/settlements/{forged}/reverse", headers=house.admin)
    assert (r.status_code, _code(r)) == (404, "settlement_not_found")
    assert await house.posted(house.BM) == "5.00"
    assert await house.posted(house.A) == "95.00"
    # A real settlement is still reversible.
    r = await house.http.post(
        "/v1/flows/settlements",
        json={"merchant_id": house.BM, "ledger": "USD"},
        headers=house.admin,
    )
    assert r.status_code == 201, r.text
    settlement = r.json()["details"]["settlement_id"]
    assert await house.posted(house.BM) == "0.00"
    r = await house.http.post(f"/v1/flows/settlements/{settlement}/reverse", headers=house.admin)
    assert r.status_code == 201, r.text
    assert await house.posted(house.BM) == "5.00"


async def test_owner_keys_use_customer_transfer_codes_only(house: House) -> None:
    for code in ("DEPOSIT", "SETTLEMENT", "ANCHOR_AUTHORIZATION", "ESCROW_LOCK", "REFUND", "777"):
        r = await house.http.post(
            "/v1/transfers",
            json=transfer_body(house.A, house.BM, "1.00", code=code),
            headers=house.alice,
        )
        assert (r.status_code, _code(r)) == (403, "forbidden"), (code, r.text)
    r = await house.http.post(
        "/v1/transfers",
        json=transfer_body(house.A, house.BM, "1.00", code="65535"),
        headers=house.alice,
    )
    assert r.status_code == 422, r.text
    assert await house.posted(house.A) == "100.00"
    assert await house.posted(house.BM) == "0.00"
    r = await house.http.post(
        "/v1/transfers",
        json=transfer_body(house.A, house.BM, "1.00", code="PAYMENT"),
        headers=house.alice,
    )
    assert r.status_code == 201, r.text
    assert await house.posted(house.BM) == "1.00"


# -- owner keys move only their own money, to customer accounts -----------------------------------


async def test_owner_keys_credit_no_system_account(house: House) -> None:
    systems = await _systems(house)
    for system in (systems.treasury, systems.fee_pool, systems.buffer, systems.liquidity):
        target = f"0x{system:032x}"
        before = await house.balance(target)
        r = await house.http.post(
            "/v1/transfers", json=transfer_body(house.A, target, "1.00"), headers=house.alice
        )
        assert (r.status_code, _code(r)) == (404, "account_not_found"), r.text
        assert await house.balance(target) == before
    assert await house.posted(house.A) == "100.00"


async def test_a_payer_cannot_inflate_a_refund(house: House) -> None:
    r = await house.http.post(
        "/v1/flows/payments",
        json={"payer_id": house.A, "merchant_id": house.BM, "amount": "1.00", "ledger": "USD"},
        headers=house.alice,
    )
    assert r.status_code == 201, r.text
    payment_id = r.json()["payment_id"]
    refundable = r.json()["details"]["refundable_account_id"]
    r = await house.http.post(
        "/v1/transfers", json=transfer_body(house.A, refundable, "50.00"), headers=house.alice
    )
    assert r.status_code == 404, r.text
    r = await house.http.post(
        "/v1/transfers/batch",
        json={"transfers": [transfer_body(house.A, refundable, "50.00")]},
        headers=house.alice,
    )
    assert r.status_code == 404, r.text
    # Bob earns 1.00 more elsewhere, so that a refund of more would not be stopped by his balance.
    await house.api.deposit(house.BM, "60.00")
    r = await house.http.post(
        "/v1/flows/refunds", json={"payment_id": payment_id}, headers=house.bob
    )
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == "1.00"
    assert await house.posted(house.A) == "100.00"
    assert await house.posted(house.BM) == "60.00"


async def test_owner_keys_debit_only_their_own_customer_accounts(house: House) -> None:
    systems = await _systems(house)
    for debit in (house.BM, f"0x{systems.treasury:032x}", f"0x{systems.fee_pool:032x}"):
        r = await house.http.post(
            "/v1/transfers", json=transfer_body(debit, house.A, "1.00"), headers=house.alice
        )
        assert r.status_code == 404, r.text
    assert await house.posted(house.A) == "100.00"


async def test_a_ledger_mismatch_does_not_name_another_owners_ledger(house: House) -> None:
    bob_eur = await house.api.account("bob", ledger="EUR", account_type="merchant")
    r = await house.http.post(
        "/v1/transfers", json=transfer_body(house.A, bob_eur, "1.00"), headers=house.alice
    )
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "EUR" not in message and "ledger 2" not in message, message
    assert await house.posted(house.A) == "100.00"


# -- holds ---------------------------------------------------------------------------------------


async def _hold(house: House, amount: str = "10.00") -> str:
    r = await house.http.post(
        "/v1/transfers/pending",
        json=transfer_body(house.A, house.BM, amount, timeout_s=3600),
        headers=house.alice,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_a_payer_cannot_resolve_its_own_hold(house: House) -> None:
    hold = await _hold(house)
    for action, body in (("post", {"amount": "0.01"}), ("post", {}), ("void", {})):
        r = await house.http.post(f"/v1/transfers/{hold}/{action}", json=body, headers=house.alice)
        assert r.status_code == 404, r.text
    balance = await house.balance(house.A)
    assert (balance["posted"], balance["available"]) == ("100.00", "90.00")
    # The receiving side captures all of it.
    r = await house.http.post(f"/v1/transfers/{hold}/post", json={}, headers=house.bob)
    assert r.status_code == 201, r.text
    assert await house.posted(house.BM) == "10.00"
    assert await house.posted(house.A) == "90.00"


async def test_a_flows_hold_is_resolved_only_through_its_flow(house: House) -> None:
    r = await house.http.post(
        "/v1/flows/anchors",
        json={"user_id": house.A, "amount": "5.00", "obligation": "grocery", "timeout_s": 600},
        headers=house.admin,
    )
    assert r.status_code == 201, r.text
    hold = r.json()["details"]["hold_id"]
    r = await house.http.post(f"/v1/transfers/{hold}/post", json={}, headers=house.alice)
    assert r.status_code == 404, r.text
    for action in ("post", "void"):
        r = await house.http.post(f"/v1/transfers/{hold}/{action}", json={}, headers=house.admin)
        assert (r.status_code, _code(r)) == (409, "hold_of_a_flow"), r.text
    r = await house.http.get(f"/v1/flows/anchors/{hold}", headers=house.alice)
    assert r.json()["state"] == "authorized", r.text
    r = await house.http.post(f"/v1/flows/anchors/{hold}/fulfill", json={}, headers=house.admin)
    assert r.status_code == 201, r.text
    r = await house.http.get(f"/v1/flows/anchors/{hold}", headers=house.alice)
    assert r.json()["state"] == "fulfilled", r.text
    assert await house.posted(house.A) == "95.00"
    # A freeze's hold is the freeze's: voiding it directly would unfreeze behind the store's back.
    r = await house.http.post(f"/v1/accounts/{house.A}/freeze", headers=house.admin)
    record = await house.api.store.get_account(parse_id(house.A))
    assert record is not None and record.freeze_transfer_id is not None
    freeze = f"0x{record.freeze_transfer_id:032x}"
    r = await house.http.post(f"/v1/transfers/{freeze}/void", json={}, headers=house.admin)
    assert (r.status_code, _code(r)) == (409, "hold_of_a_flow"), r.text
    assert await _status(house, house.A) == (AccountStatus.FROZEN, True)


async def test_closing_an_account_with_pending_holds_is_refused_with_the_holds(
    house: House,
) -> None:
    hold = await _hold(house, "2.00")
    r = await house.http.post(f"/v1/accounts/{house.A}/close", headers=house.admin)
    assert (r.status_code, _code(r)) == (409, "pending_holds"), r.text
    assert r.json()["error"]["details"]["hold_ids"] == [hold]
    assert await _status(house, house.A) == (AccountStatus.ACTIVE, False)
    assert (await house.balance(house.A))["available"] == "98.00"
    # Once the hold is voided by its receiving side, the close sweeps everything.
    r = await house.http.post(f"/v1/transfers/{hold}/void", json={}, headers=house.bob)
    assert r.status_code == 201, r.text
    r = await house.http.post(f"/v1/accounts/{house.A}/close", headers=house.admin)
    assert r.status_code == 200, r.text
    assert await _status(house, house.A) == (AccountStatus.CLOSED, True)
    assert await house.posted(house.A) == "0.00"


async def test_a_hold_past_its_timeout_does_not_block_a_close(house: House) -> None:
    await _hold(house, "2.00")  # an hour
    house.api.clock.advance(3601)
    r = await house.http.post(f"/v1/accounts/{house.A}/close", headers=house.admin)
    assert r.status_code == 200, r.text
    assert await _status(house, house.A) == (AccountStatus.CLOSED, True)
    assert await house.posted(house.A) == "0.00"


# -- payment and contract ids are the owner's -----------------------------------------------------


async def test_payment_ids_are_scoped_to_the_payers_owner(house: House) -> None:
    carol = await house.api.owner("carol")
    shop = await house.api.account("carol", account_type="merchant")
    bob_user = await house.api.account("bob")
    await house.api.deposit(bob_user, "10.00")

    async def pay(payer: str, headers: dict[str, str], merchant: str = shop) -> httpx.Response:
        body = {
            "payer_id": payer,
            "merchant_id": merchant,
            "amount": "1.00",
            "ledger": "USD",
            "payment_id": "order-1",
        }
        return await house.http.post("/v1/flows/payments", json=body, headers=headers)

    assert (await pay(house.A, house.alice)).status_code == 201
    # Bob can neither see alice's payment nor be blocked by its id.
    r = await house.http.get("/v1/flows/payments/order-1/refundable", headers=house.bob)
    assert r.status_code == 404, r.text
    r = await pay(bob_user, house.bob)
    assert r.status_code == 201, r.text
    # Alice reusing her id for another merchant is a conflict that names nobody's accounts.
    r = await pay(house.A, house.alice, merchant=house.BM)
    assert r.status_code == 409, r.text
    assert house.BM[2:] not in r.text and shop[2:] not in r.text and bob_user[2:] not in r.text
    # Carol received both: she names which one to refund.
    r = await house.http.post("/v1/flows/refunds", json={"payment_id": "order-1"}, headers=carol)
    assert r.status_code == 422, r.text
    r = await house.http.post(
        "/v1/flows/refunds", json={"payment_id": "order-1", "payer_id": bob_user}, headers=carol
    )
    assert r.status_code == 201, r.text
    assert await house.posted(bob_user) == "10.00"
    assert await house.posted(house.A) == "99.00"
    assert await house.posted(shop) == "1.00"
