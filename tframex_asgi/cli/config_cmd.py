"""``tframex-asgi config check FILE``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from tframex_asgi.config import load_config

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("config", help="check a configuration file")
    cmds = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = cmds.add_parser("check", help="validate FILE and print the effective configuration")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--quiet", "-q", action="store_true", help="print nothing when the file is valid")
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    config = load_config(args.file)  # ConfigError names the bad key; main() prints it
    otel = config.metrics.backends.opentelemetry
    if config.metrics.enabled and otel.enabled:
        # Refused when the stack is built too; said here so `config check` catches it first.
        otel.check_endpoint("enterprise.metrics.backends.opentelemetry")
    if not args.quiet:
        print(f"{args.file}: OK")
        print(json.dumps({"enterprise": _redact(config.to_dict())}, indent=2, default=str))
    return 0


_SECRET_KEYS = ("secret", "password", "client_secret", "connection_string", "headers")


def _redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, key) for v in value]
    if key in _SECRET_KEYS and value:
        return "***"
    return value
