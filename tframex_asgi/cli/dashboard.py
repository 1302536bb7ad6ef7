"""``tframex-asgi dashboard``: print the Grafana dashboard shipped in the package.

The README tells users to import it; printing it from the installed package means a
``pip install`` is enough (no source checkout): ``tframex-asgi dashboard > dashboard.json``.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from typing import Any

__all__ = ["dashboard_json", "register"]


def dashboard_json() -> str:
    """The dashboard's JSON text, as shipped in ``tframex_asgi/metrics``."""
    return resources.files("tframex_asgi.metrics").joinpath("grafana-dashboard.json").read_text(encoding="utf-8")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "dashboard", help="print the Grafana dashboard JSON (import it into Grafana)"
    )
    parser.set_defaults(func=_print)


def _print(args: argparse.Namespace) -> int:
    sys.stdout.write(dashboard_json())
    return 0
