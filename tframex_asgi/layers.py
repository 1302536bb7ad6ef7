"""The stack's layers, outermost first, each built from the parts of :class:`Services` it uses.

request context -> metrics -> audit -> body limit -> authentication -> rate limit ->
authorization -> the stack's own routes (``/metrics``, ``/audit``, ``/admin/*``) -> app.

The stack builds them innermost first: authorization fills ``services.route_table`` before the
context layer (outermost) is built to match it once per request. A layer whose ``wanted(config)``
is false is not built at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from tframex_asgi.admin.routes import admin_routes
from tframex_asgi.audit.layer import AuditMiddleware
from tframex_asgi.audit.routes import audit_routes
from tframex_asgi.auth.api_key import APIKeyProvider
from tframex_asgi.auth.base import AuthProvider, PermissionResolver
from tframex_asgi.auth.basic import BasicAuthProvider
from tframex_asgi.auth.jwt import JWTProvider
from tframex_asgi.auth.layer import AuthenticationMiddleware
from tframex_asgi.auth.oauth2 import OAuth2Provider
from tframex_asgi.bodylimit import BodyLimitMiddleware
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.context import RequestContextMiddleware
from tframex_asgi.metrics.middleware import PerformanceMonitor
from tframex_asgi.ratelimit.middleware import RateLimitMiddleware
from tframex_asgi.rbac.discover import guarded_routes
from tframex_asgi.rbac.layer import AuthorizationMiddleware, challenge_for, config_route_table
from tframex_asgi.routes_layer import OperationalRoutes
from tframex_asgi.services import Services
from tframex_asgi.types import ASGIApp

__all__ = ["LAYERS", "Layer", "build_layer", "build_providers"]

logger = logging.getLogger("tframex_asgi.stack")
Builder = Callable[[ASGIApp, Services], ASGIApp]


@dataclass(frozen=True)
class Layer:
    name: str
    build: Builder
    wanted: Callable[[EnterpriseConfig], bool]


def context_layer(app: ASGIApp, services: Services) -> ASGIApp:
    cfg = services.config
    return RequestContextMiddleware(
        app,
        header_name=cfg.server.request_id_header,
        trust_request_id=cfg.server.trust_request_id,
        trusted_proxies=cfg.security.trusted_proxies,
        openai_prefix=services.openai_prefix,
        route_table=services.route_table,
    )


def metrics_layer(app: ASGIApp, services: Services) -> ASGIApp:
    # OpenTelemetry(PerformanceMonitor(app)): the metrics middleware runs inside the server span,
    # so it can name the span after the route and attach the trace id as an exemplar.
    tracing = services.tracing
    wrapped: ASGIApp = PerformanceMonitor(app, services.metrics, trace_hook=tracing)
    return tracing.wrap(wrapped) if tracing is not None else wrapped


def audit_layer(app: ASGIApp, services: Services) -> ASGIApp:
    audit = services.audit_logger
    services.routes.extend(audit_routes(services.config, services.storage, audit, services.writer))
    durable = services.config.security.audit.durability == "durable"
    return AuditMiddleware(app, audit, clock=services.clock, journal=services.journal if durable else None)


def body_limit_layer(app: ASGIApp, services: Services) -> ASGIApp:
    return BodyLimitMiddleware(app, services.config.security.max_body_bytes)


def build_providers(services: Services) -> list[AuthProvider]:
    """The enabled providers in trial order (API keys alone when none is enabled)."""
    cfg = services.config.security.auth_providers
    resolver = PermissionResolver(services.rbac, services.config.security.rbac)
    providers: list[AuthProvider] = []
    for name in cfg.enabled_in_order:
        if name == "api_key":
            providers.append(APIKeyProvider(services.identity, resolver, services.clock, cfg.api_key.header_name))
        elif name == "basic":
            providers.append(BasicAuthProvider(services.identity, resolver, cfg.basic.realm))
        elif name == "jwt":
            http = services.http(cfg.jwt.timeout) if cfg.jwt.jwks_url else None
            jwt_provider = JWTProvider.from_config(cfg.jwt, resolver, services.clock, http)
            services.on_change(jwt_provider.cache.clear)
            providers.append(jwt_provider)
        elif name == "oauth2":
            oauth2_provider = OAuth2Provider(cfg.oauth2, services.http(cfg.oauth2.timeout), resolver, services.clock)
            services.on_startup(oauth2_provider.warm)
            services.on_change(oauth2_provider.cache.clear)
            providers.append(oauth2_provider)
    if any(p.name in ("jwt", "oauth2") for p in providers):
        services.changes  # noqa: B018 - role definitions changed elsewhere reach token principals too
    return providers


def authentication_layer(app: ASGIApp, services: Services) -> ASGIApp:
    security = services.config.security
    providers = build_providers(services)
    names = {p.name for p in providers}
    return AuthenticationMiddleware(
        app,
        providers,
        api_key_header=security.auth_providers.api_key.header_name if "api_key" in names else None,
        public_paths=security.public_paths,
        require_auth=security.require_auth,
        failures=services.auth_failures,
    )


def rate_limit_layer(app: ASGIApp, services: Services) -> ASGIApp:
    return RateLimitMiddleware(app, services.config.security.rate_limiting, backend=services.ratelimit)


def authorization_layer(app: ASGIApp, services: Services) -> ASGIApp:
    security = services.config.security
    services.rbac  # noqa: B018 - seeded and loaded at startup, before the first request
    if security.rbac.admin_api:
        services.admin  # noqa: B018 - built now: its parts start with the stack
        services.routes.extend(admin_routes(services))
    table = config_route_table(services.config, guarded_routes(app))
    services.route_table = table  # the context layer matches it once per request
    logger.debug("authorization: %d route rules", len(table))

    async def learn_late_routes() -> None:
        # Routers included after the stack was built: their guarded routes are added now
        # (never replacing a rule the table already has).
        for rule, value in guarded_routes(app).items():
            try:
                table.add(rule, value)
            except ValueError:
                continue

    services.on_startup(learn_late_routes)
    return AuthorizationMiddleware(app, routes=table, challenge=challenge_for(security.auth_providers))


def routes_layer(app: ASGIApp, services: Services) -> ASGIApp:
    # Innermost, so authentication and authorization cover the stack's own routes too; read on
    # the first request, since the layers built after this one register theirs.
    return OperationalRoutes(app, services.routes)


LAYERS: tuple[Layer, ...] = (
    Layer(
        "context",
        context_layer,
        lambda c: (
            c.server.request_id_header is not None or c.metrics.enabled or c.security.enabled or c.persistence.enabled
        ),
    ),
    Layer("metrics", metrics_layer, lambda c: c.metrics.enabled),
    Layer("audit", audit_layer, lambda c: c.security.enabled and c.security.audit.level != "off"),
    Layer("body_limit", body_limit_layer, lambda c: c.security.enabled),
    Layer("authentication", authentication_layer, lambda c: c.security.enabled),
    Layer("rate_limit", rate_limit_layer, lambda c: c.security.enabled and c.security.rate_limiting.enabled),
    Layer("authorization", authorization_layer, lambda c: c.security.enabled and c.security.rbac.enabled),
    Layer("routes", routes_layer, lambda c: c.metrics.enabled or c.security.enabled),
)


def build_layer(name: str, app: ASGIApp, services: Services) -> ASGIApp | None:
    """The layer called ``name`` alone around ``app`` (None when its config does not want it):
    for tests and benchmarks that measure one layer."""
    layer = next((layer for layer in LAYERS if layer.name == name), None)
    if layer is None:
        raise ValueError(f"no layer named {name!r}: one of {', '.join(x.name for x in LAYERS)}")
    return layer.build(app, services) if layer.wanted(services.config) else None
