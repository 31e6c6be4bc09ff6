"""The SDK against a real service: every kind of route, typed answers, the library's errors.

The service is the FastAPI app over the in-memory engine and a SQLite file, served by uvicorn in
a background thread; the async client runs on httpx and on aiohttp, the blocking one on httpx.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tbledger.admin import create_key
from tbledger.client import (
    AiohttpTransport,
    Answer,
    AsyncLedgerClient,
    HttpxTransport,
    LedgerClient,
    TransferSpec,
    answer_of,
)
from tbledger.config import Settings
from tbledger.errors import (
    AccountFrozenError,
    AccountNotFoundError,
    AmountError,
    ApiAuthError,
    ApiUnreachableError,
    HistoryNotKeptError,
    HttpApiError,
    IdempotencyConflictError,
    InsufficientBalanceError,
    LimitExceededError,
    PriceError,
    UnknownReferenceError,
    ValidationError,
)
from tests.support.live_service import live_service
from tests.support.tbserver import free_port

pytestmark = pytest.mark.timeout(120)


@dataclass(frozen=True)
class Service:
    url: str
    admin_key: str
    alice_key: str


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("client")
    database_url = f"sqlite:///{tmp / 'tbledger.db'}"
    settings = Settings(engine_url="memory://", database_url=database_url)
    with live_service(settings, background=False) as url:
        admin = asyncio.run(create_key(database_url, name="sdk admin", admin=True))
        alice = asyncio.run(create_key(database_url, name="sdk alice", owner_id="alice"))
        assert admin.token is not None and alice.token is not None
        yield Service(url, admin.token, alice.token)


@pytest.fixture(params=["httpx", "aiohttp"])
async def client(
    request: pytest.FixtureRequest, service: Service
) -> AsyncIterator[AsyncLedgerClient]:
    if request.param == "httpx":
        ledger = AsyncLedgerClient(service.url, api_key=service.admin_key)
    else:
        transport = AiohttpTransport(
            service.url,
            headers={"Authorization": f"Bearer {service.admin_key}"},
            timeout_s=30.0,
            connections=4,
        )
        ledger = AsyncLedgerClient(transport=transport)
    async with ledger:
        yield ledger


async def test_accounts_transfers_and_holds(client: AsyncLedgerClient) -> None:
    assert (await client.health()).status == "ok"
    assert (await client.ready()).ready
    alice = await client.create_account(ledger="USD", owner_id="alice", name=None)
    bob = await client.create_account(ledger="USD", account_type="merchant", owner_id="bob")
    assert alice.status == "active" and alice.ledger_name == "USD"
    deposit = await client.deposit(account_id=alice.id, amount=Decimal("100.00"), ledger="USD")
    assert deposit.flow == "deposit" and deposit.details.account_id == alice.id
    assert all(t.ok for t in deposit.transfers)

    spec = TransferSpec(
        debit_account_id=alice.id, credit_account_id=bob.id, amount=Decimal("12.50"), ledger="USD"
    )
    first = await client.create_transfer(spec, idempotency_key=f"k-{alice.id}")
    again = await client.create_transfer(spec, idempotency_key=f"k-{alice.id}")
    assert first.ok and again.id == first.id and again.replayed

    with pytest.raises(IdempotencyConflictError) as conflict:
        await client.create_transfer(
            TransferSpec(
                debit_account_id=alice.id, credit_account_id=bob.id, amount=1, ledger="USD"
            ),
            idempotency_key=f"k-{alice.id}",
        )
    answer = answer_of(conflict.value)
    assert answer is not None and answer.status == 409

    with pytest.raises(InsufficientBalanceError) as refused:
        await client.create_transfer(
            TransferSpec(
                debit_account_id=alice.id,
                credit_account_id=bob.id,
                amount=Decimal("1000"),
                ledger="USD",
            )
        )
    assert refused.value.code == "exceeds_credits"

    hold = await client.create_pending_transfer(
        TransferSpec(
            debit_account_id=alice.id,
            credit_account_id=bob.id,
            amount=500,
            ledger="USD",
            timeout_s=3600,
        )
    )
    posted = await client.post_pending_transfer(hold.id, amount=Decimal("3.00"))
    assert posted.ok
    other = await client.create_pending_transfer(
        TransferSpec(debit_account_id=alice.id, credit_account_id=bob.id, amount=1, ledger="USD")
    )
    assert (await client.void_pending_transfer(other.id)).ok

    balance = await client.get_balance(alice.id)
    assert (balance.posted, balance.available, balance.held) == ("84.50", "84.50", "0.00")
    both = await client.get_balances([alice.id, bob.id])
    assert [b.account_id for b in both] == [alice.id, bob.id]

    batch = await client.create_transfers(
        [
            TransferSpec(
                debit_account_id=alice.id,
                credit_account_id=bob.id,
                amount=Decimal("1"),
                ledger="USD",
            ),
            TransferSpec(
                debit_account_id=alice.id,
                credit_account_id=bob.id,
                amount=Decimal("9999"),
                ledger="USD",
            ),
        ]
    )
    assert (batch.created, batch.failed) == (1, 1)
    assert [r.ok for r in batch.results] == [True, False]

    found = await client.get_transfer(hold.id)
    assert found.amount == "5.00" and found.audit
    # Posted in part: what was captured, and what went back to alice.
    assert (found.status, found.captured_amount, found.released_amount) == (
        "posted",
        "3.00",
        "2.00",
    )
    assert (found.captured_amount_minor, found.released_amount_minor) == ("300", "200")
    page = await client.list_account_transfers(alice.id, limit=2)
    assert len(page.transfers) == 2 and page.next_cursor is not None
    listed = await client.list_accounts(owner_id="alice")
    assert alice.id in {a.id for a in listed.accounts}

    frozen = await client.freeze_account(bob.id)
    assert frozen.status == "frozen"
    with pytest.raises(AccountFrozenError):
        await client.create_transfer(
            TransferSpec(
                debit_account_id=alice.id, credit_account_id=bob.id, amount=1, ledger="USD"
            )
        )
    assert (await client.unfreeze_account(bob.id)).status == "active"
    assert (await client.recover()).unresolved == 0


async def test_flows_prices_and_events(client: AsyncLedgerClient) -> None:
    alice = await client.create_account(ledger="USD", owner_id="alice")
    alice_eur = await client.create_account(ledger="EUR", owner_id="alice")
    shop = await client.create_account(ledger="USD", account_type="merchant", owner_id="shop")
    await client.deposit(account_id=alice.id, amount=Decimal("50.00"), ledger="USD")
    fees = await client.set_fee_schedule(shop.id, fee_bps=100, fee_fixed=Decimal("0.10"))
    assert (fees.fee_bps, fees.fee_fixed, fees.platform_default) == (100, "0.10", False)
    assert (await client.fee_schedule(shop.id)).fee_bps == 100

    paid = await client.pay(
        payer_id=alice.id,
        merchant_id=shop.id,
        amount=Decimal("10.00"),
        ledger="USD",
        payment_id=alice.id,
    )
    assert paid.details.fee == "0.20" and paid.details.fee_payer == "payer"
    left = await client.refundable(alice.id)
    assert left.refundable == "10.00"
    refunded = await client.refund(payment_id=alice.id, amount=Decimal("4.00"))
    assert refunded.details.payer_id == alice.id
    with pytest.raises(UnknownReferenceError) as missing:
        await client.refund(payment_id="no-such-payment")
    assert missing.value.code.endswith("not_found")

    locked = await client.escrow_lock(
        contract_id=f"c-{alice.id}", payer_id=alice.id, amount=Decimal("5.00"), ledger="USD"
    )
    released = await client.escrow_release(
        contract_id=f"c-{alice.id}", merchant_id=shop.id, amount=Decimal("2.00")
    )
    voided = await client.escrow_void(contract_id=f"c-{alice.id}")
    assert locked.details.escrow_account_id == released.details.escrow_account_id
    assert voided.details.payer_id == alice.id

    settled = await client.settle(merchant_id=shop.id, ledger="USD", amount=Decimal("1.00"))
    assert settled.details.settlement_id is not None
    reversed_ = await client.reverse_settlement(settled.details.settlement_id)
    assert reversed_.details.settlement_id == settled.details.settlement_id

    with pytest.raises(PriceError):
        await client.quote(source_ledger="USD", target_ledger="GBP", amount=Decimal("1.00"))
    rate = await client.set_rate(source_ledger="USD", target_ledger="EUR", rate=Decimal("0.9"))
    assert rate.rate == "0.9"
    assert any(r.target_ledger_name == "EUR" for r in await client.rates())
    await client.fund_liquidity(amount=Decimal("1000.00"), ledger="EUR")
    assert (await client.liquidity("EUR")).available != "0.00"
    quote = await client.quote(source_ledger="USD", target_ledger="EUR", amount=Decimal("10.00"))
    exchanged = await client.exchange(
        source_account_id=alice.id,
        target_account_id=alice_eur.id,
        amount=Decimal("10.00"),
        source_ledger="USD",
        target_ledger="EUR",
        quote_id=quote.quote_id,
    )
    assert exchanged.details.target_amount == "9.00"

    events = [e async for e in client.events(follow=False)]
    assert events and events == sorted(events, key=lambda e: e.seq)
    later = [e async for e in client.events(since=events[-2].seq, follow=False)]
    assert [e.seq for e in later] == [events[-1].seq]
    assert "tbledger" in await client.metrics()


async def test_history_activity_and_statements(client: AsyncLedgerClient) -> None:
    alice = await client.create_account(ledger="USD", owner_id="alice")
    shop = await client.create_account(ledger="USD", account_type="merchant", owner_id="shop")
    await client.deposit(account_id=alice.id, amount=Decimal("50.00"), ledger="USD")
    spec = TransferSpec(
        debit_account_id=alice.id, credit_account_id=shop.id, amount=Decimal("5.00"), ledger="USD"
    )
    first = await client.create_transfer(spec)
    hold = await client.create_pending_transfer(spec)
    await client.post_pending_transfer(hold.id, amount=Decimal("2.00"))

    history = await client.balance_history(alice.id)
    assert [p.kind for p in history.points] == ["opening", "single", "single", "pending", "post"]
    assert [p.posted for p in history.points] == ["0.00", "50.00", "45.00", "45.00", "43.00"]
    page = await client.balance_history(alice.id, limit=2, reverse=True)
    assert [p.kind for p in page.points] == ["post", "pending"] and page.next_cursor
    rest = await client.balance_history(alice.id, reverse=True, cursor=page.next_cursor)
    assert [p.kind for p in rest.points] == ["single", "single", "opening"]

    paid = history.points[2]
    at = await client.balance_as_of(alice.id, as_of=int(paid.timestamp))
    assert at.existed and at.balance is not None and at.balance.transfer_id == first.id
    assert (await client.balance_as_of(alice.id, as_of=paid.time)).balance == at.balance
    ancient = await client.balance_as_of(alice.id, as_of=datetime(2001, 1, 1, tzinfo=UTC))
    assert not ancient.existed and ancient.balance is None

    activity = await client.account_activity(alice.id, counterparty=shop.id, status="posted")
    assert [e.kind for e in activity.entries] == ["single", "pending", "post"]
    assert activity.entries[1].captured_amount == "2.00"
    assert activity.entries[1].released_amount == "3.00"
    assert activity.entries[0].counterparty.owner_id == "shop"  # an admin key sees it
    flows = await client.account_activity(alice.id, flow="deposit", code="DEPOSIT")
    assert [e.flow for e in flows.entries] == ["deposit"]

    start, end = history.points[2].time, datetime(2200, 1, 1, tzinfo=UTC)
    statement = await client.statement(alice.id, start=start, end=end)
    assert (statement.opening.posted, statement.closing.posted) == ("50.00", "43.00")
    assert [line.change for line in statement.lines] == ["-5.00", "0.00", "-2.00"]
    text = await client.statement_csv(alice.id, start=start, end=end)
    assert text.splitlines()[0].startswith("time,timestamp,kind")
    assert len(text.splitlines()) == 1 + 1 + 3 + 1

    anchor = await client.create_account(ledger="USD", account_type="anchor")
    with pytest.raises(HistoryNotKeptError) as refused:
        await client.balance_history(anchor.id)
    assert refused.value.code == "history_not_kept"
    with pytest.raises(ValidationError):
        await client.balance_as_of(alice.id, as_of=datetime(2001, 1, 1))  # no time zone


async def test_errors_are_the_library_tree(service: Service) -> None:
    async with AsyncLedgerClient(service.url, api_key=service.alice_key) as alice:
        with pytest.raises(ApiAuthError) as forbidden:
            await alice.recover()
        assert forbidden.value.status == 403
        with pytest.raises(AccountNotFoundError):
            await alice.get_account("0x1")
        with pytest.raises(ValidationError):
            await alice.create_account(ledger="NOPE")
        with pytest.raises(AmountError):
            await alice.deposit(account_id=1, amount=1.5, ledger="USD")  # type: ignore[arg-type]
    async with AsyncLedgerClient(service.url, api_key="tbl_bad_key") as stranger:
        with pytest.raises(ApiAuthError) as unauthorized:
            await stranger.get_balance(1)
        assert unauthorized.value.status == 401 and unauthorized.value.code == "unauthorized"
    async with AsyncLedgerClient(service.url, api_key=service.admin_key) as admin:
        account = await admin.create_account(ledger="USD")
        spec = TransferSpec(
            debit_account_id=account.id, credit_account_id=2, amount=1, ledger="USD"
        )
        with pytest.raises(LimitExceededError):
            await admin.create_transfers([spec] * 8190)
    async with AsyncLedgerClient(f"http://127.0.0.1:{free_port()}") as nowhere:
        with pytest.raises(ApiUnreachableError) as unreachable:
            await nowhere.health()
        assert isinstance(unreachable.value, HttpApiError) and unreachable.value.status is None


async def test_discovery(client: AsyncLedgerClient, service: Service) -> None:
    tag = secrets.token_hex(4)
    owner = f"discovery-{tag}"
    wallet = await client.create_account(ledger="USD", owner_id=owner, name=f"wallet/{tag}")
    savings = await client.create_account(ledger="EUR", owner_id=owner)
    shop = await client.create_account(ledger="USD", owner_id=owner, account_type="merchant")
    await client.deposit(account_id=wallet.id, amount=Decimal("5.00"), ledger="USD")

    # Accounts: by filters, a page at a time.
    first = await client.list_accounts(owner_id=owner, limit=2)
    assert [a.id for a in first.accounts] == [wallet.id, savings.id]
    assert first.next_cursor is not None
    rest = await client.list_accounts(owner_id=owner, limit=2, cursor=first.next_cursor)
    assert ([a.id for a in rest.accounts], rest.next_cursor) == ([shop.id], None)
    usd = await client.list_accounts(owner_id=owner, ledger="USD", status="active")
    assert [a.id for a in usd.accounts] == [wallet.id, shop.id]
    merchants = await client.list_accounts(owner_id=owner, account_type="merchant", ledger=1)
    assert [a.id for a in merchants.accounts] == [shop.id]
    treasury = await client.list_accounts(account_type="treasury", ledger="USD")
    assert [a.name for a in treasury.accounts] == ["system:treasury:1"]

    # An account by its name (a '/' in it travels encoded), with its balance.
    named = await client.account_by_name(f"wallet/{tag}")
    assert named.id == wallet.id and named.balance is not None
    assert (named.balance.posted, named.balance.account_name) == ("5.00", f"wallet/{tag}")
    with pytest.raises(AccountNotFoundError):
        await client.account_by_name(f"nobody-{tag}")
    (balance,) = await client.get_balances([wallet.id])
    assert balance.account_name == f"wallet/{tag}"

    # Transfers by metadata.
    spec = TransferSpec(
        debit_account_id=wallet.id,
        credit_account_id=shop.id,
        amount=Decimal("1.00"),
        ledger="USD",
        metadata={"order": tag, "channel": "sdk"},
    )
    paid = await client.create_transfer(spec)
    other = await client.create_transfer(
        TransferSpec(
            debit_account_id=wallet.id,
            credit_account_id=shop.id,
            amount=Decimal("1.00"),
            ledger="USD",
            event_id=f"event-{tag}",
            metadata={"order": tag},
        )
    )
    found = await client.transfers_by_metadata({"order": tag})
    assert [t.id for t in found.transfers] == [paid.id, other.id]
    assert found.transfers[0].metadata == {"order": tag, "channel": "sdk"}
    both = await client.list_transfers(metadata={"order": tag, "channel": "sdk"})
    assert [t.id for t in both.transfers] == [paid.id]
    evented = await client.list_transfers(event_id=f"event-{tag}", metadata={"order": tag})
    assert [t.id for t in evented.transfers] == [other.id]
    page = await client.transfers_by_metadata({"order": tag}, limit=1)
    assert [t.id for t in page.transfers] == [paid.id] and page.next_cursor is not None
    with pytest.raises(ValidationError):
        await client.list_transfers()

    # Alice's key sees none of this owner's accounts or transfers.
    async with AsyncLedgerClient(service.url, api_key=service.alice_key) as alice:
        assert (await alice.list_accounts(owner_id=owner)).accounts == []
        with pytest.raises(AccountNotFoundError):
            await alice.account_by_name(f"wallet/{tag}")
        assert (await alice.transfers_by_metadata({"order": tag})).transfers == []


def test_blocking_client(service: Service) -> None:
    with LedgerClient(service.url, api_key=service.admin_key) as client:
        account = client.create_account(ledger="USD", owner_id="alice", idempotency_key="sync-1")
        again = client.create_account(ledger="USD", owner_id="alice", idempotency_key="sync-1")
        assert again.id == account.id
        client.deposit(account_id=account.id, amount=Decimal("1.00"), ledger="USD")
        assert client.get_account(account.id).balance is not None
        assert [e.kind for e in client.events(follow=False)]
        history = client.balance_history(account.id)
        assert [p.posted for p in history.points] == ["0.00", "1.00"]
        assert client.statement(account.id, start=1, end="2200-01-01").closing.posted == "1.00"
        with pytest.raises(AccountNotFoundError):
            client.get_balance("0x" + "f" * 31)
        listed = client.list_accounts(owner_id="alice", ledger="USD", limit=1000)
        assert account.id in [a.id for a in listed.accounts]
        with pytest.raises(AccountNotFoundError):
            client.account_by_name("no such name")
        assert client.transfers_by_metadata({"no": "such"}).transfers == []


class RecordingTransport:
    """httpx, with every request body it sends kept (decoded) in `bodies`."""

    def __init__(self, url: str, api_key: str) -> None:
        self.inner = HttpxTransport(
            url, headers={"Authorization": f"Bearer {api_key}"}, timeout_s=30.0
        )
        self.base_url = self.inner.base_url
        self.bodies: list[dict[str, object]] = []

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        self.bodies.append(json.loads(content) if content else {})
        return self.inner.request(method, path, params=params, content=content, headers=headers)

    def stream_lines(
        self,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[str]:
        return self.inner.stream_lines(path, params=params, headers=headers)

    def close(self) -> None:
        self.inner.close()


def test_amounts_are_read_as_the_library_reads_them(service: Service) -> None:
    """An int is minor units and a Decimal major units, as in `SpendEngine` and `LedgerService`;
    text, floats, bools and negative amounts are refused before anything is sent."""
    recorder = RecordingTransport(service.url, service.admin_key)
    with LedgerClient(transport=recorder) as client:
        account = client.create_account(ledger="USD", owner_id="alice")
        shop = client.create_account(ledger="USD", account_type="merchant", owner_id="shop")
        client.deposit(account_id=account.id, amount=1250, ledger="USD")
        client.deposit(account_id=account.id, amount=Decimal("12.50"), ledger="USD")
        assert client.get_balance(account.id).posted == "25.00"
        sent = [(b["amount"], b["amount_unit"]) for b in recorder.bodies if "amount" in b]
        assert sent == [("1250", "minor"), ("12.50", "major")]

        hold = client.create_pending_transfer(
            TransferSpec(
                debit_account_id=account.id, credit_account_id=shop.id, amount=500, ledger="USD"
            )
        )
        assert client.get_transfer(hold.id).amount == "5.00"
        assert client.post_pending_transfer(hold.id, amount=Decimal("2")).ok
        assert client.get_balance(account.id).posted == "23.00"
        fees = client.set_fee_schedule(shop.id, fee_bps=0, fee_fixed=30)
        assert (fees.fee_fixed, fees.fee_fixed_minor) == ("0.30", "30")
        with pytest.raises(ValidationError):  # more places than USD has: refused, not rounded
            client.deposit(account_id=account.id, amount=Decimal("0.001"), ledger="USD")

        before = len(recorder.bodies)
        for wrong in ("12.50", "1250", 12.5, True, -1, Decimal("-0"), Decimal("NaN")):
            with pytest.raises(AmountError):
                client.deposit(account_id=account.id, amount=wrong, ledger="USD")  # type: ignore[arg-type]
        with pytest.raises(AmountError) as text:
            client.create_transfer(
                TransferSpec(
                    debit_account_id=account.id,
                    credit_account_id=shop.id,
                    amount="1.00",  # type: ignore[arg-type]
                    ledger="USD",
                )
            )
        assert "Decimal(text)" in str(text.value)
        with pytest.raises(AmountError):
            client.post_pending_transfer(hold.id, amount="1.00")  # type: ignore[arg-type]
        with pytest.raises(AmountError):
            client.set_fee_schedule(shop.id, fee_bps=0, fee_fixed="0.30")  # type: ignore[arg-type]
        with pytest.raises(AmountError):
            client.quote(source_ledger="USD", target_ledger="EUR", amount="1")  # type: ignore[arg-type]
        assert len(recorder.bodies) == before


def test_the_blocking_client_is_generated_from_the_async_one() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tbledger.tools.sync_client", "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_docs_example_runs(service: Service, capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "client.md").read_text()
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    example = example.replace('"http://127.0.0.1:8000"', repr(service.url))
    example = example.replace('"tbl_<id>_<secret>"', repr(service.admin_key))
    exec(compile(example, "docs/client.md", "exec"), {})
    assert capsys.readouterr().out.split() == ["exceeds_credits", "87.50"]


async def test_webhooks(client: AsyncLedgerClient) -> None:
    created = await client.create_webhook(
        "https://hooks.example.com/in", description="books", kinds=["posted"], ledgers=[1]
    )
    assert created.secret is not None and created.secret.startswith("whsec_")
    assert created.subscription.kinds == ["posted"]
    listed = await client.list_webhooks()
    assert created.id in [w.id for w in listed]
    assert all(w.secret is None for w in listed)
    rotated = await client.rotate_webhook(created.id)
    assert rotated.secret not in (None, created.secret)
    replayed = await client.replay_webhook(created.id, from_seq=1)
    assert replayed.cursor == 0
    assert (await client.enable_webhook(created.id)).enabled
    assert await client.webhook_deliveries(created.id, limit=5) == []
    await client.delete_webhook(created.id)
    with pytest.raises(UnknownReferenceError) as missing:
        await client.get_webhook(created.id)
    assert answer_of(missing.value).status == 404
