"""The twin's change stream against the real one, message by message.

The same deterministic workload runs on a real TigerBeetle server (whose stream `tigerbeetle amqp`
publishes) and on the embedded twin (whose stream `TwinPublisher` publishes); both streams are
collected from RabbitMQ and compared field by field: every body field, header and property is
equal, except timestamps, which differ between engines and are compared by structure instead
(strictly increasing; an event's own transfer's timestamp; an expiry after its hold's deadline;
one timestamp per account; the AMQP timestamp is the event's in seconds).

Skipped, with the reason, without ``TIGERBEETLE_BIN`` (or a cluster at ``TIGERBEETLE_ADDRESSES``
with an amqp-capable binary) or without RabbitMQ. Run with ``-s`` to see the summary line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

import aio_pika
import pytest
import tigerbeetle
from tigerbeetle import Account, AccountFlags, Transfer, TransferFlags

from tbledger.cdc import ChangeEvent, ChangeEventType, TwinPublisher, decode
from tbledger.embedded import ClientSync
from tests.cdc.support import AMQP_URL, Received, amqp_reason, new_cluster_id, stream
from tests.support.tbserver import start_replica

NS = 1_000_000_000
IDLE_MS = 50
CLUSTER = 0

_TF = TransferFlags
_AF = AccountFlags


def binary_reason() -> str | None:
    binary = os.environ.get("TIGERBEETLE_BIN")
    if not binary:
        return "no real TigerBeetle: set TIGERBEETLE_BIN (the server binary runs `amqp` too)"
    if not os.access(binary, os.X_OK):
        return f"TIGERBEETLE_BIN={binary!r} is not an executable file"
    return None


ACCOUNTS = [
    Account(id=1, ledger=7, code=10, flags=_AF.HISTORY, user_data_128=1 << 100, user_data_32=3),
    Account(id=2, ledger=7, code=20, user_data_64=(1 << 60) + 5),
    Account(id=3, ledger=7, code=30, flags=_AF.DEBITS_MUST_NOT_EXCEED_CREDITS),
    Account(id=4, ledger=7, code=40, flags=_AF.CREDITS_MUST_NOT_EXCEED_DEBITS),
    Account(id=5, ledger=7, code=50, flags=_AF.HISTORY),
    Account(id=6, ledger=7, code=60),
]


def t(id_: int, dr: int = 0, cr: int = 0, amount: int = 0, **kw: Any) -> Transfer:
    kw.setdefault("ledger", 7 if dr else 0)
    kw.setdefault("code", id_ if dr else 0)
    return Transfer(id=id_, debit_account_id=dr, credit_account_id=cr, amount=amount, **kw)


# Batches run one after another; each event's expected status is CREATED unless listed.
BEFORE_EXPIRY: list[list[Transfer]] = [
    [t(101, 1, 2, 100, user_data_128=1 << 90, user_data_64=11, user_data_32=12)],
    [t(102, 1, 2, 50, flags=_TF.PENDING)],
    [t(103, pending_id=102, amount=20, flags=_TF.POST_PENDING_TRANSFER, user_data_32=99)],
    [t(104, 2, 1, 30, flags=_TF.PENDING)],
    [t(105, pending_id=104, flags=_TF.VOID_PENDING_TRANSFER)],
    [t(106, 2, 3, 40)],
    [t(107, 3, 1, 100, flags=_TF.BALANCING_DEBIT)],  # clamped to 40
    [t(108, 4, 2, 15)],
    [t(109, 1, 4, 100, flags=_TF.BALANCING_CREDIT)],  # clamped to 15
    # A chain that fails: nothing of it is an event.
    [t(110, 1, 2, 5, flags=_TF.LINKED), t(111, 1, 99, 5)],
    [t(112, 1, 2, 9, flags=_TF.PENDING, timeout=1)],  # expires
]
AFTER_EXPIRY: list[list[Transfer]] = [
    [t(113, 5, 6, 0, flags=_TF.PENDING | _TF.CLOSING_DEBIT | _TF.CLOSING_CREDIT)],
    [t(114, pending_id=113, flags=_TF.VOID_PENDING_TRANSFER)],  # reopens both
    [t(115, 5, 6, 3)],
    [t(116, 6, 5, 0, flags=_TF.PENDING | _TF.CLOSING_CREDIT)],  # 5 stays closed
]
EVENTS = 15  # 9 before the chain, none from it, the hold and its expiry, 4 after


def run(client: Any, batches: list[list[Transfer]]) -> None:
    for batch in batches:
        results = client.create_transfers(batch)
        statuses = [r.status.name for r in results]
        if batch[0].id == 110:
            assert statuses[1] != "CREATED", statuses
        else:
            assert statuses == ["CREATED"] * len(batch), (batch[0].id, statuses)


@contextlib.contextmanager
def amqp_job(binary: str, address: str, exchange: str) -> Iterator[Callable[[], str]]:
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [
                binary,
                "amqp",
                f"--addresses={address}",
                f"--cluster={CLUSTER}",
                "--host=127.0.0.1",
                "--user=guest",
                "--password=guest",
                "--vhost=/",
                f"--publish-exchange={exchange}",
                f"--idle-interval-ms={IDLE_MS}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def output() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")[-4000:]

        try:
            yield output
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def timestamp_structure(events: list[ChangeEvent], seconds: list[int]) -> list[str]:
    """What must hold of one stream's timestamps; the problems found."""
    problems = []
    accounts: dict[int, int] = {}
    previous = 0
    for index, (e, s) in enumerate(zip(events, seconds, strict=True)):
        if e.timestamp <= previous:
            problems.append(f"#{index}: timestamp not increasing")
        previous = e.timestamp
        if s != e.timestamp // NS:
            problems.append(f"#{index}: AMQP timestamp {s} is not the event's in seconds")
        if e.type is ChangeEventType.TWO_PHASE_EXPIRED:
            if e.timestamp < e.transfer.timestamp + e.transfer.timeout * NS:
                problems.append(f"#{index}: expired before its deadline")
        elif e.timestamp != e.transfer.timestamp:
            problems.append(f"#{index}: event and transfer timestamps differ")
        for a in (e.debit_account, e.credit_account):
            if accounts.setdefault(a.id, a.timestamp) != a.timestamp:
                problems.append(f"#{index}: account {a.id} changed timestamp")
            if a.timestamp >= e.transfer.timestamp:
                problems.append(f"#{index}: account {a.id} is not older than the transfer")
    return problems


def _without_timestamps(obj: Any) -> dict[str, Any]:
    return {
        f.name: _without_timestamps(getattr(obj, f.name))
        if hasattr(getattr(obj, f.name), "__dataclass_fields__")
        else getattr(obj, f.name)
        for f in fields(obj)
        if f.name != "timestamp"
    }


def differences(real: list[Received], twin: list[Received]) -> tuple[int, list[str]]:
    found: list[str] = []
    compared = 0
    if len(real) != len(twin):
        found.append(f"{len(real)} real messages, {len(twin)} twin messages")
    for index, (r, w) in enumerate(zip(real, twin, strict=False)):
        compared += 1
        er, ew = decode(r.body), decode(w.body)
        a, b = _without_timestamps(er), _without_timestamps(ew)
        for key in a:
            if a[key] != b[key]:
                found.append(f"#{index} body {key}: real {a[key]!r} twin {b[key]!r}")
        if r.headers != w.headers:
            found.append(f"#{index} headers: real {r.headers!r} twin {w.headers!r}")
        for key in ("content_type", "delivery_mode", "app_id"):
            if r.properties[key] != w.properties[key]:
                found.append(
                    f"#{index} {key}: real {r.properties[key]!r} twin {w.properties[key]!r}"
                )
    for side, messages in (("real", real), ("twin", twin)):
        events = [decode(m.body) for m in messages]
        seconds = [int(m.properties["timestamp"].timestamp()) for m in messages]
        found += [f"{side} {p}" for p in timestamp_structure(events, seconds)]
    return compared, found


async def wait_for_expiry(collected: list[Received], more: Callable[[], Any]) -> None:
    deadline = time.monotonic() + 15
    while not any(b'"two_phase_expired"' in m.body for m in collected):
        assert time.monotonic() < deadline, "no expiry within 15 s"
        collected += await more()
        await asyncio.sleep(0.05)


async def test_the_twins_stream_matches_tigerbeetle_amqp() -> None:
    reason = binary_reason() or await amqp_reason()
    if reason is not None:
        pytest.skip(reason)
    binary = os.environ["TIGERBEETLE_BIN"]
    twin_cluster = new_cluster_id()
    # `tigerbeetle amqp` resumes from cluster 0's progress queue: start from a clean one.
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    with contextlib.suppress(Exception):
        await channel.queue_delete(f"tigerbeetle.internal.progress.{CLUSTER}")
    await connection.close()
    async with stream((CLUSTER,)) as real_stream, stream((twin_cluster,)) as twin_stream:
        with (
            start_replica(binary, cluster_id=CLUSTER) as server,
            tigerbeetle.ClientSync(cluster_id=CLUSTER, replica_addresses=server.addresses) as real,
            ClientSync(cluster_id=twin_cluster) as twin,
            amqp_job(binary, server.addresses, real_stream.exchange) as amqp_log,
        ):
            async with TwinPublisher(
                twin.replica,
                url=AMQP_URL,
                exchange=twin_stream.exchange,
                idle_interval_s=IDLE_MS / 1000,
            ):
                for client in (real, twin):
                    results = client.create_accounts(ACCOUNTS)
                    assert all(r.status.name == "CREATED" for r in results)
                    run(client, BEFORE_EXPIRY)
                real_got: list[Received] = []
                twin_got: list[Received] = []
                try:
                    await wait_for_expiry(real_got, real_stream.drain)
                    await wait_for_expiry(twin_got, twin_stream.drain)
                    for client in (real, twin):
                        run(client, AFTER_EXPIRY)
                    real_got += await real_stream.collect(EVENTS - len(real_got))
                    twin_got += await twin_stream.collect(EVENTS - len(twin_got))
                except AssertionError:
                    print(amqp_log())
                    raise
                await asyncio.sleep(3 * IDLE_MS / 1000)
                real_got += await real_stream.drain()
                twin_got += await twin_stream.drain()
    compared, found = differences(real_got, twin_got)
    print(f"\ncompared {compared} messages, {len(found)} differences")
    for line in found:
        print("  " + line)
    assert compared == EVENTS
    assert found == []
