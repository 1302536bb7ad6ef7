"""``tframex-asgi`` command line. Each subcommand module has ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from tframex_asgi.errors import TFrameXASGIError

__all__ = ["main"]

# Subcommand modules, in the order `--help` lists them.
COMMANDS = ("serve", "migrate", "users", "roles", "keys", "audit", "config_cmd", "data", "dashboard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tframex-asgi",
        description="Enterprise layers (auth, RBAC, rate limits, audit, persistence, metrics) for TFrameX over ASGI.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module_name = f"{__name__}.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except TFrameXASGIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(code or 0)
