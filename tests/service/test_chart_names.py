"""Ledgers and codes by chart name: the service resolves them through its chart of accounts.

`create_account` and the transfer calls take a ledger and a code as the engine's number or as a
name in the service's `Chart` (``ledger="USD"``, ``code="PAYMENT"``, ignoring case, or a number
the chart has written in digits), the same lookup the API and the flows use. An int is taken as
it is, whether the chart has it or not, exactly as before names were accepted. A name the chart
lacks raises `UnknownLedgerError` / `UnknownCodeError` (both a `ValidationError`) before anything
is written. A service built with its own chart resolves names in that chart only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tigerbeetle as tb

from tbledger.chart import Chart
from tbledger.embedded import ClientAsync
from tbledger.errors import UnknownCodeError, UnknownLedgerError, ValidationError
from tbledger.service import LedgerService, TransferRequest
from tbledger.service.sync import LedgerServiceSync
from tbledger.store import Store
from tests.service.conftest import DEFAULT_SETTINGS, Ledger
from tests.service.helpers import engine_account, one_store

USD = Chart.default().ledger("USD").code
EUR = Chart.default().ledger("EUR").code
USER = Chart.default().account_code("USER").code
TREASURY = Chart.default().account_code("TREASURY").code
DEPOSIT = Chart.default().transfer_code("DEPOSIT").code
PAYMENT = Chart.default().transfer_code("PAYMENT").code

SMALL_CHART = """
[[ledgers]]
code = 77
name = "POINTS"
kind = "token"
asset_scale = 0

[[account_codes]]
code = 5
name = "MEMBER"
account_type = "user"

[[transfer_codes]]
code = 9
name = "REWARD"
"""


async def funded_pair(service: LedgerService, amount: int) -> tuple[int, int]:
    """A treasury and a user wallet on USD, the wallet holding `amount`."""
    treasury = await service.create_account(
        owner_id=None, account_type="treasury", ledger="USD", name="names:treasury"
    )
    wallet = await service.create_account(owner_id="alice", account_type="user", ledger="USD")
    await service.create_transfer(
        debit_account_id=treasury.id,
        credit_account_id=wallet.id,
        amount=amount,
        ledger="USD",
        code="DEPOSIT",
    )
    return treasury.id, wallet.id


# -- accounts ------------------------------------------------------------------------------------


@one_store
@pytest.mark.parametrize(("ledger_ref", "code"), [("USD", "USER"), ("usd", "user"), ("1", "1")])
async def test_an_account_is_created_on_the_ledger_and_code_its_chart_names(
    ledger: Ledger, ledger_ref: str, code: str
) -> None:
    info = await ledger.service.create_account(
        owner_id="alice", account_type="user", ledger=ledger_ref, code=code
    )
    assert (info.record.ledger, info.record.code) == (USD, USER)
    account = await engine_account(ledger.client, info.id)
    assert (account.ledger, account.code) == (USD, USER)


@one_store
async def test_a_named_ledger_takes_the_account_types_default_code(service: LedgerService) -> None:
    info = await service.create_account(
        owner_id=None, account_type="treasury", ledger="EUR", name="names:eur-treasury"
    )
    assert (info.record.ledger, info.record.code) == (EUR, TREASURY)


@one_store
async def test_an_int_ledger_and_code_are_taken_as_they_are_even_outside_the_chart(
    ledger: Ledger,
) -> None:
    with pytest.raises(UnknownLedgerError):
        ledger.service.chart.ledger(700)
    info = await ledger.service.create_account(
        owner_id="alice", account_type="user", ledger=700, code=4321
    )
    account = await engine_account(ledger.client, info.id)
    assert (account.ledger, account.code) == (700, 4321)


@one_store
@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"ledger": "DOUBLOON"}, UnknownLedgerError, "the chart has no ledger 'DOUBLOON'"),
        ({"ledger": "700"}, UnknownLedgerError, "the chart has no ledger '700'"),
        ({"ledger": "USD", "code": "PIRATE"}, UnknownCodeError, "no account code 'PIRATE'"),
    ],
)
async def test_an_unknown_ledger_or_account_code_name_is_refused_before_the_engine(
    ledger: Ledger, fields: dict[str, str], error: type[ValidationError], message: str
) -> None:
    account_id = tb.id()
    with pytest.raises(error, match=message) as caught:
        await ledger.service.create_account(
            owner_id="alice",
            account_type="user",
            account_id=account_id,
            **fields,  # type: ignore[arg-type]
        )
    assert isinstance(caught.value, ValidationError)
    assert await ledger.client.lookup_accounts([account_id]) == []
    assert await ledger.service.get_account_record(account_id) is None


# -- transfers -----------------------------------------------------------------------------------


@one_store
async def test_a_transfer_by_names_is_the_transfer_by_numbers(ledger: Ledger) -> None:
    service = ledger.service
    treasury, wallet = await funded_pair(service, 500)
    result = await service.create_transfer(
        TransferRequest(
            debit_account_id=wallet,
            credit_account_id=treasury,
            amount=120,
            ledger="usd",
            code="payment",
        )
    )
    transfer = await service.get_transfer(result.id)
    assert transfer is not None
    assert (transfer.ledger, transfer.code, transfer.amount) == (USD, PAYMENT, 120)
    intent = await service.get_intent(result.id)
    assert intent is not None
    assert (intent.ledger, intent.code) == (USD, PAYMENT)
    assert (await service.get_balance(wallet)).posted == 380


@one_store
async def test_a_replay_by_names_is_the_same_request_as_by_numbers(ledger: Ledger) -> None:
    service = ledger.service
    treasury, wallet = await funded_pair(service, 500)
    by_numbers = TransferRequest(
        debit_account_id=wallet,
        credit_account_id=treasury,
        amount=5,
        ledger=USD,
        code=PAYMENT,
        idempotency_key="names-replay",
    )
    first = await service.create_transfer(by_numbers)
    again = await service.create_transfer(
        TransferRequest(
            debit_account_id=wallet,
            credit_account_id=treasury,
            amount=5,
            ledger="USD",
            code="PAYMENT",
            idempotency_key="names-replay",
        )
    )
    assert (again.id, again.replayed) == (first.id, True)


@one_store
async def test_batches_and_holds_take_names_next_to_numbers(ledger: Ledger) -> None:
    service = ledger.service
    treasury, wallet = await funded_pair(service, 500)

    def pay(amount: int, ledger_ref: int | str, code: int | str) -> TransferRequest:
        return TransferRequest(
            debit_account_id=wallet,
            credit_account_id=treasury,
            amount=amount,
            ledger=ledger_ref,
            code=code,
        )

    results = await service.create_transfers(
        [pay(1, "USD", "PAYMENT"), pay(2, USD, PAYMENT), pay(3, "1", "3")], atomic=True
    )
    assert [r.status for r in results] == ["created"] * 3
    hold = await service.create_pending_transfer(
        debit_account_id=wallet, credit_account_id=treasury, amount=10, ledger="USD", code="FEE"
    )
    holds = await service.create_pending_transfers([pay(20, "USD", "PAYMENT")])
    assert holds[0].ok
    transfers = await service.get_transfers([r.id for r in results] + [hold.id, holds[0].id])
    assert {(t.ledger, t.code) for t in transfers} == {
        (USD, PAYMENT),
        (USD, Chart.default().transfer_code("FEE").code),
    }
    balance = await service.get_balance(wallet)
    assert (balance.posted, balance.debits_pending) == (494, 30)


@one_store
@pytest.mark.parametrize(
    ("ledger_ref", "code", "error"),
    [
        ("DOUBLOON", "PAYMENT", UnknownLedgerError),
        ("USD", "PLUNDER", UnknownCodeError),
        ("USD", "65534", UnknownCodeError),
    ],
)
async def test_an_unknown_name_refuses_the_whole_call_before_anything_is_written(
    ledger: Ledger, ledger_ref: str, code: str, error: type[ValidationError]
) -> None:
    service = ledger.service
    treasury, wallet = await funded_pair(service, 500)
    requests_before = service.batcher.stats.requests
    good = TransferRequest(
        debit_account_id=wallet, credit_account_id=treasury, amount=1, ledger=USD, code=PAYMENT
    )
    bad = TransferRequest(
        debit_account_id=wallet,
        credit_account_id=treasury,
        amount=1,
        ledger=ledger_ref,
        code=code,
        transfer_id=tb.id(),
    )
    with pytest.raises(error):
        await service.create_transfer(bad)
    with pytest.raises(error):
        await service.create_pending_transfer(bad)
    with pytest.raises(error):
        await service.create_transfers([good, bad])
    with pytest.raises(error):
        await service.create_pending_transfers([good, bad], atomic=True)
    assert service.batcher.stats.requests == requests_before
    assert await service.get_intent(bad.transfer_id or 0) is None
    assert (await service.get_balance(wallet)).posted == 500


# -- another chart -------------------------------------------------------------------------------


@one_store
async def test_a_service_resolves_names_in_the_chart_it_is_given(ledger: Ledger) -> None:
    chart = Chart.from_toml(SMALL_CHART)
    async with ledger.open_service(chart=chart) as service:
        assert service.chart is chart
        issuer = await service.create_account(
            owner_id=None, account_type="treasury", ledger="POINTS", code=6, name="names:points"
        )
        member = await service.create_account(
            owner_id="alice", account_type="user", ledger="points", code="MEMBER"
        )
        assert (member.record.ledger, member.record.code) == (77, 5)
        result = await service.create_transfer(
            debit_account_id=issuer.id,
            credit_account_id=member.id,
            amount=40,
            ledger="POINTS",
            code="REWARD",
        )
        transfer = await service.get_transfer(result.id)
        assert transfer is not None
        assert (transfer.ledger, transfer.code) == (77, 9)
        # The default chart's names mean nothing to this service.
        with pytest.raises(UnknownLedgerError, match="it has POINTS \\(77\\)"):
            await service.create_account(owner_id="bob", account_type="user", ledger="USD")
        with pytest.raises(UnknownCodeError):
            await service.create_transfer(
                debit_account_id=issuer.id,
                credit_account_id=member.id,
                amount=1,
                ledger="POINTS",
                code="PAYMENT",
            )


def test_the_blocking_facade_takes_a_chart_and_names(tmp_path: Path) -> None:
    chart = Chart.from_toml(SMALL_CHART)
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    with LedgerServiceSync(
        chart=chart, engine_url="memory://", database_url=url, **DEFAULT_SETTINGS
    ) as ledger:
        assert ledger.service.chart is chart
        issuer = ledger.create_account(
            owner_id=None, account_type="treasury", ledger="POINTS", code=6, name="sync:points"
        )
        member = ledger.create_account(
            owner_id="alice", account_type="user", ledger="POINTS", code="MEMBER"
        )
        ledger.create_transfer(
            debit_account_id=issuer.id,
            credit_account_id=member.id,
            amount=7,
            ledger="POINTS",
            code="REWARD",
        )
        assert ledger.get_balance(member.id).posted == 7
        with pytest.raises(UnknownLedgerError):
            ledger.create_account(owner_id="bob", account_type="user", ledger="USD")


async def test_names_are_resolved_before_the_service_needs_a_connection() -> None:
    # Validation is pure: an unknown name is refused even by a service that never connected.
    engine = ClientAsync(cluster_id=0)
    store = await Store.connect("sqlite:///:memory:", migrate=True)
    service = LedgerService(engine=engine, store=store)
    try:
        with pytest.raises(UnknownLedgerError):
            await service.create_transfer(
                debit_account_id=1, credit_account_id=2, amount=1, ledger="NOPE", code=1
            )
    finally:
        await store.close()
        await engine.close()
