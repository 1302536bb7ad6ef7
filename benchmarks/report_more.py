"""The sections of docs/benchmarks.md that come from the stand-alone benchmarks' saved results:
the production setup under uvicorn, where its CPU goes, memory over requests, scaling, and the LiteLLM
comparison.

Each reads its JSON under benchmarks/results/ (written by the command shown in the section) and is
left out when that file is missing; ``python -m benchmarks.run --report-only`` re-renders them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["sections"]

RESULTS = Path(__file__).resolve().parent / "results"
PRODUCTION = ("ours:full-redis-pg", 0.5, "production setup (Redis rate limits + PostgreSQL, audit level full)")
FULL = ("ours:full-apikey", 0.7, "full stack at audit level full (SQLite)")
# The same targets with server.gc_freeze: true, as under `tframex-asgi serve` (docs/deployment.md).
TARGETS = (
    PRODUCTION,
    ("ours:full-redis-pg-gcfreeze", 0.5, PRODUCTION[2] + ", server.gc_freeze"),
    FULL,
    ("ours:full-apikey-gcfreeze", 0.7, FULL[2] + ", server.gc_freeze"),
)
SCALING = {
    "keys": ("API keys stored", "uncached API-key request, `memory://` storage"),
    "routes": ("RBAC + rate-limit routes", "request matching the last route, a new id each time"),
    "audit-sqlite": ("`audit_logs` rows, SQLite", "block + drain wall time (the row written)"),
    "audit-postgresql": ("`audit_logs` rows, PostgreSQL", "block + drain wall time (the row written)"),
}


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _production(img: Path) -> list[str]:
    data = _load("production/latest.json")
    if not data or not data.get("load"):
        return []
    from benchmarks.plots import plot_production

    plot_production(data, img / "bench-production.png", (PRODUCTION, FULL))
    load, server, m = data["load"], data["machine"].get("server", {}), data["machine"]
    out = [
        "## Production setup under uvicorn (uvloop + httptools)",
        "",
        f"One single-worker uvicorn per configuration ({server.get('loop')} loop, {server.get('http')} parser), "
        f"{server.get('generator')} with {server.get('connections')} connections, {data['settings']['load_rounds']} "
        f"interleaved rounds of {data['settings']['load_seconds']:g} s; ratios are medians of per-round ratios to "
        f"bare in the same round ({m['date']}, commit `{m.get('commit')}`, load average {m['load_average']}).",
        "",
        "```bash",
        ".venv/bin/python -m benchmarks.run --no-inprocess --only "
        + ",".join(n for n in load if n not in ("bare", "bare-again"))
        + " --out benchmarks/results/production --no-publish",
        ".venv/bin/python -m benchmarks.run --report-only   # re-renders this page",
        "```",
        "",
        "| target (issue 18) | measured | met |",
        "|---|---|---|",
    ]
    for name, floor, what in TARGETS:
        if name not in load and name.endswith("-gcfreeze"):
            continue  # a run made before these configurations existed
        ratio = load.get(name, {}).get("rps_ratio")
        met = "not measured" if ratio is None else ("yes" if ratio >= floor else "**no**")
        out.append(f"| {what}: `{name}` >= {floor}x bare req/s | {'-' if ratio is None else f'{ratio:.2f}x'} | {met} |")
    out += ["", "![Production setup](img/bench-production.png)", ""]
    out += ["| configuration | req/s | vs bare | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in sorted(load.items(), key=lambda kv: -kv[1]["rps_ratio"]):
        out.append(
            f"| `{name}` | {r['rps']:.0f} | {r['rps_ratio']:.2f}x | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['errors']} |"
        )
    return [*out, ""]


def _rss(img: Path) -> list[str]:
    data = _load("rss.json")
    if not data or not data.get("summary"):
        return []
    from benchmarks.plots import plot_rss

    plot_rss(data, img / "bench-rss.png")
    m = data.get("machine", {})
    out = [
        "## Memory over requests (uvicorn)",
        "",
        f"Each variant in its own single-worker uvicorn, wrk with {data['connections']} connections in "
        f"{data['chunk_s']} s chunks, servers interleaved, memory read from the server after each chunk "
        f"(`benchmarks/memstats.py`: VmRSS, glibc `mallinfo2`, Python objects); at the end each server runs "
        f"`malloc_trim(0)` and is read again ({m.get('date')}, commit `{m.get('commit')}`).",
        "",
        "```bash",
        f".venv/bin/python -m benchmarks.bench_rss --requests {data['requests']} --variants "
        + ",".join(data["variants"]),
        "```",
        "",
        "![RSS over requests](img/bench-rss.png)",
        "",
        "| variant | configuration | env | requests | RSS start | at 10% | at 50% | end | MiB per 100k (2nd half) "
        "| after malloc_trim | malloc in use / free at end | Python objects (after 1st chunk -> end) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["summary"]:
        out.append(
            f"| {r['variant']} | `{r['config']}` | {r['env']} | {r['requests']:,} | {r['rss_start']:.1f} | "
            f"{r['rss_10pct']:.1f} | {r['rss_half']:.1f} | {r['rss_end']:.1f} | {r['second_half_per_100k']:+.2f} | "
            f"{r['rss_trimmed']:.1f} | {r['heap_in_use']:.1f} / {r['heap_free']:.1f} | "
            f"{r['py_objects'][0]:,} -> {r['py_objects'][1]:,} |"
        )
    notes = RESULTS / "rss-notes.md"
    if notes.exists():
        out += ["", notes.read_text().strip()]
    return [*out, ""]


def _scaling(img: Path) -> list[str]:
    data = _load("scaling.json")
    if not data:
        return []
    from benchmarks.plots import plot_scaling

    plot_scaling(data, img / "bench-scaling.png")
    out = [
        "## Cost flat in configuration and data",
        "",
        "In-process, each size its own stack, rounds alternating between the sizes (medians). The audit rows",
        "are seeded by one bulk `INSERT ... SELECT` (not through the API) into the table the live rows go to.",
        "",
        "```bash",
        ".venv/bin/python -m benchmarks.bench_scaling keys routes audit   # or any of the three",
        "```",
        "",
        "![Scaling](img/bench-scaling.png)",
        "",
        "| what grows | small | large | µs/request small | µs/request large | difference | measured |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for mode, (title, what) in SCALING.items():
        if mode not in data:
            continue
        (small, a), (large, b) = sorted((int(k), v) for k, v in data[mode]["us"].items())[:2]
        extra = data[mode].get("request_path_us")
        if extra:
            what += f"; request path alone {extra[str(small)]} vs {extra[str(large)]} µs"
        out.append(
            f"| {title} | {small:,} | {large:,} | {a:.1f} | {b:.1f} | {b - a:+.1f} ({b / a - 1:+.0%}) | {what} |"
        )
    notes = RESULTS / "scaling-notes.md"
    if notes.exists():
        out += ["", notes.read_text().strip()]
    return [*out, ""]


def _litellm(img: Path) -> list[str]:
    data = _load("litellm.json")
    out = ["## Next to the LiteLLM proxy: `POST /v1/chat/completions`", ""]
    install = [
        "```bash",
        "python3 -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip install 'litellm[proxy]'   # apart from .venv",
        "TFX_BENCH_LITELLM=/tmp/litellm-venv/bin/litellm .venv/bin/python -m benchmarks.bench_litellm",
        "```",
        "",
        "LiteLLM is not in the `bench` extra: `litellm[proxy]` pins packages the project is tested with to other",
        "versions (mcp 2.x, an older cryptography, boto3), so it gets a venv of its own; without it the",
        "benchmark says so and skips.",
        "",
    ]
    if not data:
        return [*out, *install, "_Not measured yet._", ""]
    from benchmarks.plots import plot_litellm

    plot_litellm(data, img / "bench-litellm.png")
    out += [
        "Both without a model behind them: ours is `tframex-asgi serve` (the serve defaults: SQLite, API key,",
        "audit level `security`, Prometheus; rate limit raised) running the demo agent `assistant` on the",
        f"offline LLM; LiteLLM {data.get('litellm_version', '?')}'s proxy answers a model with `mock_response`",
        "and its master key, no database. One worker each, wrk with "
        f"{data['connections']} connections, {data['rounds']} rounds of {data['seconds']} s alternating between"
        " the two.",
        "",
        *install,
        "![LiteLLM comparison](img/bench-litellm.png)",
        "",
        "| server | req/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, s in data["servers"].items():
        out.append(f"| {label} | {s['rps']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['errors']} |")
    out += [
        "",
        f"tframex-asgi serves **{data['rps_ratio']:.2f}x** LiteLLM's req/s (median of per-round ratios). LiteLLM",
        "ran as installed (one worker, its default callbacks and settings, nothing tuned); its server log is",
        "not kept, so why it is this slow here has not been looked into.",
        "",
    ]
    return out


def _ledger(img: Path) -> list[str]:
    from benchmarks.bench_ledger import section

    notes = RESULTS / "ledger-notes.md"
    return section(_load("ledger.json"), notes.read_text() if notes.exists() else None)


def _cpu_split(img: Path) -> list[str]:
    from benchmarks.bench_cpu_split import section

    return section(_load("cpu-split.json"))


def sections(directory: Path) -> list[str]:
    """The extra sections, for the page in ``directory`` (plots into ``directory/img``)."""
    img = directory / "img"
    out: list[str] = []
    for part in (_production, _cpu_split, _ledger, _rss, _scaling, _litellm):
        lines = part(img)
        if lines:
            out += ["", *lines]
    if out:
        out[1:1] = [
            "The sections below come from separate runs (each says its command); the machine is shared by",
            "several developers, so read the ratios and differences within one run, not absolute figures",
            "across runs.",
            "",
        ]
    return out
