"""The Grafana dashboard in docs/ charts every declared metric, only declared metrics, and
its PromQL parses (checked by `promtool check rules` on the expressions as recording rules)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.metrics.test_exposition import promtool
from tframex_asgi.metrics.spec import CATALOGUE

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def expressions() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    return [t["expr"] for p in data["panels"] for t in p.get("targets", ())]


def test_dashboard_uses_exactly_the_declared_metrics() -> None:
    exposed = {}
    for spec in CATALOGUE.values():
        names = [f"tframex_{spec.name}"]
        if spec.kind == "histogram":
            names += [f"tframex_{spec.name}_{suffix}" for suffix in ("bucket", "count", "sum")]
        for name in names:
            exposed[name] = spec.name
    used = {name for expr in expressions() for name in re.findall(r"\btframex_[a-z_]+", expr)}
    assert used <= set(exposed), used - set(exposed)
    assert {exposed[name] for name in used} == set(CATALOGUE)


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    rules = [
        {"record": f"tframex:panel_{i}", "expr": expr.replace("$__rate_interval", "5m").replace("$job", ".*")}
        for i, expr in enumerate(expressions())
    ]
    path = tmp_path / "rules.json"  # YAML is a superset of JSON
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
