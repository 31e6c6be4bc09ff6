"""Every leg of every flow is audited with the flow's event id and payment id.

One call of each flow, each with its own event id; the store then holds, under that event id,
exactly the flow's legs, each with the payment id, the flow's name and the leg's name, and each
with an outcome in the audit log.
"""

from __future__ import annotations

from tbledger.chart import Chart, TransferCode
from tbledger.flows import FlowResult, SpendEngine
from tbledger.service import LedgerService
from tbledger.store import EventKind
from tests.flows.conftest import World

# flow name -> the legs it writes, in chain order
LEGS = {
    "deposit": ["deposit"],
    "withdrawal": ["withdrawal"],
    "liquidity_funding": ["liquidity_funding"],
    "payment": ["payment", "fee", "refund_allowance"],
    "refund": ["refund_allowance", "refund"],
    "anchor_authorization": ["authorization", "obligation"],
    "anchor_fulfillment": ["fulfillment", "obligation_fulfillment"],
    "anchor_release": ["release", "obligation_release"],
    "escrow_lock": ["lock"],
    "escrow_release": ["release"],
    "escrow_void": ["void"],
    "settlement": ["settlement"],
    "settlement_reversal": ["settlement_reversal"],
    "exchange": ["exchange_out", "exchange_in"],
}


async def test_every_leg_carries_the_event_id_and_payment_id(world: World) -> None:
    spend, alice, shop = world.spend, world.alice, world.shop
    alice_eur = (await spend.open_account("alice", ledger="EUR")).id

    def tag(flow: str) -> dict[str, str]:
        return {"event_id": f"evt-{flow}", "payment_id": f"pay-{flow}"}

    results: dict[str, FlowResult] = {}
    results["deposit"] = await spend.deposit(
        account=alice, amount=1_000, ledger="USD", **tag("deposit")
    )
    results["withdrawal"] = await spend.withdraw(
        account=alice, amount=100, ledger="USD", **tag("withdrawal")
    )
    results["liquidity_funding"] = await spend.fund_liquidity(
        amount=10_000, ledger="EUR", **tag("liquidity_funding")
    )
    payment = await spend.pay(
        payer=alice, merchant=shop, amount=2_000, ledger="USD", fee=20, **tag("payment")
    )
    results["payment"] = payment
    results["refund"] = await spend.refund(
        payment_id=payment.payment_id, amount=500, event_id="evt-refund"
    )
    auth = await spend.authorize_anchor(
        user=alice, amount=300, obligation="fuel", timeout_s=60, **tag("anchor_authorization")
    )
    results["anchor_authorization"] = auth
    results["anchor_fulfillment"] = await spend.fulfill_anchor(
        authorization=auth, amount=100, event_id="evt-anchor_fulfillment"
    )
    other = await spend.authorize_anchor(user=alice, amount=50, obligation="utility", timeout_s=60)
    results["anchor_release"] = await spend.release_anchor(
        authorization=other, event_id="evt-anchor_release"
    )
    results["escrow_lock"] = await spend.escrow_lock(
        contract_id="k", payer=alice, amount=400, ledger="USD", **tag("escrow_lock")
    )
    results["escrow_release"] = await spend.escrow_release(
        contract_id="k", merchant=shop, amount=100, **tag("escrow_release")
    )
    results["escrow_void"] = await spend.escrow_void(contract_id="k", **tag("escrow_void"))
    settlement = await spend.settle_merchant(merchant=shop, ledger="USD", **tag("settlement"))
    results["settlement"] = settlement
    assert settlement.settlement_id is not None
    results["settlement_reversal"] = await spend.reverse_settlement(
        settlement_id=settlement.settlement_id, event_id="evt-settlement_reversal"
    )
    results["exchange"] = await spend.exchange(
        source=alice,
        target=alice_eur,
        amount=100,
        source_ledger="USD",
        target_ledger="EUR",
        rate="0.9",
        **tag("exchange"),
    )

    assert set(results) == set(LEGS)
    for flow, result in results.items():
        assert result.event_id == f"evt-{flow}", flow
        intents = await world.service.get_transfers_by_event_id(result.event_id)
        intents.sort(key=lambda i: i.chain_index or 0)
        assert [i.control["leg"] for i in intents] == LEGS[flow], flow
        assert {i.control["flow"] for i in intents} == {flow}
        assert {i.payment_id for i in intents} == {result.payment_id}, flow
        assert [i.id for i in intents] == list(result.transfer_ids), flow
        outcomes = await world.store.current_status([i.id for i in intents])
        assert all(outcomes[i.id].kind is not EventKind.SUBMITTED for i in intents), flow
    # Follow-up flows carry the payment id of what they act on.
    assert results["refund"].payment_id == "pay-payment"
    assert results["anchor_fulfillment"].payment_id == "pay-anchor_authorization"
    assert results["settlement_reversal"].payment_id == "pay-settlement"


async def test_a_chart_with_an_exchange_code_uses_it(service: LedgerService) -> None:
    default = Chart.default()
    chart = Chart(
        default.ledgers,
        default.account_codes,
        (*default.transfer_codes, TransferCode(40, "EXCHANGE", "Currency exchange.")),
    )
    spend = SpendEngine(service, chart)
    usd = (await spend.open_account("u", ledger="USD")).id
    eur = (await spend.open_account("u", ledger="EUR")).id
    await spend.deposit(account=usd, amount=100, ledger="USD")
    await spend.fund_liquidity(amount=100, ledger="EUR")
    result = await spend.exchange(
        source=usd, target=eur, amount=100, source_ledger=1, target_ledger=2, rate=1
    )
    intents = await service.get_transfers_by_event_id(result.event_id)
    assert {i.code for i in intents} == {40}
