"""``tframex-asgi serve``: the TFrameX endpoint behind the enterprise stack, on uvicorn."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any

from tframex_asgi.cli.common import add_config_arg, config_from_args
from tframex_asgi.errors import ConfigError

__all__ = ["build_server_app", "load_tframex_app", "register"]

logger = logging.getLogger("tframex_asgi.cli")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("serve", help="serve TFrameX agents over HTTP")
    add_config_arg(parser)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--app", metavar="MODULE:ATTR", help="a tframex.TFrameXApp (or a function returning one); default: demo"
    )
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(func=_serve)


def load_tframex_app(spec: str | None) -> Any:
    from tframex import TFrameXApp

    if not spec:
        from tframex_asgi.demo import build_demo_app

        return build_demo_app()
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError("--app", f"expected MODULE:ATTR, got {spec!r}")
    sys.path.insert(0, ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("--app", f"cannot import {module_name!r}: {exc}") from exc
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise ConfigError("--app", f"{module_name!r} has no attribute {attr!r}") from None
    app = target() if callable(target) and not isinstance(target, TFrameXApp) else target
    if not isinstance(app, TFrameXApp):
        raise ConfigError("--app", f"{spec} is not a tframex.TFrameXApp (it is of type {type(app).__name__})")
    return app


def build_server_app(args: argparse.Namespace, *, announce: Any = print) -> Any:
    from tframex_asgi.endpoint import TFrameXEndpoint
    from tframex_asgi.stack import EnterpriseStack, build_stack

    tframex_app = load_tframex_app(args.app)
    own = getattr(tframex_app, "stack", None)
    if isinstance(own, EnterpriseStack):
        # The seed's style (tframex_asgi.TFrameXApp with the enterprise keywords): it configures
        # itself, and in-process runs share that stack's services; a second config would split them.
        if args.config:
            raise ConfigError("--config", f"{args.app} configures itself with the enterprise keywords: drop --config")
        _bootstrap_admin(own, announce, base_url(args, for_client=True))
        return own
    stack = build_stack(TFrameXEndpoint(tframex_app), config_from_args(args))
    _bootstrap_admin(stack, announce, base_url(args, for_client=True))
    return stack


def base_url(args: argparse.Namespace, *, for_client: bool = False) -> str:
    """The bound address as a URL (bracketed IPv6); ``for_client``: one a local client can use
    (loopback instead of a wildcard bind)."""
    host = getattr(args, "host", "127.0.0.1") or "127.0.0.1"
    if for_client and host in ("0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding to it
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{getattr(args, 'port', 8000)}"


def _bootstrap_admin(stack: Any, announce: Any, url: str = "http://127.0.0.1:8000") -> None:
    """On first start with security on, create an admin and print its API key once."""
    from tframex_asgi.admin.bootstrap import announce_first_admin

    announce_first_admin(stack.services, announce, try_url=f"{url}/agents")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tframex_asgi.cli.logs import apply_levels, configure

    # Every handler filters credentials out and drops records below --log-level, whichever
    # logger wrote them; apply_levels after the app is imported (its modules set levels).
    log_config = configure(args.log_level)
    app = build_server_app(args)
    apply_levels(args.log_level)
    print(f"tframex-asgi: serving on {base_url(args)} (layers: {', '.join(app.layers)})", flush=True)
    if not app.config.persistence.enabled:
        print(
            "tframex-asgi: persistence is off: users, API keys and audit rows live in memory and are lost at exit",
            flush=True,
        )
    # proxy_headers off: uvicorn would trust X-Forwarded-For from 127.0.0.1; our own trusted-proxy list decides.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        proxy_headers=False,
        log_config=log_config,
    )
    return 0
