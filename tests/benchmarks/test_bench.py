"""`tbledger bench --quick`: every section that needs no real server, end to end.

The suite runs once, in a subprocess (it starts its own server and client processes), without a
real TigerBeetle (the official-client figures are then skipped with the reason); PostgreSQL
figures are skipped with the reason when no server answers. Speeds are printed, not asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tbledger.tools.bench import SECTIONS

QUICK_BUDGET_S = 60.0
FIGURE_KEYS = {"key", "label", "unit", "value", "runs", "baseline", "baseline_value", "ratio"}
RATIO_KEYS = {"key", "label", "numerator", "denominator", "value", "target", "verdict"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("TIGERBEETLE_BIN", "TIGERBEETLE_ADDRESSES"):
        env.pop(name, None)
    env["COLUMNS"] = "160"
    return env


def _bench(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tbledger", "bench", *map(str, args)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, float, str]]:
    out = tmp_path_factory.mktemp("bench")
    started = time.monotonic()
    done = _bench("--quick", "--out", out / "results", "--docs", out / "docs" / "performance.md")
    elapsed = time.monotonic() - started
    print(done.stderr[-6000:])
    assert done.returncode == 0, done.stderr[-4000:]
    yield out, elapsed, done.stderr


def _results(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "results" / "results.json").read_text())
    return data


def test_quick_run_takes_at_most_a_minute(quick_run: tuple[Path, float, str]) -> None:
    _, elapsed, _ = quick_run
    print(f"tbledger bench --quick: {elapsed:.1f} s")
    assert elapsed <= QUICK_BUDGET_S


def test_results_have_every_section_figure_and_ratio(quick_run: tuple[Path, float, str]) -> None:
    out, _, _ = quick_run
    results = _results(out)
    for key in ("generated_at", "command", "machine", "versions", "plan", "targets", "charts"):
        assert key in results
    assert results["quick"] is True
    assert results["machine"]["cpus"] == os.cpu_count()
    assert results["versions"]["tigerbeetle"]
    assert results["tigerbeetle_server"]["available"] is False
    assert "TIGERBEETLE_BIN" in results["tigerbeetle_server"]["reason"]
    assert set(results["sections"]) == set(SECTIONS)
    for name, section in results["sections"].items():
        assert section["status"] in {"ok", "skipped"}, (name, section.get("reason"))
        for figure in section["figures"]:
            assert set(figure) >= FIGURE_KEYS, figure
            assert figure["unit"] in {
                "transfers/s",
                "requests/s",
                "events/s",
                "us/request",
                "us/transfer",
            }
            if figure.get("skipped"):
                assert figure["value"] is None
            else:
                assert figure["value"] > 0, figure
        for ratio in section["ratios"]:
            assert set(ratio) >= RATIO_KEYS, ratio
            if ratio.get("value") is not None:
                assert ratio["value"] > 0
        print(name, {f["key"]: f["value"] for f in section["figures"] if f["value"]})
    product = {t["key"] for t in results["targets"] if not t["key"].startswith("service.")}
    assert product == {
        "http_single",
        "http_cpu",
        "http_batch",
        "tb_vs_pg_uniform",
        "tb_vs_pg_hot",
        "tb_hot_unaffected",
    }
    # The service's ratio targets, for each engine the service section measures.
    service = {t["key"]: t["target"] for t in results["targets"] if t["key"].startswith("service.")}
    for kind in ("twin_memory", "twin_durable", "real"):
        assert service[f"service.{kind}.service_batch/raw_batch"] == 0.9
        assert service[f"service.{kind}.service_batch_pg/raw_batch"] == 0.6
        assert service[f"service.{kind}.service_concurrent_pg/raw_concurrent"] == 2.0


def test_figures_that_need_no_server_are_measured(quick_run: tuple[Path, float, str]) -> None:
    out, _, _ = quick_run
    sections = _results(out)["sections"]

    def figure(section: str, key: str) -> dict[str, Any]:
        return next(f for f in sections[section]["figures"] if f["key"] == key)

    for mode in ("batches", "singles", "concurrent"):
        assert figure("engine", f"twin_memory.{mode}")["value"] > 0
        assert figure("engine", f"twin_durable.{mode}")["value"] > 0
        assert "TIGERBEETLE_BIN" in figure("engine", f"real.{mode}")["skipped"]
    service = figure("service", "twin_memory.service_batch")
    assert service["baseline"] == "twin_memory.raw_batch"
    assert service["ratio"] == pytest.approx(service["value"] / service["baseline_value"])
    coalesced = figure("service", "twin_memory.service_concurrent")
    assert coalesced["baseline"] == "twin_memory.raw_concurrent"
    assert figure("sweep", "twin_memory.raw.1")["value"] > 0
    assert figure("sweep", "twin_memory.raw.8189")["value"] > 0
    http = figure("http", "single.p1")
    assert http["unit"] == "requests/s"
    assert http["baseline"] == "library.concurrent"
    assert http["extra"]["runs"][0]["errors"] == 0
    load = http["extra"]["runs"][0]
    assert load["client"].startswith("aiohttp ")
    assert load["client_processes"] == len(load["client_cpu_cores"]) == 1
    assert load["client_cpu_cores_total"] > 0
    assert "aiohttp" in sections["http"]["settings"]["load_client"]
    batch = figure("http", "batch.1000")
    assert batch["baseline"] == "library.batch.1000" and batch["ratio"] > 0
    # The default service and the minimal FastAPI handler, with server CPU per request for
    # every HTTP figure, and the CPU ratio the target reads.
    for key in ("single.default", "minimal"):
        assert figure("http", key)["value"] > 0
    for key in ("single.p1", "single.default", "minimal", "batch.1000"):
        assert figure("http", f"cpu.{key}")["value"] > 0
    http_ratios = {r["key"]: r for r in sections["http"]["ratios"]}
    assert http_ratios["cpu.minimal/cpu.single.default"]["target"] == 0.5
    assert http_ratios["cpu.minimal/cpu.single.default"]["value"] > 0
    baseline = sections["baseline"]
    if baseline["status"] == "ok":
        ratios = {r["key"]: r for r in baseline["ratios"]}
        for mode in ("uniform", "hot"):
            assert ratios[f"concurrent.{mode}"]["value"] > 0
            assert ratios[f"concurrent.{mode}"]["target"] == (10.0 if mode == "uniform" else 20.0)
            assert ratios[f"batch.{mode}"]["value"] > 0
    else:
        assert "PostgreSQL" in baseline["reason"]


def test_charts_are_non_empty_pngs(quick_run: tuple[Path, float, str]) -> None:
    out, _, _ = quick_run
    charts = _results(out)["charts"]
    assert {"sweep", "ratios", "engine", "latency"} <= set(charts)
    for file_name in charts.values():
        data = (out / "results" / file_name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


def test_docs_render_tables_and_images(quick_run: tuple[Path, float, str]) -> None:
    out, _, _ = quick_run
    text = (out / "docs" / "performance.md").read_text()
    assert text.startswith("# Performance")
    assert "tbledger bench --quick" in text
    assert "2 CPUs" in text or f"{os.cpu_count()} CPUs" in text
    for title in (
        "## Targets",
        "## Engine",
        "## Service",
        "## HTTP",
        "## Baseline",
        "## Sweep",
        "## Events out",
    ):
        assert title in text
    assert "| figure | value | unit | min - max | baseline | ratio |" in text
    assert "| ratio (this run) | value | target | verdict |" in text
    assert "load clients: aiohttp" in text
    assert "single.p1: " in text and "1 client process (" in text
    for file_name in _results(out)["charts"].values():
        assert f"](images/{file_name})" in text
        assert (out / "docs" / "images" / file_name).stat().st_size > 1000


def test_render_only_regenerates_the_docs(quick_run: tuple[Path, float, str]) -> None:
    out, _, _ = quick_run
    again = out / "again" / "performance.md"
    done = _bench("--out", out / "results", "--docs", again, "--render-only", timeout=120)
    assert done.returncode == 0, done.stderr
    assert again.read_text() == (out / "docs" / "performance.md").read_text()


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    done = _bench("--only", "engine,nope", "--out", tmp_path, timeout=120)
    assert done.returncode == 2
    assert "--only" in done.stderr
