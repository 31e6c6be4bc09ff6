"""Crash safety: the deliverer (``tbledger webhooks run``) is SIGKILLed mid-delivery again and
again; the receiver still sees every event at least once, first deliveries in seq order, and
after deduplication by ``webhook-id`` nothing is lost or reordered."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import sys
import time
from pathlib import Path

from tbledger.client import verify_webhook
from tbledger.store import Store
from tbledger.webhooks.manage import create_endpoint
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_deliverer import accounts, reloaded, transfers

KILLS = 20
SRC = Path(__file__).resolve().parents[2] / "src"


class Deliverers:
    """Deliverer processes forked from one `forker` process that has tbledger imported."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(cls, db_url: str) -> Deliverers:
        env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "TBLEDGER_WEBHOOK_ALLOW_PRIVATE": "1",
            "TBLEDGER_WEBHOOK_POLL_S": "0.05",
            "TBLEDGER_WEBHOOK_LEASE_S": "0.3",
            "TBLEDGER_WEBHOOK_TIMEOUT_S": "0.25",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).with_name("forker.py")),
            db_url,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def spawn(self) -> int:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(b"run\n")
        await self._process.stdin.drain()
        return int(await asyncio.wait_for(self._process.stdout.readline(), 10))

    async def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        await self._process.wait()


def kill(pid: int, signum: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


async def test_sigkill_mid_delivery_loses_and_reorders_nothing(
    store: Store, receiver: Receiver, db_url: str
) -> None:
    # Slow enough answers that a kill often lands while a POST is in flight.
    receiver.answer = lambda n: (200, 0.02, {})
    endpoint = await create_endpoint(store, url=receiver.url, owner_id=None, cursor=0)
    alice, bob = await accounts(store)
    await transfers(store, alice.id, bob.id, 80)
    latest = await store.latest_event_seq()
    rng = random.Random(7)
    started = time.monotonic()
    deliverers = await Deliverers.start(db_url)
    pids: list[int] = []
    try:
        for _ in range(KILLS):
            seen = len(receiver.received)
            pid = await deliverers.spawn()
            pids.append(pid)
            deadline = time.monotonic() + 10
            while len(receiver.received) == seen:
                assert time.monotonic() < deadline, "the deliverer delivered nothing"
                await asyncio.sleep(0.002)
            # Killed while it delivers: mid-request, between the answer and the cursor update,
            # or between events.
            await asyncio.sleep(rng.uniform(0.0, 0.1))
            kill(pid)
        assert (await reloaded(store, endpoint)).cursor < latest, "too few events to kill"
        # The last one is not killed: it delivers the rest.
        pid = await deliverers.spawn()
        pids.append(pid)
        deadline = time.monotonic() + 30
        while (await reloaded(store, endpoint)).cursor < latest:
            assert time.monotonic() < deadline, "the deliverer did not finish"
            await asyncio.sleep(0.05)
        kill(pid, signal.SIGTERM)
    finally:
        for pid in pids:
            kill(pid)
        await deliverers.close()
    assert time.monotonic() - started < 60

    first_seen: list[int] = []
    for r in receiver.received:
        verify_webhook(r.body, r.headers, endpoint.secret)
        assert r.headers["webhook-id"] == f"evt_{r.seq}"
        if r.seq not in first_seen:
            first_seen.append(r.seq)
    out_of_order = sum(1 for a, b in itertools.pairwise(first_seen) if b < a)
    print(
        f"\nwebhook crash: {KILLS} kills; {latest} events, {len(receiver.received)} deliveries, "
        f"{latest - len(first_seen)} lost, {len(receiver.received) - len(first_seen)} sent again "
        f"after a kill (at least once), "
        f"{out_of_order} first deliveries out of order"
    )
    assert first_seen == list(range(1, latest + 1))
    # Duplicates are only ever resends of events after the last cursor update.
    assert len(receiver.received) >= latest
