"""`tbledger loadtest`: the open-loop schedule, the runner, and full runs on both targets.

The runs are short (3 s) and at modest rates: they prove the generator, the setup and the ledger
checks work end to end, not the service's speed.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tbledger.admin import create_key, upgrade_database
from tbledger.config import Settings
from tbledger.errors import ApiUnreachableError
from tbledger.tools.loadtest import (
    SATURATED,
    Arrival,
    Arrivals,
    HttpTarget,
    Kind,
    LibraryTarget,
    LoadConfig,
    Mix,
    Op,
    OpenLoop,
    Outcome,
    Recorder,
    Report,
    RequestFailed,
    arrival_offsets,
    build_plan,
    run_loadtest,
)
from tests.support.live_service import live_service
from tests.support.tbserver import free_port
from tests.support.virtual_time import run_in_virtual_time

pytestmark = pytest.mark.timeout(120)


def _op(kind: Kind = Kind.TRANSFER) -> Op:
    return Op(kind, 0, 1, False, 100)


def _expected_requests(config: LoadConfig) -> int:
    """Every planned operation plus one capture per hold."""
    plan = build_plan(config)
    return len(plan) + sum(1 for a in plan if a.op.kind is Kind.HOLD)


def _assert_clean(report: Report, expected: int) -> None:
    assert report.errors == {}, report.errors
    assert not report.interrupted
    failed = [c for c in report.checks if not c.ok]
    assert not failed, failed
    assert {c.name for c in report.checks} == {
        "ledger_balanced",
        "movement_matches",
        "acknowledged_in_engine",
        "audit_complete",
    }
    assert report.passed
    assert report.requests["sent_measured"] == expected
    assert report.requests["ok_measured"] == expected
    assert report.histogram.get_total_count() == expected
    assert report.latency_ms["count"] == expected
    assert sum(int(s["count"]) for s in report.latency_by_kind_ms.values()) == expected
    assert set(report.latency_by_kind_ms) == {"payment", "hold", "capture", "transfer"}
    lat = report.latency_ms
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    # Every acknowledged transfer was looked up: nothing sampled away.
    info = report.check_info
    assert info["transfer_ids_inspected"] == info["transfer_ids_acknowledged"] > expected
    change = info["change_since_setup"]
    assert change["debits_posted"] == change["credits_posted"] > 0
    assert change["debits_pending"] == change["credits_pending"] == 0


# -- the schedule ---------------------------------------------------------------------------------


def test_constant_arrivals_are_evenly_spaced() -> None:
    offsets = arrival_offsets(250.0, 4.0, Arrivals.CONSTANT, random.Random(1))
    assert len(offsets) == 1000
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert max(gaps) - min(gaps) < 1e-9
    assert statistics.fmean(gaps) == pytest.approx(1 / 250)
    assert offsets[0] == 0.0
    assert offsets[-1] < 4.0


def test_poisson_arrivals_have_the_mean_rate_and_exponential_gaps() -> None:
    rate, duration = 500.0, 20.0
    offsets = arrival_offsets(rate, duration, Arrivals.POISSON, random.Random(7))
    # 10,000 expected with a standard deviation of 100: 3 % is more than 3 sigma.
    assert len(offsets) == pytest.approx(rate * duration, rel=0.03)
    assert all(0 <= t < duration for t in offsets)
    assert offsets == sorted(offsets)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert statistics.fmean(gaps) == pytest.approx(1 / rate, rel=0.03)
    # Exponential gaps: the standard deviation equals the mean.
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, abs=0.05)
    # Reproducible from the seed, and another seed is another schedule.
    assert offsets == arrival_offsets(rate, duration, Arrivals.POISSON, random.Random(7))
    assert offsets != arrival_offsets(rate, duration, Arrivals.POISSON, random.Random(8))


def test_the_plan_follows_the_mix_and_the_hot_fraction() -> None:
    config = LoadConfig(
        rate=1200.0,
        duration_s=10.0,
        accounts=50,
        hot_fraction=0.25,
        seed=3,
        mix=Mix.parse("payment=60,hold=20,transfer=20"),
    )
    plan = build_plan(config)
    assert plan == build_plan(config)
    ops = [a.op for a in plan]
    # The rate counts captures: operations arrive at rate / (1 + hold share).
    assert len(plan) == pytest.approx(1200 / 1.2 * 10, abs=1)
    assert _expected_requests(config) / 10.0 == pytest.approx(1200, rel=0.03)
    shares = {k: sum(1 for o in ops if o.kind is k) / len(ops) for k in Kind}
    assert shares[Kind.PAYMENT] == pytest.approx(0.6, abs=0.03)
    assert shares[Kind.HOLD] == pytest.approx(0.2, abs=0.03)
    assert shares[Kind.TRANSFER] == pytest.approx(0.2, abs=0.03)
    assert shares[Kind.CAPTURE] == 0

    def touches_hot(op: Op) -> bool:
        return op.debit == 0 or (not op.to_merchant and op.credit == 0)

    assert sum(map(touches_hot, ops)) / len(ops) == pytest.approx(0.25, abs=0.03)
    for op in ops:
        assert 0 <= op.debit < 50
        assert op.credit < (config.merchant_count if op.to_merchant else 50)
        assert op.to_merchant or op.debit != op.credit
        assert op.to_merchant == (op.kind is not Kind.TRANSFER)
        assert (op.fee > 0) == (op.kind is Kind.PAYMENT)


def test_mix_parsing() -> None:
    assert Mix.parse("payment=1") == Mix(1.0, 0.0, 0.0)
    assert str(Mix.parse(" hold=2 , transfer=3 ")) == "payment=0,hold=2,transfer=3"
    for bad in ("refund=1", "payment", "payment=x", "payment=-1", "payment=0", "hold=1,hold=2"):
        with pytest.raises(ValueError):
            Mix.parse(bad)


# -- the runner -----------------------------------------------------------------------------------


# The runner's tests run on virtual time (tests/support/virtual_time.py): the loop's clock jumps
# from one due timer to the next, so launches and latencies are exact however loaded the machine
# is, where wall time would add whatever the machine was slow by.


def test_latency_is_measured_from_the_intended_start() -> None:
    """A server that handles one request at a time, 40 ms each, under 50 requests/s: an open
    loop keeps launching on schedule, so the queue (and the latency) grows to about a second;
    a closed loop would report 40 ms and hide it (coordinated omission)."""
    service_s, rate, duration = 0.04, 50.0, 1.0
    schedule = [
        Arrival(t, _op())
        for t in arrival_offsets(rate, duration, Arrivals.CONSTANT, random.Random(1))
    ]
    lock = asyncio.Lock()
    launched: list[float] = []

    async def slow(op: Op) -> Outcome:
        launched.append(asyncio.get_running_loop().time())
        async with lock:
            await asyncio.sleep(service_s)
        return Outcome((f"0x{len(launched):032x}",))

    recorder = Recorder(keep_samples=True)
    stats = run_in_virtual_time(
        OpenLoop(schedule, slow, in_flight_max=1000, recorder=recorder).run()
    )
    assert recorder.errors == {}
    assert recorder.histogram.get_total_count() == len(schedule) == 50
    # Launched on schedule, whatever was outstanding.
    assert len(launched) == 50
    for at, arrival in zip(launched, schedule, strict=True):
        assert at - stats.measure_start == pytest.approx(arrival.offset_s, abs=1e-9)
    samples = sorted(recorder.samples or [])
    latencies = [us / 1e6 for _, us in samples]
    # Request k starts at 20k ms and waits for the k before it: done at 40(k + 1) ms, so its
    # latency is 40 + 20k ms; the last one's is 1.02 s. A closed loop would say 40 ms for all.
    assert latencies == [pytest.approx(service_s + k / rate, abs=1e-6) for k in range(50)]
    assert latencies[0] < 0.1
    assert latencies[-1] > 0.8
    assert latencies[-1] > 20 * service_s
    assert latencies[-1] > latencies[len(latencies) // 2] > latencies[0]
    assert recorder.histogram.get_max_value() > 800_000


def test_a_full_client_counts_saturation_instead_of_waiting() -> None:
    schedule = [Arrival(i / 100, _op()) for i in range(50)]

    async def stuck(op: Op) -> Outcome:
        await asyncio.sleep(0.3)
        return Outcome(("0x1",))

    recorder = Recorder()
    stats = run_in_virtual_time(OpenLoop(schedule, stuck, in_flight_max=5, recorder=recorder).run())
    # Each request is outstanding 0.3 s, at most 5 at a time: the rest are refused on time,
    # not queued, so the schedule still ends when its last arrival is due, 0.49 s in.
    assert recorder.errors[SATURATED] > 0
    assert recorder.sent + recorder.errors[SATURATED] == 50
    assert recorder.ok == recorder.sent
    assert stats.schedule_end - stats.measure_start == pytest.approx(0.49, abs=1e-9)


async def test_follow_ups_are_their_own_requests_and_errors_are_counted() -> None:
    schedule = [Arrival(i / 200, _op(Kind.HOLD)) for i in range(20)]
    seen: list[Kind] = []

    async def execute(op: Op) -> Outcome:
        seen.append(op.kind)
        if op.kind is Kind.HOLD:
            return Outcome(("0x2",), follow_up=Op(Kind.CAPTURE, 0, 1, True, 100, ref="0x2"))
        raise RuntimeError("capture refused")

    recorder = Recorder()
    await OpenLoop(
        schedule, execute, in_flight_max=100, follow_up_delay_s=0.01, recorder=recorder
    ).run()
    assert seen.count(Kind.HOLD) == seen.count(Kind.CAPTURE) == 20
    assert recorder.ok == 20
    assert recorder.errors == {"RuntimeError": 20}
    assert recorder.by_kind[Kind.HOLD].get_total_count() == 20


# -- full runs ------------------------------------------------------------------------------------


async def test_library_target(tmp_path: Path) -> None:
    # A generous in-flight cap, as for the HTTP target: on a busy machine the service may fall
    # behind for a second or two, which shows as latency, not as errors.
    config = LoadConfig(
        rate=200.0, duration_s=3.0, accounts=20, hot_fraction=0.1, seed=11, connections=1024
    )
    target = LibraryTarget("memory://", f"sqlite:///{tmp_path / 'tbledger.db'}", ledger="USD")
    report = await run_loadtest(target, config)
    _assert_clean(report, _expected_requests(config))
    assert report.rate["offered"] == pytest.approx(200, rel=0.05)


@dataclass
class Service:
    url: str
    admin_key: str


async def _admin_key(database_url: str) -> str:
    await upgrade_database(database_url)
    created = await create_key(database_url, name="loadtest", admin=True)
    assert created.token is not None
    return created.token


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    database_url = f"sqlite:///{tmp_path / 'tbledger.db'}"
    token = asyncio.run(_admin_key(database_url))
    settings = Settings(engine_url="memory://", database_url=database_url)
    with live_service(settings) as url:
        yield Service(url, token)


async def test_http_target(service: Service) -> None:
    # A generous in-flight cap: the service shares this process (and the machine) with the
    # client, and may fall behind for a while; that shows as latency, not as errors.
    config = LoadConfig(rate=100.0, duration_s=3.0, accounts=10, connections=1024, seed=5)
    target = HttpTarget(service.url, service.admin_key, ledger="USD", connections=1024)
    report = await run_loadtest(target, config)
    _assert_clean(report, _expected_requests(config))
    assert report.rate["offered"] == pytest.approx(100, rel=0.05)


async def test_http_target_refuses_a_bad_key(service: Service) -> None:
    config = LoadConfig(rate=10.0, duration_s=0.5, accounts=3)
    target = HttpTarget(service.url, "tbl_nope_nope", ledger="USD", connections=4)
    with pytest.raises(Exception, match="API key"):
        await run_loadtest(target, config)


async def test_http_target_counts_errors_by_status_and_code(service: Service) -> None:
    target = HttpTarget(service.url, service.admin_key, ledger="USD", connections=4)
    await target.open()
    try:
        with pytest.raises(RequestFailed) as missing:
            await target.transfer("0x1", "0x2", 100, "lt-test-1")
        assert missing.value.kind == "404 account_not_found"
        with pytest.raises(RequestFailed) as invalid:
            await target.hold("0xzz", "0x2", 100, "lt-test-2")
        assert invalid.value.kind == "422 invalid_input"
    finally:
        await target.close()


async def test_an_unreachable_service_fails_by_exception_type() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    target = HttpTarget(url, "tbl_nope_nope", ledger="USD", connections=4)
    with pytest.raises(ApiUnreachableError) as unreachable:
        await target.open()
    # The transport's own exception says why (it names the error when requests fail later).
    assert isinstance(unreachable.value.__cause__, aiohttp.ClientConnectionError)
    # A failed open leaves nothing open behind it.
    with pytest.raises(RuntimeError, match="not open"):
        _ = target.client
