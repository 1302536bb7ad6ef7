"""``tframex-asgi`` command line. Each subcommand module has ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
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
# storage unreachable), with one "error: ..." line on stderr; 130 interrupted. A reader that
# stopped early (`| head`) is not a failure: 0, quietly.
EXIT_OK, EXIT_CHECK_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reader has closed it (poll reports POLLERR), as opposed
    to a broken pipe to a database or server."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLERR)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() here, or stdout is no file
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # bad arguments: argparse exits with 2 too
    try:
        code = args.func(args)
    except TFrameXASGIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError as exc:
        if not _stdout_reader_gone():
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        # What is left in stdout's buffer goes nowhere, instead of failing again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a database or file that cannot be reached: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return int(code or 0)
