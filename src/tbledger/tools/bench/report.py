"""results.json, the PNG charts, and the performance document generated from results.json.

Charts need matplotlib (the ``bench`` extra); without it they are skipped with a note, and the
document is still written, without images.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["CHARTS", "make_charts", "render_docs", "targets"]

CHARTS = {
    "sweep": "perf-sweep.png",
    "ratios": "perf-ratios.png",
    "baseline": "perf-baseline.png",
    "engine": "perf-engine.png",
    "latency": "perf-http-latency.png",
}

TARGETS = (
    ("http_single", "HTTP single-transfer requests/s, default service", 4_000.0),
    (
        "http_cpu",
        "server CPU per request, minimal FastAPI handler / default service (>= 0.5: at most 2x)",
        0.5,
    ),
    ("http_batch", "HTTP batch endpoint / library batch call behind it", 0.9),
    ("tb_vs_pg_uniform", "TigerBeetle path / PostgreSQL-only, uniform, same concurrency", 10.0),
    ("tb_vs_pg_hot", "TigerBeetle path / PostgreSQL-only, hot account, same concurrency", 20.0),
    ("tb_hot_unaffected", "TigerBeetle path, hot / uniform (unaffected: >= 0.8)", 0.8),
)


def _figures(results: dict[str, Any], section: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = results.get("sections", {}).get(section, {}).get("figures", [])
    return found


def _ratios(results: dict[str, Any], section: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = results.get("sections", {}).get(section, {}).get("ratios", [])
    return found


def _value(items: Sequence[dict[str, Any]], key: str) -> float | None:
    for item in items:
        if item["key"] == key:
            value = item.get("value")
            return None if value is None else float(value)
    return None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The product's targets, each with the figure or ratio of this run that answers it."""
    http = _figures(results, "http")
    http_ratios = _ratios(results, "http")
    singles = [f for f in http if f["key"].startswith("single.") and f.get("value") is not None]
    default = next((f for f in singles if f["key"] == "single.default"), None)
    best_single = default or max(singles, key=lambda f: f["value"], default=None)
    batches = [
        r for r in http_ratios if r["key"].startswith("batch.") and r.get("value") is not None
    ]
    worst_batch = min(batches, key=lambda r: r["value"], default=None)
    base = _ratios(results, "baseline")
    found: dict[str, tuple[float | None, str, str]] = {
        "http_single": (
            None if best_single is None else best_single["value"],
            "requests/s",
            "http." + best_single["key"] if best_single else "http: not measured",
        ),
        "http_cpu": (
            _value(http_ratios, "cpu.minimal/cpu.single.default"),
            "x",
            "http.cpu.minimal/cpu.single.default",
        ),
        "http_batch": (
            None if worst_batch is None else worst_batch["value"],
            "x",
            "http." + worst_batch["key"] if worst_batch else "http: not measured",
        ),
        "tb_vs_pg_uniform": (
            _value(base, "concurrent.uniform"),
            "x",
            "baseline.concurrent.uniform",
        ),
        "tb_vs_pg_hot": (_value(base, "concurrent.hot"), "x", "baseline.concurrent.hot"),
        "tb_hot_unaffected": (
            _value(base, "tigerbeetle.concurrent.hot/uniform"),
            "x",
            "baseline.tigerbeetle.concurrent.hot/uniform",
        ),
    }
    out = []
    for key, label, target in TARGETS:
        value, unit, source = found[key]
        out.append(
            {
                "key": key,
                "label": label,
                "value": value,
                "unit": unit,
                "target": target,
                "met": None if value is None else value >= target,
                "source": source,
            }
        )
    # The service's own targets: its write paths as ratios to the raw client of each engine.
    for ratio in _ratios(results, "service"):
        if ratio.get("target") is None:
            continue
        value = ratio.get("value")
        out.append(
            {
                "key": "service." + ratio["key"],
                "label": "service: " + ratio["label"],
                "value": value,
                "unit": "x",
                "target": float(ratio["target"]),
                "met": None if value is None else value >= ratio["target"],
                "source": "service." + ratio["key"],
            }
        )
    return out


# -- charts ---------------------------------------------------------------------------------------


def make_charts(results: dict[str, Any], out: Path) -> tuple[dict[str, str], list[str]]:
    """PNG charts in `out`: {name: file name}, and notes on what could not be drawn."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return {}, ["charts skipped: matplotlib is not installed (pip install 'tbledger[bench]')"]
    made: dict[str, str] = {}
    notes: list[str] = []
    title_suffix = f" ({results['machine'].get('cpus')} CPUs)"
    for name, draw in (
        ("sweep", _sweep_chart),
        ("ratios", _ratios_chart),
        ("baseline", _baseline_chart),
        ("engine", _engine_chart),
        ("latency", _latency_chart),
    ):
        fig = draw(plt, results, title_suffix)
        if fig is None:
            continue
        path = out / CHARTS[name]
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        made[name] = CHARTS[name]
    if "sweep" not in made:
        notes.append("sweep chart: no sweep figures in this run")
    return made, notes


def _sweep_chart(plt: Any, results: dict[str, Any], suffix: str) -> Any:
    series: dict[str, list[tuple[int, float]]] = {}
    labels: dict[str, str] = {}
    for f in _figures(results, "sweep"):
        if f.get("value") is None:
            continue
        params = f["params"]
        name = f"{params['engine']}.{params['series']}"
        series.setdefault(name, []).append((int(params["batch_size"]), float(f["value"])))
        labels[name] = f["label"].rsplit(",", 1)[0]
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in series.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=labels[name])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("transfers per call (batch size)")
    ax.set_ylabel("transfers/s")
    ax.set_title("Throughput vs batch size" + suffix)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _ratios_chart(plt: Any, results: dict[str, Any], suffix: str) -> Any:
    rows: list[tuple[str, float, float | None]] = []
    for section in ("engine", "service", "http", "baseline"):
        for r in _ratios(results, section):
            if r.get("value") is not None and r["value"] > 0:
                rows.append((f"{section}: {r['label']}", float(r["value"]), r.get("target")))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.2))
    names = [_short(r[0], 95) for r in rows]
    values = [r[1] for r in rows]
    colors = []
    for _, value, target in rows:
        if target is None:
            colors.append("tab:blue")
        else:
            colors.append("tab:green" if value >= target else "tab:red")
    ax.barh(range(len(rows)), values, color=colors)
    ax.set_yticks(range(len(rows)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for i, value in enumerate(values):
        ax.text(value, i, f" {value:.2f}x", va="center", fontsize=7)
    ax.set_xlabel("ratio (same run); green/red: target met/missed, blue: no target")
    ax.set_title("Ratios" + suffix)
    return fig


def _baseline_chart(plt: Any, results: dict[str, Any], suffix: str) -> Any:
    figures = {f["key"]: f for f in _figures(results, "baseline") if f.get("value") is not None}
    groups = (
        ("postgresql", "PostgreSQL-only"),
        ("tigerbeetle.concurrent", "TigerBeetle path,\nconcurrent singles"),
        ("tigerbeetle.batch", "TigerBeetle path,\nbatches of 8189"),
    )
    if not figures:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    width = 0.38
    for offset, mode, color in ((-width / 2, "uniform", "tab:blue"), (width / 2, "hot", "tab:red")):
        values = [
            float(figures[f"{g}.{mode}"]["value"]) if f"{g}.{mode}" in figures else 0.0
            for g, _ in groups
        ]
        bars = ax.bar(
            [i + offset for i in range(len(groups))], values, width, label=mode, color=color
        )
        for bar, value in zip(bars, values, strict=True):
            if value > 0:
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    value,
                    f"{value:,.0f}",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(range(len(groups)), [label for _, label in groups])
    ax.set_yscale("log")
    ax.set_ylabel("transfers/s")
    ax.set_title("PostgreSQL-only ledger vs TigerBeetle path, uniform and hot" + suffix)
    ax.legend()
    ax.grid(True, axis="y", which="both", alpha=0.3)
    return fig


def _engine_chart(plt: Any, results: dict[str, Any], suffix: str) -> Any:
    figures = {f["key"]: f for f in _figures(results, "engine") if f.get("value") is not None}
    if not figures:
        return None
    modes = ("batches", "singles", "concurrent")
    engines = (
        ("twin_memory", "twin (memory)"),
        ("twin_durable", "twin (durable)"),
        ("real", "official client, real server"),
    )
    fig, ax = plt.subplots(figsize=(8, 5))
    width = 0.27
    for i, (engine, label) in enumerate(engines):
        values = [
            float(figures[f"{engine}.{m}"]["value"]) if f"{engine}.{m}" in figures else 0.0
            for m in modes
        ]
        ax.bar([j + (i - 1) * width for j in range(len(modes))], values, width, label=label)
    ax.set_xticks(
        range(len(modes)), ["full batches (8189)", "singles, sequential", "singles, concurrent"]
    )
    ax.set_yscale("log")
    ax.set_ylabel("transfers/s")
    ax.set_title("Engine: create_transfers" + suffix)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    return fig


def _latency_chart(plt: Any, results: dict[str, Any], suffix: str) -> Any:
    points = []
    for f in _figures(results, "http"):
        if f["key"].startswith("latency.") and f.get("value") is not None:
            latency = f.get("extra", {}).get("latency_ms", {})
            points.append((float(f["value"]), int(f["params"]["connections"]), latency))
    if not points:
        # No latency runs at several connection counts: the single-transfer runs' own.
        for f in _figures(results, "http"):
            runs = f.get("extra", {}).get("runs") or []
            if f["key"].startswith("single.") and runs:
                middle = sorted(runs, key=lambda r: r["requests_per_s"])[len(runs) // 2]
                points.append(
                    (middle["requests_per_s"], middle["connections"], middle["latency_ms"])
                )
    if not points:
        return None
    points.sort(key=lambda p: p[1])
    fig, ax = plt.subplots(figsize=(8, 5))
    for name in ("p50", "p90", "p99", "p99.9"):
        ax.plot(
            [p[0] for p in points],
            [p[2].get(name, math.nan) for p in points],
            marker="o",
            label=name,
        )
    for rate, connections, latency in points:
        ax.annotate(
            f"{connections} conn.",
            (rate, latency.get("p50", math.nan)),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
        )
    ax.set_yscale("log")
    ax.set_xlabel("requests/s achieved (closed loop; the offered rate is set by the connections)")
    ax.set_ylabel("latency, ms")
    ax.set_title("POST /v1/transfers: latency percentiles vs throughput" + suffix)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# -- the document ---------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "x":
        return f"{value:.2f}x" if value >= 0.1 else f"{value:.4f}x"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section_md(section: dict[str, Any], images: dict[str, str]) -> list[str]:
    lines = [f"## {section['title']}", ""]
    if section["status"] != "ok":
        lines += [f"**{section['status']}**: {_cell(section.get('reason') or '')}", ""]
    figures = section.get("figures", [])
    by_key = {f["key"]: f for f in figures}
    skipped: dict[str, list[str]] = {}
    for item in [*figures, *section.get("ratios", [])]:
        if item.get("skipped"):
            skipped.setdefault(item["skipped"], []).append(item["label"])
    if any(not f.get("skipped") for f in figures):
        lines += [
            "| figure | value | unit | min - max | baseline | ratio |",
            "|---|---:|---|---:|---|---:|",
        ]
        for f in figures:
            if f.get("skipped"):
                continue
            spread = f"{_fmt(f.get('min'))} - {_fmt(f.get('max'))}" if len(f["runs"]) > 1 else ""
            base = by_key.get(f.get("baseline") or "")
            base_text = _cell(base["label"]) if base else ""
            lines.append(
                f"| {_cell(f['label'])} | {_fmt(f['value'])} | {f['unit']} | {spread} | "
                f"{base_text} | {_fmt(f.get('ratio'), 'x')} |"
            )
        lines.append("")
    ratios = section.get("ratios", [])
    if any(not r.get("skipped") for r in ratios):
        lines += ["| ratio (this run) | value | target | verdict |", "|---|---:|---:|---|"]
        for r in ratios:
            if r.get("skipped"):
                continue
            target = "" if r.get("target") is None else f">= {r['target']:g}x"
            lines.append(
                f"| {_cell(r['label'])} | {_fmt(r['value'], 'x')} | {target} | {r['verdict']} |"
            )
        lines.append("")
    profile = section.get("settings", {}).get("server_profile")
    if profile:
        lines += [
            "Where the server's time goes under the single-transfer load (cProfile own time, "
            "the event loop's idle wait left out; "
            f"{_fmt(profile['requests_per_s_under_profiler'])} requests/s under the profiler):",
            "",
            "| part | share of busy time |",
            "|---|---:|",
        ]
        lines += [f"| {_cell(k)} | {v:.1%} |" for k, v in profile["own_time_share"].items()]
        lines.append("")
    for reason, labels in skipped.items():
        lines.append(f"- Not measured ({_cell(reason)}): {len(labels)} figures and ratios.")
    for note in section.get("notes", []):
        lines.append(f"- {_cell(note)}")
    if section.get("notes") or skipped:
        lines.append("")
    settings = {k: v for k, v in section.get("settings", {}).items() if k != "server_profile"}
    if settings:
        shown = ", ".join(f"{k}={_setting(v)}" for k, v in settings.items())
        lines += [f"Settings: {_cell(shown)}.", ""]
    for name in {
        "engine": ("engine",),
        "http": ("latency",),
        "baseline": ("baseline",),
        "sweep": ("sweep",),
    }.get(section["name"], ()):
        if name in images:
            lines += [f"![{name}]({images[name]})", ""]
    return lines


def _setting(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_setting(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_setting(v) for v in value) + "]"
    return str(value)


def render_docs(results: dict[str, Any], out: Path, docs: Path) -> Path:
    """Write the performance document at `docs` from `results` (charts copied from `out` to
    ``images/`` next to it)."""
    docs.parent.mkdir(parents=True, exist_ok=True)
    image_dir = docs.parent / "images"
    images: dict[str, str] = {}
    for name, file_name in (results.get("charts") or {}).items():
        source = out / file_name
        if source.exists():
            image_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, image_dir / file_name)
            images[name] = f"images/{file_name}"
    machine = results["machine"]
    versions = results["versions"]
    lines = [
        "# Performance",
        "",
        "Generated by `tbledger bench` from `results.json`; do not edit by hand. Every figure "
        "was measured in one run of the suite, and every ratio divides two figures of that run.",
        "",
        f"- Command: `{results['command']}`",
        f"- Run at: {results['generated_at']} "
        f"({'quick sizes' if results.get('quick') else 'full sizes'})",
        f"- Machine: {machine.get('cpus')} CPUs ({machine.get('cpu_model')}), "
        f"{machine.get('memory_gib')} GiB, {machine.get('platform')}, "
        f"Python {machine.get('python')}",
        f"- Load average at start / end: {machine.get('load_average_at_start')} / "
        f"{results.get('load_average_at_end')} (other work on the machine shares its CPUs)",
        f"- Versions: tbledger {versions.get('tbledger')}, tigerbeetle client "
        f"{versions.get('tigerbeetle')}, FastAPI {versions.get('fastapi')}, uvicorn "
        f"{versions.get('uvicorn')} (uvloop {versions.get('uvloop') or 'not installed'}, "
        f"httptools {versions.get('httptools') or 'not installed'}), "
        f"asyncpg {versions.get('asyncpg')}, load clients aiohttp "
        f"{versions.get('aiohttp') or 'not installed'}",
    ]
    server = results.get("tigerbeetle_server", {})
    if server.get("available"):
        lines.append(f"- TigerBeetle server: {server.get('version')} ({server.get('origin')})")
    else:
        lines.append(f"- TigerBeetle server: none ({server.get('reason')})")
    pg = results.get("postgresql", {})
    if pg.get("available"):
        shown = ", ".join(f"{k}={v}" for k, v in (pg.get("settings") or {}).items())
        lines.append(f"- PostgreSQL: {pg.get('version')} ({pg.get('origin')}; {shown})")
    else:
        lines.append(f"- PostgreSQL: none ({pg.get('reason')})")
    lines += ["", "## Targets", "", "| target | this run | wanted | met |", "|---|---:|---:|---|"]
    for t in results.get("targets", []):
        unit = t["unit"]
        value = _fmt(t["value"], unit) if unit == "x" else f"{_fmt(t['value'])} {unit}"
        wanted = f">= {t['target']:g}x" if unit == "x" else f">= {t['target']:,.0f} {unit}"
        met = "-" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {_cell(t['label'])} | {value} | {wanted} | {met} |")
    lines.append("")
    if "ratios" in images:
        lines += [f"![ratios]({images['ratios']})", ""]
    for name in ("engine", "service", "http", "baseline", "sweep", "events"):
        section = results.get("sections", {}).get(name)
        if section is not None:
            lines += _section_md(section, images)
    warnings = results.get("log_warnings") or []
    if warnings:
        lines += ["## Warnings logged during the run", ""]
        lines += [f"- {_cell(w)}" for w in warnings]
        lines.append("")
    docs.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return docs
