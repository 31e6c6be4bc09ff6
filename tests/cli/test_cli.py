"""The command line end to end: a real service on a free port, driven through the CLI itself.

The service is the FastAPI app over the in-memory engine and a SQLite file, served by uvicorn in
a background thread; keys are minted by ``tbledger keys`` on the same SQLite file, and every other
command talks to the service over HTTP with ``--json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

import tbledger
from tbledger.__main__ import main
from tbledger.cli import app
from tbledger.config import Settings
from tbledger.store import DEFAULT_APP_ROLE, downgrade, upgrade_sync
from tests.support.database import SessionDatabase, _asyncpg_dsn
from tests.support.live_service import live_service
from tests.support.tbserver import free_port

pytestmark = pytest.mark.timeout(60)

# The tbledger this suite imports, for a command run in a process of its own.
_SRC = str(Path(tbledger.__file__).resolve().parents[1])

runner = CliRunner()


@dataclass
class Service:
    url: str
    database_url: str
    admin_key: str = ""


def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    """`tbledger --json ARGS`, with no ambient service settings leaking in."""
    base: dict[str, str | None] = {
        "TBLEDGER_API_URL": None,
        "TBLEDGER_API_KEY": None,
        "TBLEDGER_DATABASE_URL": None,
        "TBLEDGER_ENGINE_URL": None,
        "TBLEDGER_DATA_DIR": None,
        "TIGERBEETLE_ADDRESSES": None,
    }
    return runner.invoke(app, ["--json", *args], env={**base, **(env or {})})


def ok(result: Result) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("cli")
    database_url = f"sqlite:///{tmp / 'tbledger.db'}"
    settings = Settings(engine_url="memory://", database_url=database_url)
    with live_service(settings, background=False) as url:
        yield Service(url, database_url)


@pytest.fixture(scope="module")
def admin(service: Service) -> Service:
    minted = ok(
        run(
            "keys",
            "create",
            "--admin",
            "--name",
            "cli test",
            "--database-url",
            service.database_url,
        )
    )
    assert minted["token"].startswith(f"tbl_{minted['id']}_")
    assert minted["scopes"] == ["admin"]
    service.admin_key = minted["token"]
    return service


def api(service: Service, *args: str, key: str | None = None) -> Result:
    env: dict[str, str | None] = {
        "TBLEDGER_API_URL": service.url,
        "TBLEDGER_API_KEY": key or service.admin_key,
    }
    return run(*args, env=env)


def test_money_moves_through_the_cli(admin: Service) -> None:
    source = ok(api(admin, "accounts", "create", "--ledger", "USD", "--type", "anchor"))
    assert source["account_type"] == "anchor"
    opened = ok(
        api(admin, "accounts", "create", "--ledger", "USD", "--owner", "alice", "--count", "2")
    )
    alice, bob = (a["id"] for a in opened["accounts"])

    funded = ok(api(admin, "transfer", source["id"], alice, "100.00"))
    assert funded["ok"] and funded["status"] == "created"

    paid = ok(api(admin, "transfer", alice, bob, "30.00", "--idempotency-key", "pay-1"))
    again = ok(api(admin, "transfer", alice, bob, "30.00", "--idempotency-key", "pay-1"))
    assert again["id"] == paid["id"] and again["replayed"]

    refused = api(admin, "transfer", alice, bob, "1000.00")
    assert refused.exit_code == 1
    error = json.loads(refused.stdout)
    assert error["status"] == 409 and error["error"]["code"] == "exceeds_credits"

    held = ok(api(admin, "hold", alice, bob, "20.00", "--ledger", "USD"))
    posted = ok(api(admin, "post", held["id"], "--amount", "15.00"))
    assert posted["ok"]
    other = ok(api(admin, "hold", alice, bob, "5.00", "--timeout", "3600"))
    voided = ok(api(admin, "void", other["id"]))
    assert voided["ok"]

    mine = ok(api(admin, "balance", alice))
    assert (mine["posted"], mine["available"], mine["held"]) == ("55.00", "55.00", "0.00")
    both = ok(api(admin, "balance", alice, bob))
    assert [b["posted"] for b in both["balances"]] == ["55.00", "45.00"]

    trail = ok(api(admin, "audit", held["id"]))
    assert trail["id"] == held["id"] and trail["amount"] == "20.00"
    assert trail["audit"], trail
    # What the partial post captured, and what it released to alice.
    assert (trail["status"], trail["captured_amount"], trail["released_amount"]) == (
        "posted",
        "15.00",
        "5.00",
    )
    env = {"TBLEDGER_API_URL": admin.url, "TBLEDGER_API_KEY": admin.admin_key}
    shown = runner.invoke(app, ["audit", held["id"]], env=env)
    assert shown.exit_code == 0, shown.output
    captured_row = next(line for line in shown.stdout.splitlines() if "captured_amount" in line)
    released_row = next(line for line in shown.stdout.splitlines() if "released_amount" in line)
    assert "15.00" in captured_row and "5.00" in released_row

    listed = ok(api(admin, "accounts", "list", "--owner", "alice"))
    assert {a["id"] for a in listed["accounts"]} == {alice, bob}
    shown = ok(api(admin, "accounts", "show", bob))
    assert shown["balance"]["available"] == "45.00"

    report = ok(api(admin, "recover"))
    assert report["unresolved"] == 0

    repeated = ok(api(admin, "transfer", bob, alice, "1.00", "--repeat", "5"))
    assert (repeated["created"], repeated["failed"]) == (5, 0)
    assert ok(api(admin, "balance", bob))["posted"] == "40.00"

    table = api(admin, "balance", alice)
    assert table.exit_code == 0 and "available" in table.stdout


def test_an_account_over_time_through_the_cli(admin: Service, tmp_path: Path) -> None:
    source = ok(api(admin, "accounts", "create", "--ledger", "USD", "--type", "treasury"))
    alice = ok(api(admin, "accounts", "create", "--ledger", "USD", "--owner", "alice"))["id"]
    shop = ok(
        api(admin, "accounts", "create", "--ledger", "USD", "--owner", "shop", "--name", "Shop")
    )["id"]
    ok(api(admin, "transfer", source["id"], alice, "100.00", "--code", "DEPOSIT"))
    ok(api(admin, "transfer", alice, shop, "30.00"))
    held = ok(api(admin, "hold", alice, shop, "20.00"))
    ok(api(admin, "post", held["id"], "--amount", "15.00"))

    history = ok(api(admin, "accounts", "history", alice))
    assert [p["kind"] for p in history["points"]] == [
        "opening",
        "single",
        "single",
        "pending",
        "post",
    ]
    assert [p["posted"] for p in history["points"]] == ["0.00", "100.00", "70.00", "70.00", "55.00"]
    first = ok(api(admin, "accounts", "history", alice, "--limit", "2"))
    rest = ok(api(admin, "accounts", "history", alice, "--cursor", first["next_cursor"]))
    assert first["points"] + rest["points"] == history["points"]
    newest = ok(api(admin, "accounts", "history", alice, "--reverse", "--limit", "1"))
    assert newest["points"][0]["kind"] == "post"

    paid = history["points"][2]
    at = ok(api(admin, "balance", alice, "--as-of", paid["time"]))
    assert at["existed"] and at["balance"]["posted"] == "70.00"
    both = ok(api(admin, "balance", alice, shop, "--as-of", paid["timestamp"]))
    assert [b["balance"]["posted"] for b in both["balances"]] == ["70.00", "30.00"]
    ancient = ok(api(admin, "balance", alice, "--as-of", "2001-01-01"))
    assert not ancient["existed"]

    activity = ok(api(admin, "accounts", "activity", alice, "--counterparty", shop))
    assert [e["kind"] for e in activity["entries"]] == ["single", "pending", "post"]
    assert activity["entries"][1]["captured_amount"] == "15.00"
    assert activity["entries"][0]["counterparty"]["name"] == "Shop"
    posted = ok(api(admin, "accounts", "activity", alice, "--status", "posted", "--code", "1"))
    assert [e["amount"] for e in posted["entries"]] == ["100.00"]

    csv_file = tmp_path / "statement.csv"
    statement = ok(
        api(
            admin,
            "accounts",
            "statement",
            alice,
            "--from",
            paid["timestamp"],
            "--to",
            "2200-01-01T00:00:00Z",
            "--csv",
            str(csv_file),
        )
    )
    assert (statement["opening"]["posted"], statement["closing"]["posted"]) == ("100.00", "55.00")
    rows = csv_file.read_text().splitlines()
    assert rows[0].startswith("time,timestamp,kind") and len(rows) == 1 + 1 + 3 + 1
    assert rows[1].split(",")[2] == "opening" and rows[-1].split(",")[7] == "55.00"

    # For people: ISO times, ledger units, names beside ids, where the next page starts.
    env = {"TBLEDGER_API_URL": admin.url, "TBLEDGER_API_KEY": admin.admin_key}
    table = runner.invoke(app, ["accounts", "history", alice, "--limit", "2"], env=env)
    assert table.exit_code == 0, table.output
    assert "more: --cursor" in table.stdout and "100.00" in table.stdout
    assert paid["time"][:10] in table.stdout
    lines = runner.invoke(
        app,
        ["accounts", "statement", alice, "--from", "2000-01-01", "--to", "2200-01-01"],
        env=env,
    )
    assert lines.exit_code == 0, lines.output
    assert "opening" in lines.stdout and "closing" in lines.stdout and "Shop (" in lines.stdout
    shown = runner.invoke(app, ["accounts", "activity", alice], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Shop (" in shown.stdout and "15.00" in shown.stdout
    as_of = runner.invoke(app, ["balance", alice, "--as-of", "2001-01-01"], env=env)
    assert as_of.exit_code == 0 and "not opened yet" in as_of.stdout

    anchor = ok(api(admin, "accounts", "create", "--ledger", "USD", "--type", "anchor"))
    refused = api(admin, "accounts", "history", anchor["id"])
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["error"]["code"] == "history_not_kept"


def test_accounts_found_by_filters_and_named_by_name(admin: Service) -> None:
    tag = secrets.token_hex(3)
    owner = f"erin-{tag}"
    source = ok(
        api(
            admin,
            "accounts",
            "create",
            "--ledger",
            "USD",
            "--type",
            "anchor",
            "--name",
            f"src-{tag}",
        )
    )
    wallet = ok(
        api(admin, "accounts", "create", "--ledger", "USD", "--owner", owner, "--name", f"w-{tag}")
    )
    shop = ok(
        api(
            admin,
            "accounts",
            "create",
            "--ledger",
            "USD",
            "--owner",
            owner,
            "--type",
            "merchant",
            "--name",
            f"shop-{tag}",
        )
    )

    assert source["name"] == f"src-{tag}"

    # Listings: the platform's own accounts, and an owner's a page at a time.
    treasury = ok(api(admin, "accounts", "list", "--type", "treasury", "--ledger", "USD"))
    # Other tests share this service and may open treasuries of their own; the platform's is there.
    assert "system:treasury:1" in [a["name"] for a in treasury["accounts"]]
    assert {a["account_type"] for a in treasury["accounts"]} == {"treasury"}
    first = ok(api(admin, "accounts", "list", "--owner", owner, "--limit", "1"))
    assert [a["id"] for a in first["accounts"]] == [wallet["id"]]
    rest = ok(
        api(
            admin,
            "accounts",
            "list",
            "--owner",
            owner,
            "--limit",
            "1",
            "--cursor",
            first["next_cursor"],
        )
    )
    assert ([a["id"] for a in rest["accounts"]], rest["next_cursor"]) == ([shop["id"]], None)
    merchants = ok(api(admin, "accounts", "list", "--owner", owner, "--type", "merchant"))
    assert [a["id"] for a in merchants["accounts"]] == [shop["id"]]
    assert (
        ok(api(admin, "accounts", "list", "--status", "frozen", "--owner", owner))["accounts"] == []
    )

    # Names wherever an account is taken.
    assert ok(api(admin, "accounts", "show", f"w-{tag}"))["id"] == wallet["id"]
    ok(api(admin, "transfer", f"src-{tag}", f"w-{tag}", "10.00"))
    paid = ok(api(admin, "transfer", f"w-{tag}", f"shop-{tag}", "2.50"))
    held = ok(api(admin, "hold", f"w-{tag}", f"shop-{tag}", "1.00"))
    assert paid["ok"] and held["ok"]
    assert ok(api(admin, "balance", f"w-{tag}"))["available"] == "6.50"
    both = ok(api(admin, "balance", f"w-{tag}", shop["id"]))
    assert [b["account_name"] for b in both["balances"]] == [f"w-{tag}", f"shop-{tag}"]
    assert ok(api(admin, "fees", "show", f"shop-{tag}"))["account_id"] == shop["id"]
    assert ok(api(admin, "accounts", "freeze", f"shop-{tag}"))["status"] == "frozen"
    assert ok(api(admin, "accounts", "unfreeze", f"shop-{tag}"))["status"] == "active"
    missing = api(admin, "transfer", f"w-{tag}", "no-such-account", "1.00")
    assert missing.exit_code == 1
    assert json.loads(missing.stdout)["error"]["code"] == "account_not_found"

    # Names beside ids in the tables.
    env = {"TBLEDGER_API_URL": admin.url, "TBLEDGER_API_KEY": admin.admin_key}
    listing = runner.invoke(app, ["accounts", "list", "--owner", owner], env=env)
    assert listing.exit_code == 0, listing.output
    row = next(line for line in listing.stdout.splitlines() if wallet["id"] in line)
    assert f"w-{tag}" in row
    trail = runner.invoke(app, ["audit", paid["id"]], env=env)
    assert trail.exit_code == 0, trail.output
    assert f"{wallet['id']} (w-{tag})" in trail.stdout
    assert f"{shop['id']} (shop-{tag})" in trail.stdout
    balances = runner.invoke(app, ["balance", f"w-{tag}"], env=env)
    assert f"w-{tag}" in balances.stdout

    # An owner key names its own owner's accounts only.
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
    assert ok(api(admin, "accounts", "show", f"w-{tag}", key=key))["id"] == wallet["id"]
    mine = ok(api(admin, "accounts", "list", key=key))
    assert [a["id"] for a in mine["accounts"]] == [wallet["id"], shop["id"]]
    other = api(admin, "accounts", "show", f"src-{tag}", key=key)
    assert other.exit_code == 1
    assert json.loads(other.stdout)["error"]["code"] == "account_not_found"


def test_rates_and_fee_schedules_through_the_cli(admin: Service) -> None:
    assert ok(api(admin, "rates", "list"))["rates"] == []
    stored = ok(api(admin, "rates", "set", "USD", "EUR", "0.915", "--source", "ECB 2026-12-07"))
    assert (stored["rate"], stored["source"]) == ("0.915", "ECB 2026-12-07")
    ok(api(admin, "rates", "set", "USD", "EUR", "0.92"))
    [current] = ok(api(admin, "rates", "list"))["rates"]
    assert (current["source_ledger_name"], current["rate"], current["source"]) == (
        "USD",
        "0.92",
        "manual",
    )
    bad = api(admin, "rates", "set", "USD", "EUR", "1e3")
    assert bad.exit_code == 1 and json.loads(bad.stdout)["status"] == 422

    merchant = ok(api(admin, "accounts", "create", "--ledger", "USD", "--type", "merchant"))
    default = ok(api(admin, "fees", "show", merchant["id"]))
    assert (default["fee_bps"], default["platform_default"]) == (0, True)
    schedule = ok(
        api(
            admin,
            "fees",
            "set",
            merchant["id"],
            "--bps",
            "250",
            "--fixed",
            "0.30",
            "--payer",
            "merchant",
        )
    )
    assert (schedule["fee_bps"], schedule["fee_fixed"], schedule["fee_payer"]) == (
        250,
        "0.30",
        "merchant",
    )
    assert ok(api(admin, "fees", "show", merchant["id"]))["platform_default"] is False


def test_human_output_without_json(admin: Service) -> None:
    env = {"TBLEDGER_API_URL": admin.url, "TBLEDGER_API_KEY": admin.admin_key}
    result = runner.invoke(
        app, ["accounts", "create", "--ledger", "EUR", "--owner", "carol"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "account opened" in result.stdout and "EUR" in result.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


def test_keys_list_and_revoke(admin: Service) -> None:
    db = ("--database-url", admin.database_url)
    owner = ok(run("keys", "create", "--owner", "dave", "--name", "dave's", "--rate", "5", *db))
    assert (owner["owner_id"], owner["rate_per_s"]) == ("dave", 5)
    ids = {k["id"] for k in ok(run("keys", "list", *db))["keys"]}
    assert owner["id"] in ids

    revoked = ok(run("keys", "revoke", owner["id"], *db))
    assert revoked["revoked_at"] is not None and not revoked["active"]
    refused = api(admin, "accounts", "list", "--owner", "dave", key=owner["token"])
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["status"] == 401

    missing = run("keys", "revoke", "0123456789abcdef", *db)
    assert missing.exit_code != 0


def test_errors_exit_non_zero(admin: Service) -> None:
    unknown = api(admin, "accounts", "show", "0x1234")
    assert unknown.exit_code == 1
    assert json.loads(unknown.stdout)["error"]["code"] == "account_not_found"

    bad_amount = api(admin, "transfer", "0x1", "0x2", "12,50", "--ledger", "USD")
    assert bad_amount.exit_code == 2

    unreachable = run("balance", "0x1", env={"TBLEDGER_API_URL": f"http://127.0.0.1:{free_port()}"})
    assert unreachable.exit_code == 1
    assert json.loads(unreachable.stdout)["error"]["code"] == "unreachable"

    human = runner.invoke(
        app,
        ["accounts", "show", "0x1234"],
        env={"TBLEDGER_API_URL": admin.url, "TBLEDGER_API_KEY": "tbl_nope"},
    )
    assert human.exit_code == 1
    assert "401" in human.stderr and "unauthorized" in human.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'store.db'}"
    assert ok(run("db", "upgrade", "--database-url", url))["upgraded"]
    assert ok(run("db", "upgrade", "--database-url", url))["upgraded"]
    assert ok(run("keys", "list", "--database-url", url))["keys"] == []


def test_default_store_lives_in_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ok(run("db", "upgrade", "--data-dir", str(data)))
    ok(run("keys", "create", "--admin", "--name", "me", "--data-dir", str(data)))
    assert (data / "tbledger.db").exists()
    assert len(ok(run("keys", "list", "--data-dir", str(data)))["keys"]) == 1


def test_keys_do_not_migrate_and_say_how_to(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    refused = run("keys", "list", "--database-url", url)
    assert refused.exit_code != 0
    assert "run `tbledger db upgrade`" in " ".join(refused.stderr.split())
    ok(run("db", "upgrade", "--database-url", url))
    assert ok(run("keys", "list", "--database-url", url))["keys"] == []


def test_keys_in_a_folder_without_a_store_say_where_they_looked(tmp_path: Path) -> None:
    # Run from the wrong folder, the default data dir holds no store: nothing is created there,
    # and the message names the path it looked at and the options that point elsewhere.
    data = tmp_path / "elsewhere"
    for command in (("create", "--admin", "--name", "me"), ("list",), ("revoke", "abc")):
        refused = run("keys", *command, "--data-dir", str(data))
        assert refused.exit_code == 2
        said = " ".join(refused.stderr.split())
        assert "no store at" in said and "tbledger.db" in said and "elsewhere" in said
        assert "--data-dir" in said and "TBLEDGER_DATABASE_URL" in said
    assert not data.exists()


async def _sql(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def test_keys_as_the_services_own_database_user(postgres_database: SessionDatabase) -> None:
    # The service's login user holds nothing but tbledger_app's privileges, as in production
    # (docs/deployment.md); the tables are migrated by the privileged user, and live in a schema
    # named after the service's user, which PostgreSQL's default search_path ("$user") finds.
    owner_url = postgres_database.url
    user = f"tbledger_web_{secrets.token_hex(4)}"
    service_url = make_url(owner_url).set(username=user, password=None)
    db = ("--database-url", service_url.render_as_string(hide_password=False))
    upgrade_sync(owner_url, schema=user)
    grant = f'GRANT "{DEFAULT_APP_ROLE}" TO "{user}"'
    asyncio.run(_sql(owner_url, f'CREATE ROLE "{user}" LOGIN', grant))
    try:
        created = ok(run("keys", "create", "--owner", "erin", "--name", "erin's", *db))
        assert created["token"].startswith(f"tbl_{created['id']}_")
        assert [k["id"] for k in ok(run("keys", "list", *db))["keys"]] == [created["id"]]
        revoked = ok(run("keys", "revoke", created["id"], *db))
        assert revoked["revoked_at"] is not None and not revoked["active"]
        again = ok(run("keys", "revoke", created["id"], *db))
        assert again["revoked_at"] == revoked["revoked_at"]

        # A schema behind the packaged migrations is refused with what to do.
        asyncio.run(downgrade(owner_url, "0005", schema=user))
        behind = run("keys", "list", *db)
        assert behind.exit_code != 0
        assert "run `tbledger db upgrade`" in " ".join(behind.stderr.split())
    finally:
        asyncio.run(_sql(owner_url, f'DROP SCHEMA "{user}" CASCADE', f'DROP ROLE "{user}"'))


def test_demo() -> None:
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "partial capture" in result.stdout and "alice" in result.stdout


def test_serve_help_and_main(capsys: pytest.CaptureFixture[str]) -> None:
    result = runner.invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.stdout and "TBLEDGER_DATABASE_URL" in result.stdout
    assert main(["serve", "--help"]) == 0
    assert main(["no-such-command"]) == 2


def test_serve_reports_bad_settings_by_field_and_variable(tmp_path: Path) -> None:
    """A bad value in the environment stops `serve` (and so `make run`) with one clear line that
    names the setting and its variable, exit status 2, and no traceback. In a process of its own:
    `serve` configures the root logger."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TBLEDGER_", "TB_"))}
    env.pop("TIGERBEETLE_ADDRESSES", None)
    env.update(TB_REQUEST_TIMEOUT="soon", TBLEDGER_MIGRATE="maybe", PYTHONPATH=_SRC)
    done = subprocess.run(
        [sys.executable, "-m", "tbledger", "serve", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    said = " ".join(done.stderr.split())
    assert "error: invalid settings:" in said
    assert "request_timeout_ms (TB_REQUEST_TIMEOUT or TBLEDGER_REQUEST_TIMEOUT_MS)" in said
    assert "migrate (TBLEDGER_MIGRATE)" in said
    assert "Traceback" not in done.stderr
