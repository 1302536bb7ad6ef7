"""Helpers shared by subcommands."""

from __future__ import annotations

import argparse
import os

from tframex_asgi.config import EnterpriseConfig, load_config

__all__ = ["add_config_arg", "config_from_args"]

DEFAULT_CONFIG_ENV = "TFRAMEX_ASGI_CONFIG"


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get(DEFAULT_CONFIG_ENV),
        help=f"YAML file with an 'enterprise:' block (default: ${DEFAULT_CONFIG_ENV}, else built-in defaults)",
    )


def config_from_args(args: argparse.Namespace) -> EnterpriseConfig:
    if args.config:
        return load_config(args.config)
    from tframex_asgi.defaults import default_config

    return default_config()
