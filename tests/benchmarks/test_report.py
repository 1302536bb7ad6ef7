"""The report's targets and its account of a missed req/s floor, from a synthetic results dict."""

from __future__ import annotations

from typing import Any

from benchmarks.report import _in_the_way, targets


def results(full_rps: float) -> dict[str, Any]:
    row = {"overhead_us": 36.0, "allin_cpu_overhead_us": 66.0, "overhead_q1_us": 0.0, "overhead_q3_us": 0.0}
    return {
        "inprocess": {
            "ours:full-apikey": row,
            "ours:audit": {**row, "overhead_us": 15.0, "allin_cpu_overhead_us": 43.0},
            "peer:all": {**row, "overhead_us": 380.0},
        },
        "load": {
            "bare": {"rps": 10_000.0, "rps_ratio": 1.0},
            "ours:full-apikey": {"rps": full_rps, "rps_ratio": full_rps / 10_000},
            "ours:full-apikey-auditsec": {"rps": 6_000.0, "rps_ratio": 0.6},
        },
    }


def test_a_missed_floor_is_explained_with_the_measured_figures() -> None:
    data = results(5_000.0)  # 0.5x: 200 µs per request against bare's 100
    lines = " ".join(_in_the_way(data, targets(data)))
    assert "allows +67 µs" in lines and "over bare's 100 µs" in lines
    assert "+66 µs of CPU all-in in-process, but +100 µs per request under load" in lines
    assert "`ours:audit` alone costs +15.0 µs" in lines and "+43.0 µs of CPU all-in" in lines
    assert "serves 0.60x bare req/s" in lines


def test_nothing_to_explain_when_the_floor_is_met() -> None:
    data = results(7_000.0)
    assert _in_the_way(data, targets(data)) == []
