"""Render docs/benchmarks.md and docs/img/bench-*.png from a results dict (see benchmarks.run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["targets", "write_report"]

FULL_STACKS = ("ours:full-apikey", "ours:full-jwt")
PEER_STACK = "peer:all"
OVERHEAD_BUDGET_US = 40.0
PEER_FRACTION = 1 / 7
RPS_FLOOR = 0.6

GROUP_TITLES = {
    "baseline": "Baselines",
    "ours": "tframex-asgi, one layer alone",
    "ours-stack": "tframex-asgi stacks",
    "peer": "Peers, one alone",
    "peer-stack": "Peers composed",
}
COLORS = {"baseline": "#9e9e9e", "ours": "#4c9be8", "ours-stack": "#1f5fa8", "peer": "#f0a04b", "peer-stack": "#c0601a"}


def _fmt(value: float | None, digits: int = 1, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue #7 with the measured value and whether it is met (None: not measured)."""
    inp, load = data.get("inprocess", {}), data.get("load", {})
    out: list[dict[str, Any]] = []
    peer = inp.get(PEER_STACK, {}).get("overhead_us")
    for name in FULL_STACKS:
        over = inp.get(name, {}).get("overhead_us")
        allin = inp.get(name, {}).get("allin_cpu_overhead_us")
        out.append({
            "target": f"`{name}` in-process overhead <= +{OVERHEAD_BUDGET_US:.0f} µs/request (request path)",
            "measured": None if over is None else f"{over:+.1f} µs; all-in CPU {_fmt(allin, sign=True)} µs",
            "met": None if over is None else over <= OVERHEAD_BUDGET_US,
            "config": name,
            "allin_over_budget": allin is not None and allin > OVERHEAD_BUDGET_US,
        })  # fmt: skip
        ratio = None if over is None or not peer else over / peer
        out.append({
            "target": f"`{name}` overhead <= 1/7 of `{PEER_STACK}` overhead",
            "measured": None if ratio is None else f"{ratio:.3f} (1/7 = 0.143; peers {peer:+.1f} µs)",
            "met": None if ratio is None else ratio <= PEER_FRACTION,
        })  # fmt: skip
        rps = load.get(name, {}).get("rps_ratio")
        out.append({
            "target": f"`{name}` under uvicorn >= {RPS_FLOOR}x bare req/s",
            "measured": None if rps is None else f"{rps:.2f}x",
            "met": None if rps is None else rps >= RPS_FLOOR,
        })  # fmt: skip
    disabled, aa = inp.get("ours:disabled"), inp.get("bare-again")
    if disabled and aa:
        # Measurable = above the A/A spread (bare against an identical bare app), with 1 µs of grace.
        noise = max(abs(aa["overhead_q1_us"]), abs(aa["overhead_q3_us"]), 1.0)
        met = disabled["overhead_us"] <= noise
        measured = (
            f"{disabled['overhead_us']:+.2f} µs, CPU {disabled.get('cpu_overhead_us', 0):+.2f} µs "
            f"(A/A noise ±{noise:.2f} µs)"
        )
    else:
        met, measured = None, None
    out.append({"target": "disabled stack adds no measurable overhead", "measured": measured, "met": met})
    return out


def _per_request_us(load: dict[str, Any], name: str) -> float | None:
    """Server time per request under load over bare's: 1/req/s of a CPU-bound single worker."""
    rps, bare = load.get(name, {}).get("rps"), load.get("bare", {}).get("rps")
    return None if not rps or not bare else 1e6 / rps - 1e6 / bare


def _in_the_way(data: dict[str, Any], found: list[dict[str, Any]]) -> list[str]:
    """When the req/s floor is missed: what the overhead is under load, and where it goes."""
    missed = [t for t in found if "under uvicorn" in t["target"] and t["met"] is False]
    inp, load = data.get("inprocess", {}), data.get("load", {})
    full = inp.get(FULL_STACKS[0])
    loaded = _per_request_us(load, FULL_STACKS[0])
    if not missed or not full or loaded is None:
        return []
    floor = 1e6 / load["bare"]["rps"] * (1 / RPS_FLOOR - 1)
    lines = [
        "",
        f"What stands in the way of the req/s floor: a single uvicorn worker is CPU-bound here, so "
        f"{RPS_FLOOR}x bare req/s allows +{floor:.0f} µs of server time per request over bare's "
        f"{1e6 / load['bare']['rps']:.0f} µs. `{FULL_STACKS[0]}` costs +{full.get('allin_cpu_overhead_us', 0):.0f} µs "
        f"of CPU all-in in-process, but +{loaded:.0f} µs per request under load: every layer costs "
        "several times its in-process figure once the server's own work (HTTP parsing, sockets, "
        "tasks) runs between requests (compare the two tables below, layer by layer).",
    ]
    audit = inp.get("ours:audit")
    if audit:
        lines.append(
            f"The largest single item is the audit row written for every request at level `full`: "
            f"`ours:audit` alone costs {audit['overhead_us']:+.1f} µs on the request path and "
            f"{audit.get('allin_cpu_overhead_us', 0):+.1f} µs of CPU all-in (building and signing the "
            "hash-chained row, checking it against the schema, inserting it into SQLite)."
        )
    default = load.get("ours:full-apikey-auditsec", {}).get("rps_ratio")
    if default is not None:
        lines.append(
            f"The same stack at the default audit level (`security`: refusals and admin changes only), "
            f"`ours:full-apikey-auditsec`, serves {default:.2f}x bare req/s."
        )
    return lines


def _plot_inprocess(data: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {c["name"]: c["group"] for c in data["configs"]}
    rows = [r for r in data["inprocess"].values() if groups.get(r["name"]) != "baseline" or r["name"] != "bare"]
    if not rows:
        return False
    rows.sort(key=lambda r: r["overhead_us"])
    names = [r["name"] for r in rows]
    values = [r["overhead_us"] for r in rows]
    errs = [
        [max(0.0, r["overhead_us"] - r["overhead_q1_us"]) for r in rows],
        [max(0.0, r["overhead_q3_us"] - r["overhead_us"]) for r in rows],
    ]
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(rows) + 2.2))
    ax.barh(names, values, xerr=errs, color=[COLORS.get(groups.get(n, ""), "#777") for n in names], capsize=2)
    target = ax.axvline(OVERHEAD_BUDGET_US, color="#b00020", linestyle="--", linewidth=1)
    target.set_label(f"+{OVERHEAD_BUDGET_US:.0f} µs target")
    # Symmetric log: a configuration waiting on Redis/PostgreSQL would flatten all the others.
    ax.set_xscale("symlog", linthresh=10)
    lowest = min(v - e for v, e in zip(values, errs[0], strict=True))
    ax.set_xlim(left=-10 if lowest < 0 else 0)
    from matplotlib.patches import Patch

    handles = [Patch(color=COLORS[g], label=GROUP_TITLES[g]) for g in COLORS if g in set(groups.values())]
    ax.legend(handles=[*handles, target], loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=3, fontsize=8)
    ax.set_xlabel("overhead over bare app, µs/request, symlog scale (median of interleaved rounds, bars = IQR)")
    ax.set_title(f"In-process overhead ({data['profile']} run)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_load(data: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {c["name"]: c["group"] for c in data["configs"]}
    rows = sorted(data["load"].values(), key=lambda r: -r["rps_ratio"])
    if not rows:
        return False
    names = [r["name"] for r in rows]
    colors = [COLORS.get(groups.get(n, ""), "#777") for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.38 * len(rows) + 1.4), sharey=True)
    left.barh(names, [r["rps_ratio"] for r in rows], color=colors)
    left.axvline(RPS_FLOOR, color="#b00020", linestyle="--", linewidth=1, label=f"{RPS_FLOOR}x target")
    left.axvline(1.0, color="#555", linewidth=0.8)
    left.set_xlabel("req/s relative to bare (median of rounds)")
    left.legend(loc="lower right")
    left.grid(axis="x", alpha=0.3)
    right.barh(names, [r["p99_ratio"] for r in rows], color=colors)
    right.axvline(1.0, color="#555", linewidth=0.8)
    right.set_xlabel("p99 latency relative to bare")
    right.grid(axis="x", alpha=0.3)
    left.invert_yaxis()
    fig.suptitle(f"Under uvicorn + wrk on loopback ({data['profile']} run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _inprocess_table(data: dict[str, Any]) -> list[str]:
    inp = data["inprocess"]
    configs = data["configs"]
    peer = inp.get(PEER_STACK, {}).get("overhead_us")
    bare = inp.get("bare", {}).get("median_us")
    lines = [
        "| configuration | what | request path µs | request-path overhead µs (IQR) | all-in CPU µs "
        "| all-in CPU overhead µs | req/s vs bare | share of peer stack |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for group in GROUP_TITLES:
        for c in configs:
            r = inp.get(c["name"])
            if c["group"] != group or r is None:
                continue
            share = f"{r['overhead_us'] / peer:.2f}" if peer and c["group"] != "baseline" else "-"
            speed = f"{bare / r['median_us']:.2f}x" if bare else "-"
            lines.append(
                f"| `{c['name']}` | {c['title']} | {r['median_us']:.1f} | {r['overhead_us']:+.1f} "
                f"({r['overhead_q1_us']:+.1f} .. {r['overhead_q3_us']:+.1f}) | {_fmt(r.get('allin_cpu_us'))} "
                f"| {_fmt(r.get('allin_cpu_overhead_us'), sign=True)} | {speed} | {share} |"
            )
    return lines


def _load_table(data: dict[str, Any]) -> list[str]:
    load = data["load"]
    lines = [
        "| configuration | req/s | req/s vs bare | p50 ms | p50 vs bare | p99 ms | p99 vs bare | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for group in GROUP_TITLES:
        for c in data["configs"]:
            r = load.get(c["name"])
            if c["group"] != group or r is None:
                continue
            lines.append(
                f"| `{c['name']}` | {r['rps']:.0f} | {r['rps_ratio']:.2f}x | {r['p50_ms']:.2f} | {r['p50_ratio']:.2f}x "
                f"| {r['p99_ms']:.2f} | {r['p99_ratio']:.2f}x | {r['errors']} |"
            )
    return lines


def write_report(data: dict[str, Any], directory: Path) -> None:
    """Write ``directory/benchmarks.md`` and ``directory/img/bench-*.png`` (the page links ``img/``)."""
    img = directory / "img"
    img.mkdir(parents=True, exist_ok=True)
    has_inp = bool(data.get("inprocess")) and _plot_inprocess(data, img / "bench-inprocess.png")
    has_load = bool(data.get("load")) and _plot_load(data, img / "bench-load.png")
    m, s = data["machine"], data["settings"]
    quick = data["profile"] == "quick"
    found = targets(data)
    out: list[str] = ["# Benchmarks", ""]
    out += [
        "<!-- Generated by `python -m benchmarks.run`; edit benchmarks/report.py, not this file. -->",
        "",
    ]
    if quick:
        out += [
            '!!! warning "Quick smoke run"',
            "    These numbers come from `--quick` (few, short rounds) and are noisy. Run",
            "    `python -m benchmarks.run` on a quiet machine for the figures to quote.",
            "",
        ]
    out += [
        "What the layers cost on a request that does nothing else: the app under them is a Starlette app",
        "with one `GET /bench` JSON route, so every microsecond measured is the layers', not an agent's.",
        "",
        "Regenerate this page and its plots with one command:",
        "",
        "```bash",
        ".venv/bin/pip install -e '.[bench]'",
        ".venv/bin/python -m benchmarks.run            # full run: rewrites this page and its plots",
        ".venv/bin/python -m benchmarks.run --quick --out /tmp/benchsmoke   # smoke run, writes only there",
        "```",
        "",
        "## Targets",
        "",
        f"Measured on {m['cpu']}, {m['cores']} cores ({m.get('cores_usable')} usable), {m['implementation']} "
        f"{m['python']}, load average {m['load_average']} at start, {m['date']}, commit `{m.get('commit')}`"
        f" ({'quick smoke run' if quick else 'full run'}; details under [Machine](#machine)).",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for t in found:
        met = "not measured" if t["met"] is None else ("yes" if t["met"] else "**no**")
        out.append(f"| {t['target']} | {t['measured'] or '-'} | {met} |")
    measured = [t for t in found if t["met"] is not None]
    missed = [t for t in measured if not t["met"]]
    out += [
        "",
        f"**{len(measured) - len(missed)} of {len(found)} targets met**"
        + (f", {len(found) - len(measured)} not measured in this run." if len(measured) < len(found) else "."),
    ]
    over_allin = [t for t in found if t.get("met") and t.get("allin_over_budget")]
    if over_allin:
        out += [
            "",
            "The overhead budget is judged on the request path (what a client waits for); "
            + ", ".join(f"`{t['config']}`" for t in over_allin)
            + f" nevertheless spend more than +{OVERHEAD_BUDGET_US:.0f} µs of CPU per request all-in (see below).",
        ]
    out += _in_the_way(data, found)
    bare = data.get("inprocess", {}).get("bare")
    if bare:
        out += [
            "",
            f"Scale: on this machine the bare Starlette app itself takes {bare['median_us']:.1f} µs/request "
            f"({bare.get('cpu_us', 0):.1f} µs CPU) in-process, so the +{OVERHEAD_BUDGET_US:.0f} µs budget is "
            f"{OVERHEAD_BUDGET_US / bare['median_us']:.1f}x the bare app's own time.",
        ]
    out += ["", "## In-process overhead", ""]
    out += [
        "Each ASGI app is called directly with a prebuilt scope and trivial `receive`/`send` (no network, no",
        f"HTTP client): {s['rounds']} rounds of up to {s['requests']} requests per configuration (fewer for a",
        f"slow configuration, so that each block lasts about {s.get('block_ms', '?')} ms), configurations",
        "interleaved round by round (order rotating and reversing), overhead = median over rounds of",
        "(configuration - bare) within the same round. `bare-again` is a second identical bare app: its",
        "overhead is the noise floor.",
        "",
        "After each configuration's block its background work is drained before the next block starts: the",
        "audit rows still to build (`services.audit.flush()`) and the write queue",
        "(`services.writer.flush()`). So nothing one configuration queued is paid inside another's",
        "timing, and the two columns mean:",
        "",
        "- **request path** (µs/request and its overhead): wall time of the requests alone, what a client",
        "  waits for. It includes waiting on Redis/PostgreSQL, and the loop callbacks that run between",
        "  requests, but not the drain.",
        "- **all-in CPU** (µs/request and its overhead): process CPU time (every thread: the event loop, the",
        "  SQLite/driver threads) over the block *plus* its drain, divided by the block's requests: everything",
        "  the configuration costs the process, including building and writing its audit rows off the request",
        "  path. It leaves out time spent waiting on Redis/PostgreSQL, and other tenants of a shared machine",
        "  disturb it less than wall time.",
        "",
        "A configuration with no background work has all-in CPU close to its request path; the difference",
        "for the audited stacks is what audit costs off the request path.",
        "",
    ]
    if has_inp:
        out += ["![In-process overhead](img/bench-inprocess.png)", ""]
        out += _inprocess_table(data)
    else:
        out.append("_No in-process results in this run._")
    prof = data.get("layer_profile")
    if prof and prof.get("rows"):
        out += [
            "",
            f"### Where the time of `{prof['config']}` goes",
            "",
            "One extra pass under cProfile: each layer's own time is its `__call__`'s cumulative time minus",
            "the next layer's. The profiler inflates every call, so read the shares, not the microseconds.",
            "",
            "| layer | own µs/request (profiled) | share |",
            "|---|---:|---:|",
        ]
        out += [f"| `{r['layer']}` | {r['own_us']:.1f} | {r['share']:.0%} |" for r in prof["rows"]]
    out += ["", "## Under load (uvicorn, loopback)", ""]
    server = m.get("server", {})
    out += [
        "Each configuration runs in its own single-worker uvicorn "
        f"({server.get('loop', '?')} loop, {server.get('http', '?')} parser) on 127.0.0.1; "
        f"{server.get('generator', 'wrk')} drives it with {s['connections']} keep-alive connections for "
        f"{s['load_seconds']:g} s per round, {s['load_rounds']} rounds, servers interleaved round by round.",
        "Ratios are medians of per-round ratios to the bare server of the same round.",
        "",
    ]
    if has_load:
        out += ["![Under load](img/bench-load.png)", ""]
        out += _load_table(data)
    else:
        out.append("_No load results in this run._")
    skipped = {**data.get("skipped", {})}
    skipped.update({k: f"(under load only) {v}" for k, v in data.get("skipped_load", {}).items() if k not in skipped})
    if skipped:
        out += ["", "## Not measured in this run", "", "| configuration | why |", "|---|---|"]
        for name, why in sorted(skipped.items()):
            out.append(f"| `{name}` | {why.replace('|', '/')[:300]} |")
    warnings = data.get("log_warnings") or {}
    if warnings:
        out += ["", "## Log lines written during the in-process run", "", "| count | first words |", "|---:|---|"]
        out += [f"| {n} | `{line}` |" for line, n in warnings.items()]
    out += [
        "",
        "## How the configurations are built",
        "",
        "- **bare**: `benchmarks/apps.py`; peers made for FastAPI are also run on Starlette (they accept any",
        "  Starlette app), `bare-fastapi` shows what FastAPI itself adds.",
        "- **ours, alone**: `layers.build_layer(name, app, services)` straight around the bare app; for layers",
        "  that read what an outer layer sets (principal, client IP), those scope keys are injected per request",
        "  (prebuilt outside the timed loop in-process; by a one-line wrapper under uvicorn).",
        "- **ours, stacks**: `build_stack(...)` with the public config. Rate limits are `1000000000/minute`",
        "  with the `fixed-window` strategy, so the limiter is consulted on every request but never rejects (the",
        "  memory `moving-window` strategy keeps one timestamp per hit, and a benchmark-sized limit would",
        "  measure a list of millions). Audit is `level: full` (one row per request, written off the request",
        "  path by the batched queue). Metrics are Prometheus.",
        "- **ours:full-redis-pg**: the same stack with the limiter on Redis (`redis://127.0.0.1:6379`) and the",
        "  audit rows in a fresh PostgreSQL database (dropped after the run).",
        "- **peers**: slowapi's pure-ASGI `SlowAPIASGIMiddleware` (memory, fixed window, the same huge limit),",
        "  starlette-exporter's `PrometheusMiddleware`, prometheus-fastapi-instrumentator (own registry),",
        "  `opentelemetry-instrumentation-asgi` with an SDK `TracerProvider` and no exporter, Starlette's",
        "  `AuthenticationMiddleware` with a joserfc HS256 backend checking `exp`, `iss` and `aud` (the same",
        '  checks as ours) plus `@requires("agent.execute")` on the route. `peer:all` is all of them together.',
        "",
        "## Machine",
        "",
        f"- {m['cpu']}, {m['cores']} cores ({m.get('cores_usable')} usable), {m['implementation']} {m['python']},"
        f" {m['platform']}",
        f"- load average {m['load_average']} at start, {m.get('load_average_end', '?')} at end"
        " (the machine is shared: compare ratios, not absolute numbers)",
        f"- {m['date']}, commit `{m.get('commit')}`",
        "- " + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v),
        "",
    ]
    (directory / "benchmarks.md").write_text("\n".join(out), encoding="utf-8")
