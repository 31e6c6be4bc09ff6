"""``tbledger webhooks``: endpoints managed in the store with no server, and ``run`` delivering
to a loopback receiver until interrupted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tbledger.cli import app
from tbledger.client import verify_webhook
from tbledger.ids import new_id
from tbledger.model import AccountRecord
from tbledger.store import Store
from tests.webhooks.receiver import Receiver

runner = CliRunner()
SRC = Path(__file__).resolve().parents[2] / "src"


def ok(*args: str) -> Any:
    result = runner.invoke(app, ["--json", *args], env={"TBLEDGER_DATABASE_URL": None})
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return json.loads(result.stdout)


def test_create_list_rotate_replay_enable_deliveries_delete(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    ok("db", "upgrade", "--database-url", url)
    created = ok(
        "webhooks", "create", "https://hooks.example.com/in", "--owner", "alice",
        "--kind", "posted", "--ledger", "1", "--database-url", url,
    )  # fmt: skip
    assert created["secret"].startswith("whsec_")
    assert (created["owner_id"], created["subscription"]["kinds"]) == ("alice", ["posted"])
    endpoint_id = created["id"]
    listed = ok("webhooks", "list", "--database-url", url)
    assert [e["id"] for e in listed] == [endpoint_id]
    assert "secret" not in listed[0]
    assert (
        ok("webhooks", "rotate", endpoint_id, "--database-url", url)["secret"]
        != (created["secret"])
    )
    assert (
        ok("webhooks", "replay", endpoint_id, "--from", "1", "--database-url", url)["cursor"] == 0
    )
    assert ok("webhooks", "enable", endpoint_id, "--database-url", url)["enabled"]
    assert ok("webhooks", "deliveries", endpoint_id, "--database-url", url) == []
    assert ok("webhooks", "delete", endpoint_id, "--database-url", url)["deleted"]
    result = runner.invoke(app, ["webhooks", "delete", endpoint_id, "--database-url", url])
    assert result.exit_code == 1
    result = runner.invoke(app, ["webhooks", "create", "ftp://x.example/", "--database-url", url])
    assert result.exit_code == 1
    assert "only http and https" in result.output


async def test_run_delivers_until_interrupted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = await Store.connect(url, migrate=True)
    receiver = await Receiver().start()
    try:
        # The command runs its own event loop, so not on this one.
        created = await asyncio.to_thread(
            ok, "webhooks", "create", receiver.url, "--from", "1", "--database-url", url
        )
        await store.create_accounts(
            [AccountRecord(id=new_id(), account_type="user", ledger=1, code=1, owner_id="a")]
        )
        env = {
            **os.environ,
            "PYTHONPATH": str(SRC),
            "TBLEDGER_WEBHOOK_ALLOW_PRIVATE": "1",
            "TBLEDGER_WEBHOOK_POLL_S": "0.05",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tbledger", "webhooks", "run", "--database-url", url, env=env
        )
        try:
            for _ in range(600):
                if receiver.received:
                    break
                await asyncio.sleep(0.05)
        finally:
            process.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(process.wait(), 20) == 0
        assert [r.seq for r in receiver.received][:1] == [1]
        verify_webhook(receiver.received[0].body, receiver.received[0].headers, created["secret"])
    finally:
        await receiver.stop()
        await store.close()
