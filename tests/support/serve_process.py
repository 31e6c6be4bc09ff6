"""`tbledger serve` in a process of its own, on a free loopback port: the service as people run it.

The process runs this checkout's tbledger (``PYTHONPATH`` points at the package the tests
import), on the embedded engine and SQLite in a data directory of the caller's, with no ambient
service settings leaking in. Keys are made by ``tbledger keys create`` on the same data
directory, as an operator would; `cli` runs any other command the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

import tbledger
from tests.support.tbserver import free_port

__all__ = ["cli", "cli_json", "create_key", "served"]

# The tbledger this suite imports, for commands run in processes of their own.
_SRC = str(Path(tbledger.__file__).resolve().parents[1])
_START_S = 60
_STOP_S = 15


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TBLEDGER_", "TB_"))}
    env.pop("TIGERBEETLE_ADDRESSES", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SRC, env.get("PYTHONPATH")]))
    return env


def cli(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m tbledger ARGS`` in a process of its own; its output, whatever its status."""
    return subprocess.run(
        [sys.executable, "-m", "tbledger", *args],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def cli_json(*args: str, timeout_s: float = 120) -> Any:
    """A command's JSON answer (``--json``); a failure shows its output."""
    done = cli("--json", *args, timeout_s=timeout_s)
    assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout)


def create_key(data_dir: Path, *, name: str, owner: str | None = None) -> str:
    """A new key's token: an admin key, or an owner key bound to `owner`."""
    scope = ["--admin"] if owner is None else ["--owner", owner]
    minted = cli_json("keys", "create", *scope, "--name", name, "--data-dir", str(data_dir))
    token: str = minted["token"]
    return token


@contextlib.contextmanager
def served(data_dir: Path) -> Iterator[str]:
    """Run ``tbledger serve`` over `data_dir` until the block ends; yield its base URL."""
    port = free_port()
    log = (data_dir / "serve.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tbledger",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
        ],
        env=_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _START_S
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"tbledger serve exited with {process.returncode}: "
                    f"{(data_dir / 'serve.log').read_text()}"
                )
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "tbledger serve did not become ready"
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(_STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_S)
        log.close()
