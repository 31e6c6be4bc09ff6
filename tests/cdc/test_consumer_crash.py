"""Crash safety: ``tbledger cdc run`` is SIGKILLed mid-stream again and again; when the stream
has drained, the store holds every event exactly once (no loss, no duplicate foreign-transfer
audit event), because a batch is acknowledged only after the store committed it and the store
records an event once by its timestamp and type.

The stream is synthetic: transfers no intent asked for, as another client would write them, so
each recorded event also appends one ``foreign_transfer`` audit event, and a duplicate would
show there. Skipped, with the reason, when no broker answers.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from pathlib import Path

import aio_pika
import pytest
import sqlalchemy as sa

from tbledger.store import Store
from tbledger.store.tables import audit_events, change_events
from tbledger.tools.bench.events import synthetic_event
from tests.support.broker import BROKER_URL, broker_reason, publish, throwaway_names

EVENTS = 20_000
KILLS = 10
SRC = Path(__file__).resolve().parents[2] / "src"


async def counts(store: Store) -> tuple[int, int, int]:
    """(change events, foreign audit events, distinct transfers among them)."""
    foreign = audit_events.c.kind == "foreign_transfer"
    async with store.engine.connect() as conn:
        events = (await conn.execute(sa.select(sa.func.count()).select_from(change_events))).one()
        audits = (await conn.execute(sa.select(sa.func.count()).where(foreign))).one()
        distinct = (
            await conn.execute(
                sa.select(sa.func.count(sa.distinct(audit_events.c.transfer_id))).where(foreign)
            )
        ).one()
    return int(events[0]), int(audits[0]), int(distinct[0])


async def test_sigkill_mid_stream_loses_and_repeats_nothing(tmp_path: Path) -> None:
    reason = broker_reason()
    if reason is not None:
        pytest.skip(reason)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = await Store.connect(url, migrate=True)
    async with throwaway_names(BROKER_URL) as names:
        # The queue, bound before anything is published (as `tbledger cdc run` binds it).
        connection = await aio_pika.connect(BROKER_URL)
        channel = await connection.channel()
        queue = await channel.declare_queue(names.queue, durable=True)
        await queue.bind(names.exchange, routing_key="")
        await connection.close()
        events = [synthetic_event(i) for i in range(EVENTS)]
        chunk = 1_000
        await asyncio.gather(
            *(publish(names.exchange, events[i : i + chunk]) for i in range(0, EVENTS, chunk))
        )

        env = {
            **os.environ,
            "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "TBLEDGER_CDC_URL": BROKER_URL,
            "TBLEDGER_CDC_EXCHANGE": names.exchange,
            "TBLEDGER_CDC_QUEUE": names.queue,
            "TBLEDGER_ENGINE_URL": "memory://",
        }
        argv = [sys.executable, "-m", "tbledger", "cdc", "run", "--database-url", url]
        rng = random.Random(16)
        kills: list[int] = []
        started = time.monotonic()
        try:
            for _ in range(KILLS):
                before = (await counts(store))[0]
                process = await asyncio.create_subprocess_exec(
                    *argv, env=env, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                # Kill it mid-stream: once it has recorded something, after a random while.
                deadline = time.monotonic() + 30
                while (await counts(store))[0] == before and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(rng.uniform(0.0, 0.4))
                process.send_signal(signal.SIGKILL)
                await process.wait()
                recorded = (await counts(store))[0]
                kills.append(recorded)
                assert recorded < EVENTS, "the stream drained before the kill: make it longer"
            # The last one runs to the end of the stream.
            process = await asyncio.create_subprocess_exec(
                *argv, env=env, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 120
            while (await counts(store))[0] < EVENTS and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        elapsed = time.monotonic() - started
        recorded, audits, distinct = await counts(store)
        print(
            f"\ncdc crash: {len(kills)} kills (recorded at each: {kills}); {EVENTS} events "
            f"published, {recorded} recorded, {EVENTS - recorded} lost, "
            f"{audits - distinct} duplicated; {elapsed:.1f} s"
        )
        assert len(kills) == KILLS
        assert kills == sorted(kills)
        assert (recorded, audits, distinct) == (EVENTS, EVENTS, EVENTS)
    await store.close()
