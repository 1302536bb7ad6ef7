"""Helpers shared by subcommands."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from tframex_asgi.config import EnterpriseConfig

__all__ = ["add_config_arg", "at_least", "config_from_args"]

DEFAULT_CONFIG_ENV = "TFRAMEX_ASGI_CONFIG"


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get(DEFAULT_CONFIG_ENV),
        help=f"YAML file with an 'enterprise:' block, layered over the serve defaults (default: ${DEFAULT_CONFIG_ENV})",
    )


def config_from_args(args: argparse.Namespace) -> EnterpriseConfig:
    """The serve defaults with ``--config FILE`` layered over them (a key the file leaves out
    keeps its serve default: see tframex_asgi.config.layering)."""
    from tframex_asgi.defaults import serve_config

    return serve_config(args.config or None)


def at_least(minimum: int, unit: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a whole number of ``minimum`` or more (argparse turns the refusal
    into its usual one-line error and exit 2)."""
    suffix = f" {unit}" if unit else ""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number{suffix}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more{suffix}, got {value}")
        return value

    return parse
