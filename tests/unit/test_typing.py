"""A type checker refuses the library's misuses before they run: strict mypy, on a small program
written against the public API, accepts the right calls and refuses the wrong ones line by line.

The wrong calls are the ones a new user makes: an amount as text (``amount="12.50"``: the flows
read an int as minor units and a `Decimal` as major units, and never guess the unit of a str), a
misspelt or unknown keyword, two accounts passed by position, `open_account`'s answer taken for
an int id, a misspelt setting. Each refused line says, in a trailing comment, the error codes
mypy must give it (mypy reports an argument on its own line); every other line must pass.

One mypy run checks both programs, with its cache in the test's temporary folder. To keep it fast,
the libraries behind the service's internals (SQLAlchemy, FastAPI, ...) are not followed: the
calls checked here involve only tbledger's own signatures, ints, strings and Decimals.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

import tbledger

ACCEPTED = """
from decimal import Decimal

from tbledger import AccountInfo, LedgerService, SpendEngine
from tbledger.config import Settings


async def flows(service: LedgerService, engine: SpendEngine) -> None:
    opened: AccountInfo = await engine.open_account("alice", ledger="USD")
    shop = await engine.open_account("shop", ledger=1, account_type="merchant")
    created: AccountInfo = await service.create_account(
        owner_id="bob", account_type="user", ledger=1
    )
    await engine.deposit(account=opened.id, amount=1250, ledger="USD")
    await engine.deposit(account=created.id, amount=Decimal("12.50"), ledger=1)
    await engine.withdraw(account=opened.id, amount=100, ledger="USD", idempotency_key="w-1")
    await engine.fund_liquidity(amount=Decimal("500"), ledger="EUR")
    paid = await engine.pay(
        payer=opened.id, merchant=shop.id, amount=Decimal("9.99"), ledger="USD", fee=25
    )
    await engine.refund(payment_id=paid.payment_id, amount=100)
    await engine.refund(payment_id=paid.payment_id)
    await engine.escrow_lock(contract_id="c-1", payer=opened.id, amount=500, ledger="USD")
    await engine.escrow_release(contract_id="c-1", merchant=shop.id, amount=Decimal("1"))
    await engine.escrow_void(contract_id="c-1")
    settled = await engine.settle_merchant(merchant=shop.id, ledger="USD")
    assert settled.settlement_id is not None
    await engine.reverse_settlement(settlement_id=settled.settlement_id)
    held = await engine.authorize_anchor(
        user=opened.id, amount=300, obligation="grocery", timeout_s=60
    )
    await engine.fulfill_anchor(authorization=held, amount=Decimal("1.00"))
    await engine.release_anchor(authorization=held.hold_id)
    await engine.exchange(
        source=opened.id,
        target=created.id,
        amount=1000,
        source_ledger="USD",
        target_ledger="EUR",
        rate="0.92",
    )
    await service.create_transfer(
        debit_account_id=opened.id, credit_account_id=shop.id, amount=1250, ledger=1, code=1
    )
    Settings(request_timeout_ms=100, database_url="sqlite://")
"""

REFUSED = """
from tbledger import LedgerService, SpendEngine
from tbledger.config import Settings


async def flows(service: LedgerService, engine: SpendEngine) -> None:
    await engine.deposit(account=1, amount="12.50", ledger="USD")  # refused: arg-type
    await engine.deposit(account=1, amount=100, ledger="USD", bogus=True)  # refused: call-arg
    await engine.deposit(1, 100, ledger="USD")  # refused: call-arg
    await engine.pay(1, 2, amount=100, ledger="USD")  # refused: call-arg
    await engine.pay(payer=1, merchant=2, amount=1, ledger="USD", fee="0.10")  # refused: arg-type
    await engine.refund(payment_id="p-1", amount="5")  # refused: arg-type
    await engine.exchange(
        source=1,
        target=2,
        amount="1",  # refused: arg-type
        source_ledger=1,
        target_ledger=2,
        rate="1",
    )
    await service.create_transfer(amount="12.50", bogus=True)  # refused: arg-type call-arg
    opened: int = await engine.open_account("alice", ledger="USD")  # refused: assignment
    Settings(bogus=True)  # refused: call-arg
    Settings(request_timout_ms=100)  # refused: call-arg
    Settings(request_timeout_ms="soon")  # refused: arg-type
"""

# The libraries behind the service's internals: not followed (their names are typed as Any).
_NOT_FOLLOWED = (
    "aiohttp.*,aiosqlite.*,alembic.*,anyio.*,asyncpg.*,fastapi.*,hdrh.*,httpx.*,"
    "prometheus_client.*,rich.*,sqlalchemy.*,starlette.*,typer.*,uvicorn.*"
)
_ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


def _expected(program: str) -> dict[int, set[str]]:
    """The codes each refused line must get, by line number."""
    expected: dict[int, set[str]] = {}
    for number, line in enumerate(program.splitlines(), start=1):
        _, marker, codes = line.partition("# refused:")
        if marker:
            expected[number] = set(codes.split())
    return expected


def test_strict_mypy_accepts_the_right_calls_and_refuses_the_wrong_ones(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api", reason="mypy is a development dependency")
    # The tbledger this test imports (a work tree's src on PYTHONPATH, or the installed one).
    source = Path(tbledger.__file__).resolve().parents[1]
    config = tmp_path / "mypy.ini"
    config.write_text(
        textwrap.dedent(
            f"""\
            [mypy]
            mypy_path = {source}

            [mypy-{_NOT_FOLLOWED}]
            follow_imports = skip
            ignore_missing_imports = True

            [mypy-tbledger.*]
            follow_imports = silent
            """
        )
    )
    accepted, refused = tmp_path / "accepted.py", tmp_path / "refused.py"
    accepted.write_text(ACCEPTED)
    refused.write_text(REFUSED)
    out, err, _ = api.run(
        [
            "--strict",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            "--show-error-codes",
            str(accepted),
            str(refused),
        ]
    )
    found: dict[tuple[str, int], set[str]] = {}
    for line in out.splitlines():
        matched = _ERROR.match(line)
        if matched:
            key = (Path(matched["file"]).name, int(matched["line"]))
            found.setdefault(key, set()).add(matched["code"])
    report = f"mypy said:\n{out}{err}"
    assert not {k: v for k, v in found.items() if k[0] == "accepted.py"}, report
    assert {line: codes for (name, line), codes in found.items() if name == "refused.py"} == (
        _expected(REFUSED)
    ), report
