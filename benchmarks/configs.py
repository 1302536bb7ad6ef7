"""Every configuration benchmarked, as a named async factory returning the app and its credentials.

A factory raises :class:`Unavailable` (or any exception) when a layer, a peer package or a
service is missing: the runner then skips that configuration and says why in the report.
The same factories run in-process and inside the uvicorn servers (``benchmarks.serve``).
"""

from __future__ import annotations

import importlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.apps import PATH, bare_fastapi, bare_starlette

__all__ = ["CONFIGS", "EXTRA_CONFIGS", "BenchConfig", "BenchContext", "Built", "Unavailable", "by_name"]

ASGIApp = Callable[..., Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# Shared by our JWT provider and the peers' joserfc backend: same algorithm, same claims checks.
JWT_SECRET = "tframex-bench-hs256-secret-0123456789abcdef"
JWT_ISSUER = "https://issuer.bench.invalid"
JWT_AUDIENCE = "tframex-bench"
# Far above what a run sends: the limiter is consulted on every request but never rejects.
HUGE_LIMIT = "1000000000/minute"
# The seed's DEFAULT_ROLES["user"]; GET /bench is mapped to agent.execute, which "user" holds.
USER_PERMISSIONS = ("agent.execute", "tool.call", "flow.execute", "data.read", "data.write")
BENCH_PERMISSION = "agent.execute"


class Unavailable(Exception):
    """The configuration cannot be built here (missing layer, package or service)."""


@dataclass
class BenchContext:
    """Where the stateful configurations keep their state (one per run)."""

    workdir: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    redis_url: str | None = None
    pg_dsn: str | None = None

    def to_env(self) -> dict[str, str]:
        return {
            "TFX_BENCH_WORKDIR": self.workdir,
            "TFX_BENCH_RUN_ID": self.run_id,
            "TFX_BENCH_REDIS_URL": self.redis_url or "",
            "TFX_BENCH_PG_DSN": self.pg_dsn or "",
        }

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str]) -> BenchContext:
        return cls(
            workdir=env["TFX_BENCH_WORKDIR"],
            run_id=env["TFX_BENCH_RUN_ID"],
            redis_url=env.get("TFX_BENCH_REDIS_URL") or None,
            pg_dsn=env.get("TFX_BENCH_PG_DSN") or None,
        )


@dataclass
class Built:
    app: ASGIApp
    headers: Headers = field(default_factory=list)
    # Scope keys an outer layer would have set (for a layer measured alone), made fresh per request.
    scope_extras: Callable[[], dict[str, Any]] | None = None
    close: Callable[[], Awaitable[None]] | None = None
    layers: tuple[str, ...] = ()
    # The stack's Services (ours only): the driver drains its background work (audit rows, the write
    # queue) after each timed block, so it is charged to this configuration and not the next one.
    services: Any = None


@dataclass(frozen=True)
class BenchConfig:
    name: str
    group: str  # "baseline" | "ours" | "ours-stack" | "peer" | "peer-stack"
    base: str  # the baseline its overhead is measured against
    title: str
    build: Callable[[BenchContext], Awaitable[Built]]
    load: bool = True  # also run under uvicorn


def _need(*modules: str) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise Unavailable(f"{name} is not importable yet ({exc})") from None


def jwt_token(lifetime: float = 7 * 86400) -> str:
    from joserfc import jwt
    from joserfc.jwk import OctKey

    now = int(time.time())
    claims = {
        "sub": "bench-user",
        "preferred_username": "bench",
        "roles": ["user"],
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "iat": now,
        "exp": now + int(lifetime),
    }
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(JWT_SECRET))


def _bearer() -> Headers:
    return [(b"authorization", b"Bearer " + jwt_token().encode())]


# --------------------------------------------------------------------------- baselines


async def _bare(ctx: BenchContext) -> Built:
    return Built(bare_starlette())


async def _bare_fastapi(ctx: BenchContext) -> Built:
    _need("fastapi")
    return Built(bare_fastapi())


# --------------------------------------------------------------------------- ours

RBAC_ROUTES = {f"GET {PATH}": BENCH_PERMISSION}


def _security(
    auth: str,
    *,
    rbac: bool = True,
    ratelimit: str | None = None,
    audit: str = "off",
) -> dict[str, Any]:
    providers: dict[str, Any]
    if auth == "jwt":
        providers = {
            "jwt": {
                "enabled": True,
                "algorithms": ["HS256"],
                "secret": JWT_SECRET,
                "issuer": JWT_ISSUER,
                "audience": JWT_AUDIENCE,
            }
        }
    else:
        providers = {"api_key": {"enabled": True}}
    out: dict[str, Any] = {
        "auth_providers": providers,
        "rbac": {"enabled": rbac, "routes": RBAC_ROUTES},
        "audit": {"level": audit},
    }
    if ratelimit is not None:
        # fixed-window: the memory moving window keeps one timestamp per hit, which a
        # 10^9/minute benchmark limit would turn into a list of millions (see docs/benchmarks.md).
        out["rate_limiting"] = {
            "enabled": True,
            "storage": ratelimit,
            "default": HUGE_LIMIT,
            "strategy": "fixed-window",
            "key_prefix": "tfx-bench",
        }
    return out


async def _credentials(services: Any, auth: str) -> Headers:
    if auth == "jwt":
        return _bearer()
    _need("tframex_asgi.auth.store")
    from tframex_asgi.auth.store import get_identity_store

    store = get_identity_store(services)
    user = await store.create_user(f"bench-{uuid.uuid4().hex[:8]}")
    _, key = await store.create_api_key(user["id"], name="bench")
    header = services.config.security.auth_providers.api_key.header_name.lower().encode("latin-1")
    return [(header, key.encode())]


def _layer_error(exc: Exception) -> Unavailable:
    return Unavailable(f"{type(exc).__name__}: {exc}")


async def _stack(ctx: BenchContext, auth: str, **kwargs: Any) -> Built:
    from tframex_asgi import build_stack

    try:
        stack = build_stack(bare_starlette(), **kwargs)
        await stack.startup()
    except (ImportError, NotImplementedError) as exc:
        raise _layer_error(exc) from exc
    except Exception as exc:
        if "not available in this version" in str(exc):
            raise _layer_error(exc) from exc
        raise
    headers = await _credentials(stack.services, auth) if kwargs.get("enable_security", True) else []
    return Built(stack, headers, close=stack.shutdown, layers=stack.layers, services=stack.services)


def _full_kwargs(ctx: BenchContext, auth: str, *, services: bool = False, audit: str = "full") -> dict[str, Any]:
    if services:
        if not ctx.redis_url or not ctx.pg_dsn:
            raise Unavailable("needs Redis and PostgreSQL (not reachable)")
        _need("redis", "asyncpg")
        rl_storage, db = ctx.redis_url, ctx.pg_dsn
    else:
        rl_storage, db = "memory://", f"sqlite:///{ctx.workdir}/audit-{auth}-{uuid.uuid4().hex[:6]}.db"
    return {
        "enable_security": True,
        "security_config": _security(auth, ratelimit=rl_storage, audit=audit),
        "enable_persistence": True,
        "persistence_config": {"connection_string": db},
        "enable_metrics": True,
        "metrics_config": {"backends": ["prometheus"]},
    }


_ALL_OFF: dict[str, Any] = {"enable_security": False, "enable_metrics": False, "enable_persistence": False}


async def _disabled(ctx: BenchContext) -> Built:
    return await _stack(ctx, "none", **_ALL_OFF, server_config={"request_id_header": None})


async def _context(ctx: BenchContext) -> Built:
    return await _stack(ctx, "none", **_ALL_OFF)


async def _full_durable(ctx: BenchContext) -> Built:
    kwargs = _full_kwargs(ctx, "api_key")
    journal = f"{ctx.workdir}/audit-journal-{uuid.uuid4().hex[:6]}"
    kwargs["security_config"]["audit"] = {"level": "full", "durability": "durable", "journal_path": journal}
    return await _stack(ctx, "api_key", **kwargs)


def _full(
    auth: str,
    services: bool = False,
    audit: str = "full",
    server_timing: bool = False,
    metrics: bool = True,
    lease: int = 0,
    gc_freeze: bool = False,
) -> Callable[[BenchContext], Awaitable[Built]]:
    async def build(ctx: BenchContext) -> Built:
        kwargs = _full_kwargs(ctx, auth, services=services, audit=audit)
        if lease:
            kwargs["security_config"]["rate_limiting"]["lease"] = lease
        server = {"server_timing": True} if server_timing else {}
        if gc_freeze:
            server["gc_freeze"] = True
        if server:
            kwargs["server_config"] = server
        if not metrics:
            kwargs["enable_metrics"] = False
        return await _stack(ctx, auth, **kwargs)

    return build


async def _auth_rbac(ctx: BenchContext) -> Built:
    return await _stack(ctx, "api_key", enable_security=True, security_config=_security("api_key"))


# One layer alone: its builder straight around the bare app, scope keys of the outer layers injected.


async def _principal_extras(services: Any) -> Callable[[], dict[str, Any]]:
    from starlette.authentication import AuthCredentials

    from tframex_asgi.auth.principal import Principal
    from tframex_asgi.context import RequestState, new_request_id

    # A real users row where the identity store exists, so audit rows link to it as they would
    # behind the authentication layer.
    try:
        from tframex_asgi.auth.store import get_identity_store

        user_id = (await get_identity_store(services).create_user(f"bench-{uuid.uuid4().hex[:8]}"))["id"]
    except ImportError:
        user_id = str(uuid.uuid4())
    principal = Principal(
        id=user_id,
        username="bench",
        roles=frozenset({"user"}),
        permissions=frozenset(USER_PERMISSIONS),
        auth_method="api_key",
        api_key_id=str(uuid.uuid4()),
    )
    creds = AuthCredentials(sorted(principal.permissions))

    # Under uvicorn this runs per request (benchmarks.serve), charged to the layer measured: keep it
    # to what the outer layers would have done (an id from the context layer's pool, not uuid4()).
    def extras() -> dict[str, Any]:
        state = RequestState(request_id=new_request_id(), client_ip="127.0.0.1", principal=principal)
        return {"user": principal, "auth": creds, "tframex": state}

    return extras


def _alone(
    layer: str, kwargs: Callable[[BenchContext], dict[str, Any]], *, principal: bool, auth: str | None = None
) -> Callable[[BenchContext], Awaitable[Built]]:
    async def build(ctx: BenchContext) -> Built:
        from tframex_asgi.config import EnterpriseConfig
        from tframex_asgi.layers import build_layer
        from tframex_asgi.services import Services

        services = Services(EnterpriseConfig.from_kwargs(**kwargs(ctx)))
        try:
            app = build_layer(layer, bare_starlette(), services)
            await services.startup()
        except (ImportError, NotImplementedError) as exc:
            raise _layer_error(exc) from exc
        if app is None:
            raise Unavailable(f"the {layer} layer is not built for this config")
        headers = await _credentials(services, auth) if auth else []
        extras = await _principal_extras(services) if principal else None
        return Built(
            app,
            headers,
            scope_extras=extras,
            close=services.shutdown,
            layers=(layer,),
            services=services,
        )

    return build


def _kw_auth(ctx: BenchContext) -> dict[str, Any]:
    return {"enable_security": True, "security_config": _security("api_key", rbac=False)}


def _kw_auth_jwt(ctx: BenchContext) -> dict[str, Any]:
    return {"enable_security": True, "security_config": _security("jwt", rbac=False)}


def _kw_rbac(ctx: BenchContext) -> dict[str, Any]:
    return {"enable_security": True, "security_config": _security("api_key")}


def _kw_ratelimit(ctx: BenchContext) -> dict[str, Any]:
    return {"enable_security": True, "security_config": _security("api_key", ratelimit="memory://")}


def _kw_audit(ctx: BenchContext) -> dict[str, Any]:
    return {
        "enable_security": True,
        "security_config": _security("api_key", audit="full"),
        "enable_persistence": True,
        "persistence_config": {"connection_string": f"sqlite:///{ctx.workdir}/audit-alone-{uuid.uuid4().hex[:6]}.db"},
    }


def _kw_metrics(ctx: BenchContext) -> dict[str, Any]:
    return {"enable_security": False, "enable_metrics": True, "metrics_config": {"backends": ["prometheus"]}}


def _kw_bodylimit(ctx: BenchContext) -> dict[str, Any]:
    return {"enable_security": True, "security_config": _security("api_key")}


# --------------------------------------------------------------------------- peers


def _peer_jwt_backend() -> Any:
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import OctKey
    from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, SimpleUser

    key = OctKey.import_key(JWT_SECRET)
    claims_registry = jwt.JWTClaimsRegistry(
        exp={"essential": True},
        iss={"essential": True, "value": JWT_ISSUER},
        aud={"essential": True, "value": JWT_AUDIENCE},
    )
    role_permissions = {"user": USER_PERMISSIONS}

    class JoserfcHS256Backend(AuthenticationBackend):
        async def authenticate(self, conn: Any) -> tuple[AuthCredentials, SimpleUser] | None:
            header = conn.headers.get("authorization")
            if not header:
                return None
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return None
            try:
                decoded = jwt.decode(token, key, algorithms=["HS256"])
                claims_registry.validate(decoded.claims)
            except (JoseError, ValueError) as exc:
                raise AuthenticationError("invalid token") from exc
            permissions: set[str] = set()
            for role in decoded.claims.get("roles", ()):
                permissions.update(role_permissions.get(role, ()))
            return AuthCredentials(sorted(permissions)), SimpleUser(decoded.claims["sub"])

    return JoserfcHS256Backend()


def _add_slowapi(app: Any) -> None:
    from slowapi import Limiter, _rate_limit_exceeded_handler
    from slowapi.errors import RateLimitExceeded
    from slowapi.middleware import SlowAPIASGIMiddleware
    from slowapi.util import get_remote_address

    app.state.limiter = Limiter(
        key_func=get_remote_address, default_limits=[HUGE_LIMIT], strategy="fixed-window", storage_uri="memory://"
    )
    app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)
    app.add_middleware(SlowAPIASGIMiddleware)


def _add_starlette_exporter(app: Any) -> None:
    from starlette_exporter import PrometheusMiddleware

    app.add_middleware(PrometheusMiddleware, app_name="bench", prefix="bench_se", group_paths=True)


def _add_instrumentator(app: Any) -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator

    # Its own registry: several configurations live in one process.
    Instrumentator(registry=CollectorRegistry()).instrument(app)


def _add_otel(app: Any) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider

    # An SDK tracer (spans recorded and sampled) with no exporter: the cost of the middleware
    # itself, without any export I/O.
    app.add_middleware(OpenTelemetryMiddleware, tracer_provider=TracerProvider())


def _add_auth(app: Any) -> None:
    from starlette.middleware.authentication import AuthenticationMiddleware

    app.add_middleware(AuthenticationMiddleware, backend=_peer_jwt_backend())


_PEER_MODULES = {
    "slowapi": ("slowapi",),
    "starlette_exporter": ("starlette_exporter",),
    "instrumentator": ("prometheus_fastapi_instrumentator",),
    "otel": ("opentelemetry.instrumentation.asgi", "opentelemetry.sdk.trace"),
    "auth": ("joserfc",),
}
_PEER_ADD = {
    "slowapi": _add_slowapi,
    "starlette_exporter": _add_starlette_exporter,
    "instrumentator": _add_instrumentator,
    "otel": _add_otel,
    "auth": _add_auth,
}


def _peers(*names: str, requires: bool = False, fastapi: bool = False) -> Callable[[BenchContext], Awaitable[Built]]:
    """``names`` innermost first (add_middleware puts the last added outermost)."""

    async def build(ctx: BenchContext) -> Built:
        for name in names:
            _need(*_PEER_MODULES[name])
        if fastapi:
            _need("fastapi")
        app = bare_fastapi() if fastapi else bare_starlette(requires=BENCH_PERMISSION if requires else None)
        for name in names:
            _PEER_ADD[name](app)
        headers = _bearer() if "auth" in names else []
        return Built(app, headers, layers=names)

    return build


# --------------------------------------------------------------------------- the registry

CONFIGS: tuple[BenchConfig, ...] = (
    BenchConfig("bare", "baseline", "bare", "bare Starlette app", _bare),
    BenchConfig("bare-again", "baseline", "bare", "bare Starlette app, a second copy (A/A noise floor)", _bare),
    BenchConfig("bare-fastapi", "baseline", "bare", "bare FastAPI app", _bare_fastapi),
    # ours, one layer alone (its builder straight around the bare app)
    BenchConfig(
        "ours:disabled",
        "ours",
        "bare",
        "build_stack, every feature disabled (and server.request_id_header: null)",
        _disabled,
    ),
    BenchConfig(
        "ours:context",
        "ours",
        "bare",
        "build_stack, every feature disabled but the request-id layer (X-Request-ID echoed)",
        _context,
    ),
    BenchConfig(
        "ours:auth-apikey",
        "ours",
        "bare",
        "authentication alone (API key)",
        _alone("authentication", _kw_auth, principal=False, auth="api_key"),
    ),
    BenchConfig(
        "ours:auth-jwt",
        "ours",
        "bare",
        "authentication alone (HS256 JWT)",
        _alone("authentication", _kw_auth_jwt, principal=False, auth="jwt"),
    ),
    BenchConfig(
        "ours:rbac",
        "ours",
        "bare",
        "authorization alone (RBAC)",
        _alone("authorization", _kw_rbac, principal=True),
    ),
    BenchConfig(
        "ours:ratelimit",
        "ours",
        "bare",
        "rate limit alone (memory)",
        _alone("rate_limit", _kw_ratelimit, principal=True),
    ),
    BenchConfig(
        "ours:audit",
        "ours",
        "bare",
        "audit alone (level full, SQLite)",
        _alone("audit", _kw_audit, principal=True),
    ),
    BenchConfig(
        "ours:metrics",
        "ours",
        "bare",
        "metrics alone (Prometheus)",
        _alone("metrics", _kw_metrics, principal=True),
    ),
    BenchConfig(
        "ours:bodylimit",
        "ours",
        "bare",
        "body limit alone",
        _alone("body_limit", _kw_bodylimit, principal=True),
    ),
    # ours, stacks
    BenchConfig("ours:auth+rbac", "ours-stack", "bare", "build_stack: API key + RBAC", _auth_rbac),
    BenchConfig(
        "ours:full-apikey",
        "ours-stack",
        "bare",
        "full stack: API key + RBAC + memory limit + audit (SQLite) + Prometheus",
        _full("api_key"),
    ),
    BenchConfig(
        "ours:full-jwt",
        "ours-stack",
        "bare",
        "full stack: HS256 JWT + RBAC + memory limit + audit (SQLite) + Prometheus",
        _full("jwt"),
    ),
    BenchConfig(
        "ours:full-apikey-auditsec",
        "ours-stack",
        "bare",
        "full stack as ours:full-apikey, audit level security (the default: failures and admin changes only)",
        _full("api_key", audit="security"),
    ),
    BenchConfig(
        "ours:full-apikey-timing",
        "ours-stack",
        "bare",
        "full stack as ours:full-apikey, with server.server_timing: true (a Server-Timing header)",
        _full("api_key", server_timing=True),
    ),
    BenchConfig(
        "ours:full-apikey-durable",
        "ours-stack",
        "bare",
        "full stack as ours:full-apikey, audit durability: durable (each response waits for its row's fsync)",
        _full_durable,
    ),
    BenchConfig(
        "ours:full-redis-pg",
        "ours-stack",
        "bare",
        "full stack: API key + RBAC + Redis limit + audit (PostgreSQL) + Prometheus",
        _full("api_key", services=True),
    ),
    BenchConfig(
        "ours:full-redis-pg-auditsec",
        "ours-stack",
        "bare",
        "full stack as ours:full-redis-pg, audit level security (the default)",
        _full("api_key", services=True, audit="security"),
    ),
    # Lease mode (docs/rate-limiting.md): 100 units per lease, so one Redis script per 100 requests.
    BenchConfig(
        "ours:full-redis-pg-lease",
        "ours-stack",
        "bare",
        "full stack as ours:full-redis-pg, rate limits in lease mode (lease: 100)",
        _full("api_key", services=True, lease=100),
    ),
    BenchConfig(
        "ours:full-redis-pg-auditsec-lease",
        "ours-stack",
        "bare",
        "full stack as ours:full-redis-pg-auditsec, rate limits in lease mode (lease: 100)",
        _full("api_key", services=True, audit="security", lease=100),
    ),
    # server.gc_freeze: true (as under `tframex-asgi serve`; docs/deployment.md): startup's objects
    # frozen out of the collector's full passes.
    BenchConfig(
        "ours:full-apikey-gcfreeze",
        "ours-stack",
        "bare",
        "full stack as ours:full-apikey, with server.gc_freeze: true",
        _full("api_key", gc_freeze=True),
    ),
    BenchConfig(
        "ours:full-redis-pg-gcfreeze",
        "ours-stack",
        "bare",
        "full stack as ours:full-redis-pg, with server.gc_freeze: true",
        _full("api_key", services=True, gc_freeze=True),
    ),
    BenchConfig(
        "ours:full-redis-pg-lease-gcfreeze",
        "ours-stack",
        "bare",
        "full stack as ours:full-redis-pg-lease, with server.gc_freeze: true",
        _full("api_key", services=True, lease=100, gc_freeze=True),
    ),
    # peers
    BenchConfig("peer:slowapi", "peer", "bare", "slowapi (SlowAPIASGIMiddleware, memory)", _peers("slowapi")),
    BenchConfig(
        "peer:starlette-exporter",
        "peer",
        "bare",
        "starlette-exporter PrometheusMiddleware",
        _peers("starlette_exporter"),
    ),
    BenchConfig("peer:instrumentator", "peer", "bare", "prometheus-fastapi-instrumentator", _peers("instrumentator")),
    BenchConfig("peer:otel", "peer", "bare", "opentelemetry-instrumentation-asgi (SDK tracer)", _peers("otel")),
    BenchConfig(
        "peer:auth-joserfc",
        "peer",
        "bare",
        "Starlette AuthenticationMiddleware + joserfc HS256 + @requires",
        _peers("auth", requires=True),
    ),
    BenchConfig(
        "peer:all",
        "peer-stack",
        "bare",
        "all peers: joserfc auth + @requires + slowapi + starlette-exporter + instrumentator + OTel",
        _peers("auth", "slowapi", "instrumentator", "starlette_exporter", "otel", requires=True),
    ),
    BenchConfig(
        "peer:typical",
        "peer-stack",
        "bare",
        "typical peers: joserfc auth + @requires + slowapi + starlette-exporter",
        _peers("auth", "slowapi", "starlette_exporter", requires=True),
    ),
)


# Built by name only (benchmarks.bench_rss bisects with them), not part of the overhead run.
EXTRA_CONFIGS: tuple[BenchConfig, ...] = (
    BenchConfig(
        "ours:full-apikey-auditoff",
        "ours-stack",
        "bare",
        "full stack as ours:full-apikey, audit off (SQLite persistence still on)",
        _full("api_key", audit="off"),
    ),
    BenchConfig(
        "ours:full-apikey-nometrics",
        "ours-stack",
        "bare",
        "full stack as ours:full-apikey without the metrics layer",
        _full("api_key", metrics=False),
    ),
)


def by_name(name: str) -> BenchConfig:
    for config in (*CONFIGS, *EXTRA_CONFIGS):
        if config.name == name:
            return config
    raise KeyError(name)
