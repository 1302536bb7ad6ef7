"""Stack builder for the request-context layer (always present)."""

from __future__ import annotations

from tframex_asgi.context import RequestContextMiddleware
from tframex_asgi.services import Services
from tframex_asgi.types import ASGIApp

__all__ = ["build_layer"]


def build_layer(app: ASGIApp, services: Services) -> ASGIApp:
    cfg = services.config
    return RequestContextMiddleware(
        app,
        header_name=cfg.server.request_id_header,
        trust_request_id=cfg.server.trust_request_id,
        trusted_proxies=cfg.security.trusted_proxies,
        openai_prefix=services.extras.get("openai_prefix"),
        # Set by the authorization layer, built before this one (layers are built inside out).
        route_table=services.extras.get("route_table"),
    )
