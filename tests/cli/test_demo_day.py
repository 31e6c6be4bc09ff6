"""``tbledger demo --day``: a seeded day played through a running service's flows.

Two fresh services given the same seed end the day with the same story and the same balances
in every account of it; a service that already holds a seed's day says so instead of playing it
twice; without an admin key the command says what it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tbledger.admin import create_key
from tbledger.cli import app
from tbledger.config import Settings
from tests.support.live_service import live_service

pytestmark = pytest.mark.timeout(120)

runner = CliRunner()
_NO_AMBIENT = {
    "TBLEDGER_API_URL": None,
    "TBLEDGER_API_KEY": None,
    "TBLEDGER_DATABASE_URL": None,
    "TBLEDGER_ENGINE_URL": None,
    "TIGERBEETLE_ADDRESSES": None,
}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[list[tuple[str, str]]]:
    """Two fresh services, each with an admin key: (url, token)."""
    found: list[tuple[str, str]] = []
    with contextlib.ExitStack() as stack:
        for index in range(2):
            database_url = f"sqlite:///{tmp_path / f'day{index}.db'}"
            settings = Settings(engine_url="memory://", database_url=database_url)
            url = stack.enter_context(live_service(settings, background=False))
            minted = asyncio.run(create_key(database_url, name="day", admin=True))
            found.append((url, minted.token or ""))
        yield found


def _play(url: str, key: str, seed: int, *extra: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["demo", "--day", "--seed", str(seed), "--url", url, "--api-key", key, *extra],
        env=_NO_AMBIENT,
    )
    return result.exit_code, result.stdout + result.stderr


def test_the_same_seed_plays_the_same_day(services: list[tuple[str, str]]) -> None:
    stories = []
    balances = []
    for url, key in services:
        code, said = _play(url, key, 7)
        assert code == 0, said
        stories.append([line for line in said.splitlines() if line[:2].isdigit()])
        code, said = _play(url, key, 7, "--json")
        assert code == 1 and "already holds the day of seed 7" in said, said
        code, said = _play(url, key, 8, "--json")
        assert code == 0, said
        played = json.loads(said)
        assert played["seed"] == 8 and len(played["open_holds"]) == 2
        assert int(played["started_ns"]) < int(played["ended_ns"])
        balances.append(_posted_by_name(url, key))
    assert stories[0] == stories[1]
    assert len(stories[0]) > 30
    assert balances[0] == balances[1]
    assert balances[0]["alice@day7"] != "0.00"


def _posted_by_name(url: str, key: str) -> dict[str, str]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        accounts = http.get("/v1/accounts", params={"limit": "1000"}).json()["accounts"]
    return {
        a["name"]: a["balance"]["posted"] for a in accounts if a["name"] and "@day" in a["name"]
    }


def test_the_day_needs_an_admin_key() -> None:
    result = runner.invoke(app, ["demo", "--day"], env=_NO_AMBIENT)
    assert result.exit_code == 2
    assert "--day needs an admin key" in result.stderr
