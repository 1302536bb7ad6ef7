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


# Exit codes, the same for every command: 0 done; 1 a check found a problem (`audit verify`);
# 2 the command could not do what was asked (bad arguments, bad config, not found, refused,
# storage unreachable), with one "error: ..." line on stderr; 130 interrupted.
EXIT_OK, EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # bad arguments: argparse exits with 2 too
    try:
        code = args.func(args)
    except TFrameXASGIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # a database or file that cannot be reached: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return int(code or 0)
