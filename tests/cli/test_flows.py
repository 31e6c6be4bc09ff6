"""The payment flows on the command line, end to end against a real service.

As in ``test_cli``: the FastAPI app over the in-memory engine and a SQLite file, served by uvicorn
in a background thread, an admin key minted by ``tbledger keys``, and every command run through
the CLI itself, with ``--json`` unless it checks what people see.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from tbledger.cli import app
from tbledger.config import Settings
from tests.cli.test_cli import Service, api, ok, run, runner
from tests.support.live_service import live_service

pytestmark = pytest.mark.timeout(120)

_ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("cli-flows")
    database_url = f"sqlite:///{tmp / 'tbledger.db'}"
    settings = Settings(engine_url="memory://", database_url=database_url)
    with live_service(settings, background=False) as url:
        minted = ok(
            run("keys", "create", "--admin", "--name", "flows", "--database-url", database_url)
        )
        yield Service(url, database_url, minted["token"])


def refused(result: Result) -> str:
    """The error code of a refusal, which exits 1 with the service's error on stdout."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    return str(json.loads(result.stdout)["error"]["code"])


def people(service: Service, *args: str) -> Result:
    """A command as a person runs it: tables, no --json."""
    env = {"TBLEDGER_API_URL": service.url, "TBLEDGER_API_KEY": service.admin_key}
    return runner.invoke(app, list(args), env=env)


def opened(service: Service, *args: str) -> dict[str, Any]:
    account: dict[str, Any] = ok(api(service, "accounts", "create", *args))
    return account


def posted(service: Service, account: str) -> str:
    return str(ok(api(service, "balance", account))["posted"])


def test_every_flow_through_the_cli(admin: Service) -> None:
    tag = secrets.token_hex(3)
    alice = opened(admin, "--ledger", "USD", "--owner", "alice", "--name", f"alice-{tag}")["id"]
    alice_eur = opened(admin, "--ledger", "EUR", "--owner", "alice", "--name", f"euro-{tag}")["id"]
    shop = opened(
        admin, "--ledger", "USD", "--owner", "shop", "--type", "merchant", "--name", f"shop-{tag}"
    )["id"]

    # Money in and out, accounts by name or id, amounts in the ledger's units or --minor.
    deposited = ok(api(admin, "deposit", f"alice-{tag}", "100.00", "--ledger", "USD"))
    assert (deposited["flow"], deposited["amount"], deposited["ledger_name"]) == (
        "deposit",
        "100.00",
        "USD",
    )
    assert deposited["details"]["account_id"] == alice and all(
        t["ok"] for t in deposited["transfers"]
    )
    key = ("--idempotency-key", f"dep-{tag}")
    minor = ok(api(admin, "deposit", alice, "2500", "--minor", *key))
    again = ok(api(admin, "deposit", alice, "2500", "--minor", *key))
    assert (minor["amount"], minor["amount_minor"], minor["replayed"]) == ("25.00", "2500", False)
    assert again["replayed"] and again["transfers"][0]["id"] == minor["transfers"][0]["id"]
    withdrawn = ok(api(admin, "withdraw", f"alice-{tag}", "5.00"))
    assert (withdrawn["flow"], withdrawn["amount"]) == ("withdrawal", "5.00")
    assert posted(admin, alice) == "120.00"

    # A payment, charged the merchant's fee, then refunded in part and in full.
    ok(api(admin, "fees", "set", f"shop-{tag}", "--bps", "100"))
    paid = ok(api(admin, "pay", f"alice-{tag}", f"shop-{tag}", "10.00", "--payment-id", f"p-{tag}"))
    assert (paid["flow"], paid["payment_id"], paid["details"]["fee"]) == (
        "payment",
        f"p-{tag}",
        "0.10",
    )
    assert (paid["details"]["payer_id"], paid["details"]["merchant_id"]) == (alice, shop)
    assert ok(api(admin, "refundable", f"p-{tag}"))["refundable"] == "10.00"
    part = ok(api(admin, "refund", f"p-{tag}", "--amount", "4.00", "--payer", f"alice-{tag}"))
    rest = ok(api(admin, "refund", f"p-{tag}"))
    assert (part["flow"], part["amount"], rest["amount"]) == ("refund", "4.00", "6.00")
    assert ok(api(admin, "refundable", f"p-{tag}"))["refundable"] == "0.00"

    # Refusals exit 1 with the service's code; nothing moves.
    assert refused(api(admin, "pay", alice, shop, "100000.00")) == "exceeds_credits"
    assert refused(api(admin, "refund", f"no-such-{tag}")) == "payment_not_found"
    assert refused(api(admin, "deposit", f"nobody-{tag}", "1.00")) == "account_not_found"
    assert posted(admin, shop) == "0.00"
    # Amounts are checked before anything is sent: a usage error, exit 2.
    assert api(admin, "deposit", alice, "1.5", "--minor").exit_code == 2
    assert api(admin, "deposit", alice, "1,50").exit_code == 2

    # Escrow: lock, release part to the merchant, give the rest back.
    contract = f"c-{tag}"
    locked = ok(api(admin, "escrow", "lock", contract, f"alice-{tag}", "5.00"))
    released = ok(api(admin, "escrow", "release", contract, f"shop-{tag}", "--amount", "2.00"))
    voided = ok(api(admin, "escrow", "void", contract, "--payer", alice))
    assert (locked["flow"], locked["details"]["contract_id"]) == ("escrow_lock", contract)
    assert (released["amount"], released["details"]["merchant_id"]) == ("2.00", shop)
    assert (voided["amount"], voided["details"]["payer_id"]) == ("3.00", alice)
    empty = api(admin, "escrow", "void", contract)
    assert refused(empty) == "invalid_input" and "holds nothing" in empty.stdout

    # Merchant settlement and its reversal, which happens at most once.
    settled = ok(api(admin, "settle", f"shop-{tag}", "--amount", "1.00"))
    settlement = settled["details"]["settlement_id"]
    assert settled["flow"] == "settlement" and posted(admin, shop) == "1.00"
    reversal = ok(api(admin, "reverse-settlement", settlement))
    replay = ok(api(admin, "reverse-settlement", settlement))
    assert reversal["details"]["settlement_id"] == settlement and not reversal["replayed"]
    assert replay["replayed"] and posted(admin, shop) == "2.00"

    # Exchange at a quote, out of the platform's liquidity; a quote is spent once.
    ok(api(admin, "rates", "set", "USD", "EUR", "0.9"))
    funded = ok(api(admin, "liquidity", "fund", "1000.00", "--ledger", "EUR"))
    assert (funded["flow"], funded["amount"]) == ("liquidity_funding", "1000.00")
    assert ok(api(admin, "liquidity", "show", "EUR"))["available"] == "1000.00"
    quoted = ok(api(admin, "quote", "USD", "EUR", "10.00"))
    assert (quoted["rate"], quoted["target_amount"]) == ("0.9", "9.00")
    swapped = ok(
        api(
            admin, "exchange", f"alice-{tag}", f"euro-{tag}", "10.00", "--quote", quoted["quote_id"]
        )
    )
    assert (swapped["flow"], swapped["details"]["target_amount"]) == ("exchange", "9.00")
    assert posted(admin, alice_eur) == "9.00"
    spent = api(admin, "exchange", alice, alice_eur, "10.00", "--quote", quoted["quote_id"])
    assert refused(spent) == "quote_used"
    at_rate = ok(api(admin, "exchange", alice, alice_eur, "1000", "--minor"))
    assert (at_rate["amount"], at_rate["details"]["target_amount"]) == ("10.00", "9.00")

    # Anchors: authorize, read, fulfil in part; authorize again and release.
    before = posted(admin, alice)
    authorized = ok(
        api(
            admin,
            "anchor",
            "authorize",
            f"alice-{tag}",
            "30.00",
            "--obligation",
            "grocery",
            "--timeout",
            "60",
        )
    )
    hold = authorized["details"]["hold_id"]
    assert authorized["details"]["obligation_ledger_name"] == "GROCERY_OBLIGATION"
    assert ok(api(admin, "anchor", "status", hold))["state"] == "authorized"
    fulfilled = ok(api(admin, "anchor", "fulfil", hold, "--amount", "25.00"))
    assert (fulfilled["amount"], fulfilled["details"]["released"]) == ("25.00", "5.00")
    assert ok(api(admin, "anchor", "status", hold))["state"] == "fulfilled"
    # The API's spelling reaches the same command; a fulfilled hold cannot be fulfilled again.
    assert refused(api(admin, "anchor", "fulfill", hold)) == "pending_transfer_already_posted"
    second = ok(
        api(
            admin,
            "anchor",
            "authorize",
            alice,
            "1000",
            "--minor",
            "--obligation",
            "grocery",
            "--timeout",
            "60",
        )
    )
    let_go = ok(api(admin, "anchor", "release", second["details"]["hold_id"]))
    assert let_go["flow"] == "anchor_release"
    assert ok(api(admin, "anchor", "status", second["details"]["hold_id"]))["state"] == "released"
    assert ok(api(admin, "balance", alice))["held"] == "0.00"
    assert Decimal(posted(admin, alice)) == Decimal(before) - Decimal("25.00")


def test_flows_for_people_and_for_owner_keys(admin: Service) -> None:
    tag = secrets.token_hex(3)
    owner = f"olga-{tag}"
    wallet = opened(admin, "--ledger", "USD", "--owner", owner, "--name", f"wallet-{tag}")["id"]
    shop = opened(
        admin, "--ledger", "USD", "--owner", "shop", "--type", "merchant", "--name", f"till-{tag}"
    )["id"]

    # People see the ledger's units, names beside ids, and each transfer's ISO time.
    shown = people(admin, "deposit", f"wallet-{tag}", "50.00")
    assert shown.exit_code == 0, shown.output
    assert "deposit: 50.00 USD" in shown.stdout
    assert f"{wallet} (wallet-{tag})" in shown.stdout
    assert _ISO_MS.search(shown.stdout), shown.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(shown.stdout)
    paid = people(admin, "pay", f"wallet-{tag}", f"till-{tag}", "1.25", "--payment-id", f"q-{tag}")
    assert paid.exit_code == 0, paid.output
    assert "payment: 1.25 USD" in paid.stdout and f"{shop} (till-{tag})" in paid.stdout
    assert "0.00 USD" in paid.stdout  # the fee, in the ledger's units (the platform default)
    left = people(admin, "refundable", f"q-{tag}")
    assert left.exit_code == 0 and "1.25 USD" in left.stdout and f"(wallet-{tag})" in left.stdout
    no = people(admin, "pay", f"wallet-{tag}", f"till-{tag}", "999.00")
    assert no.exit_code == 1 and "exceeds_credits" in no.stderr
    replayed = people(admin, "reverse-settlement", "0x1")
    assert replayed.exit_code == 1 and "not_found" in replayed.stderr

    # An owner key pays and locks from its own accounts, named by name; the admin flows refuse it.
    key = ok(
        run(
            "keys",
            "create",
            "--owner",
            owner,
            "--name",
            f"{owner}'s",
            "--database-url",
            admin.database_url,
        )
    )["token"]
    mine = ok(api(admin, "pay", f"wallet-{tag}", shop, "2.00", key=key))
    assert mine["details"]["payer_id"] == wallet
    locked = ok(api(admin, "escrow", "lock", f"k-{tag}", f"wallet-{tag}", "1.00", key=key))
    assert locked["details"]["payer_id"] == wallet
    assert refused(api(admin, "escrow", "void", f"k-{tag}", key=key)) == "forbidden"
    assert refused(api(admin, "deposit", f"wallet-{tag}", "1.00", key=key)) == "forbidden"
    assert ok(api(admin, "balance", wallet))["available"] == "45.75"


def test_every_documented_flow_example_is_a_command() -> None:
    """The flow table of docs/configuration.md names commands and options that exist: each
    example, with --help added, is parsed by the command line."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    section = text.split("## Payment flows on the command line", 1)[1]
    examples = re.findall(r"^\| `[^`]+` \| `tbledger ([^`]+)` \|", section, flags=re.MULTILINE)
    assert len(examples) == 18
    for example in examples:
        words = example.replace("0x01a2…", "0x1").split()
        shown = runner.invoke(app, [*words, "--help"])
        assert shown.exit_code == 0, (example, shown.output)
        options = [w for w in words if w.startswith("--")]
        assert all(o in shown.stdout for o in options), (example, shown.stdout)
