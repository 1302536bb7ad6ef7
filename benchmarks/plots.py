"""The PNG plots of the stand-alone benchmarks (bench_rss, bench_scaling, bench_litellm)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_litellm", "plot_production", "plot_rss", "plot_scaling"]

SCALING_TITLES = {
    "keys": "API keys stored",
    "routes": "RBAC + rate-limit routes",
    "audit-sqlite": "audit_logs rows, SQLite",
    "audit-postgresql": "audit_logs rows, PostgreSQL",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)


def plot_rss(data: dict[str, Any], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for name, var in data["variants"].items():
        samples = var.get("samples") or []
        if samples:
            ax.plot([s["requests"] / 1000 for s in samples], [s["rss_kib"] / 1024 for s in samples], label=name)
    ax.set_xlabel("requests served (thousands)")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title("uvicorn server RSS over requests (one worker, wrk, 32 connections)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def plot_scaling(data: dict[str, Any], path: Path) -> None:
    """One pair of bars per mode: small vs large size, µs/request."""
    plt = _plt()
    modes = [m for m in SCALING_TITLES if m in data]
    if not modes:
        return
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for i, mode in enumerate(modes):
        values = sorted((int(k), v) for k, v in data[mode]["us"].items())
        for j, (size, value) in enumerate(values[:2]):
            bar = ax.bar(i + (j - 0.5) * 0.38, value, 0.36, color=("#9ec5ee", "#1f5fa8")[j])
            ax.bar_label(bar, labels=[f"{size:,}\n{value:.0f} µs"], fontsize=7)
    ax.set_xticks(range(len(modes)), [SCALING_TITLES[m] for m in modes], fontsize=8)
    ax.set_ylabel("µs per request (in-process)")
    ax.set_title("Per-request cost, small vs large configuration or data (same run, interleaved)")
    ax.margins(y=0.25)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def plot_litellm(data: dict[str, Any], path: Path) -> None:
    plt = _plt()
    labels = list(data["servers"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    colors = ["#1f5fa8", "#c0601a"]
    bars = left.bar(labels, [data["servers"][k]["rps"] for k in labels], color=colors)
    left.bar_label(bars, fmt="%.0f")
    left.set_ylabel("req/s (median of rounds)")
    left.set_title("POST /v1/chat/completions")
    for k, color in zip(labels, colors, strict=False):
        s = data["servers"][k]
        right.bar([f"{k}\np50", f"{k}\np99"], [s["p50_ms"], s["p99_ms"]], color=color)
    right.set_ylabel("latency (ms)")
    right.set_title(f"{data['connections']} connections, wrk")
    for ax in (left, right):
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(labelsize=8)
    _save(fig, path)


def plot_production(data: dict[str, Any], path: Path, floors: tuple[tuple[str, float, str], ...]) -> None:
    """req/s relative to bare per configuration, with each issue-18 floor drawn for its configuration."""
    plt = _plt()
    rows = sorted(data["load"].values(), key=lambda r: -r["rps_ratio"])
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.6))
    names = [r["name"] for r in rows]
    ax.barh(
        names, [r["rps_ratio"] for r in rows], color=["#9e9e9e" if n.startswith("bare") else "#1f5fa8" for n in names]
    )
    for name, floor, _ in floors:
        if name in names:
            y = names.index(name)
            ax.plot([floor, floor], [y - 0.4, y + 0.4], color="#b00020", linewidth=2)
    ax.axvline(1.0, color="#555", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("req/s relative to bare, same round (red tick: the issue-18 floor)")
    server = data["machine"].get("server", {})
    ax.set_title(f"Under uvicorn ({server.get('loop')}, {server.get('http')}) + wrk on loopback")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, path)
