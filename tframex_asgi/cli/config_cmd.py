"""``tframex-asgi config check FILE`` and ``config show [FILE]``.

Both print the *effective* configuration: the serve defaults with FILE layered over them, as
``serve`` and every other command use it (tframex_asgi.config.layering).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tframex_asgi.cli.common import add_config_arg
from tframex_asgi.defaults import serve_config

__all__ = ["register"]


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("config", help="check a config file or show the effective one")
    cmds = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = cmds.add_parser("check", help="validate FILE as serve would and print the effective configuration")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--quiet", "-q", action="store_true", help="print nothing when the file is valid")
    check.set_defaults(func=_check)
    show = cmds.add_parser("show", help="print the effective configuration: the serve defaults, with FILE over them")
    show.add_argument("file", metavar="FILE", nargs="?", help="default: --config, then $TFRAMEX_ASGI_CONFIG")
    add_config_arg(show)  # like every other command
    show.set_defaults(func=_show)


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    """The app the check builds the stack around (never called: nothing is started)."""


def _check(args: argparse.Namespace) -> int:
    from tframex_asgi.stack import build_stack

    config = serve_config(args.file)  # ConfigError names the bad key; main() prints it
    # What serve validates beyond the config itself (providers, keys, backends, route table)
    # is validated when the layers are built: build them, start nothing, connect to nothing.
    build_stack(_no_app, config)
    if not args.quiet:
        print(f"{args.file}: OK (effective configuration: the serve defaults with this file over them)")
        print(_dump(config))
    return 0


def _show(args: argparse.Namespace) -> int:
    print(_dump(serve_config(args.file or args.config)))  # FILE first, then --config / $TFRAMEX_ASGI_CONFIG
    return 0


def _dump(config: Any) -> str:
    return json.dumps({"enterprise": _redact(config.to_dict())}, indent=2, default=str)


# Keys whose whole value is a secret: a JWT secret, the OIDC client secret, the audit HMAC key,
# exporter headers (they carry tokens).
_SECRET_KEYS = frozenset({"secret", "password", "client_secret", "hmac_key", "headers"})


def _redact(value: Any, key: str = "") -> Any:
    """The config as printed: secret keys as ``***``, and every URL, wherever it is (database,
    replicas, Redis rate-limit storage, S3 backup, JWKS, exporter endpoints), with its password
    and query string masked."""
    if key in _SECRET_KEYS and value:
        return {k: "***" for k in value} if isinstance(value, dict) else "***"  # headers: names kept
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, key) for v in value]
    if isinstance(value, str) and "://" in value:
        return _mask_url(value)
    return value


def _mask_url(url: str) -> str:
    """A URL with its password (and any query string, which may hold one) masked."""
    from urllib.parse import urlsplit, urlunsplit

    if "@" not in url and "?" not in url:
        return url  # no credentials in it (sqlite:///path, memory://)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))
