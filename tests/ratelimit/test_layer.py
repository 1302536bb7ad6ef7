"""The rate-limit layer: the parts it shares in services, and the config it reads."""

from __future__ import annotations

import pytest

from tests.asgi_harness import request
from tests.ratelimit.helpers import ok_app
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.errors import ConfigError
from tframex_asgi.layers import build_layer
from tframex_asgi.ratelimit import AuthFailureGuard, RateLimitMiddleware, RateLimitStats
from tframex_asgi.services import Services


def services(**rate_limiting: object) -> Services:
    cfg = EnterpriseConfig.from_mapping({"security": {"rate_limiting": {"enabled": True, **rate_limiting}}})
    return Services(cfg)


async def test_build_layer_shares_stats_guard_and_backend() -> None:
    svc = services(default="1/minute", tiers={"admin": "10/minute"}, routes={"POST /agents/{name}/run": "5/minute"})
    app = build_layer("rate_limit", ok_app, svc)
    assert isinstance(app, RateLimitMiddleware)
    assert isinstance(svc.ratelimit_stats, RateLimitStats)
    assert isinstance(svc.auth_failures, AuthFailureGuard)
    assert svc.ratelimit is app.backend
    async with _started(svc):
        assert (await request(app, "GET", "/a")).status == 200
        assert (await request(app, "GET", "/a")).status == 429
    assert svc.ratelimit_stats.as_dict()["rejected_total"] == 1


async def test_one_redis_pool_per_process_closed_at_shutdown(redis_url: str, redis_prefix: str) -> None:
    svc = services(storage=redis_url, key_prefix=redis_prefix)
    build_layer("rate_limit", ok_app, svc)
    build_layer("rate_limit", ok_app, svc)  # a second stack on the same services reuses the pool
    assert list(svc.redis_pools) == [redis_url]
    async with _started(svc):
        assert await svc.ratelimit.ping()


def test_disabled_adds_no_layer() -> None:
    svc = Services(EnterpriseConfig.from_mapping({}))
    assert build_layer("rate_limit", ok_app, svc) is None


@pytest.mark.parametrize(
    ("key", "value", "path"),
    [
        ("routes", {"POST agents": "1/minute"}, "enterprise.security.rate_limiting.routes.POST agents"),
        ("routes", {"/a": "lots"}, "enterprise.security.rate_limiting.routes./a"),
        ("tiers", {"gold": "0/minute"}, "enterprise.security.rate_limiting.tiers.gold"),
        ("token_routes", ["GET"], "enterprise.security.rate_limiting.token_routes"),
        ("storage", "mongodb://x", "enterprise.security.rate_limiting.storage"),
        ("max_connections", 0, "enterprise.security.rate_limiting.max_connections"),
    ],
)
def test_config_errors_name_the_path(key: str, value: object, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        EnterpriseConfig.from_mapping({"security": {"rate_limiting": {"enabled": True, key: value}}}, "enterprise")
    assert info.value.path == path


class _started:
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    async def __aenter__(self) -> None:
        await self.svc.startup()

    async def __aexit__(self, *exc: object) -> None:
        await self.svc.shutdown()
