"""Shared pieces for the rate-limit tests: an inner app, a stand-in authentication layer."""

from __future__ import annotations

from typing import Any

from tframex_asgi.auth.principal import Principal
from tframex_asgi.config.ratelimit import RateLimitConfig
from tframex_asgi.context import get_state
from tframex_asgi.events import Usage
from tframex_asgi.http import send_json
from tframex_asgi.ratelimit.backend import RedisBackend, open_backend
from tframex_asgi.types import Receive, Scope, Send


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    """200 {}; reports token usage when the request asks for it (X-Test-Tokens)."""
    if scope["type"] != "http":
        return
    tokens = dict(scope["headers"]).get(b"x-test-tokens")
    if tokens:
        get_state(scope)["usage"] = Usage(prompt_tokens=int(tokens), completion_tokens=0)
    await send_json(send, 200, b"{}")


def principal(user_id: str = "u1", roles: tuple[str, ...] = ("user",), api_key_id: str | None = None) -> Principal:
    return Principal(
        id=user_id,
        username=user_id,
        roles=frozenset(roles),
        permissions=frozenset(),
        auth_method="api_key" if api_key_id else "basic",
        api_key_id=api_key_id,
    )


class FakeAuth:
    """Sets scope["user"] from test headers (X-Test-User, X-Test-Roles, X-Test-Key) like the
    real authentication layer would from credentials."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", ()))
        user = headers.get(b"x-test-user")
        if user:
            roles = tuple(r for r in headers.get(b"x-test-roles", b"user").decode().split(",") if r)
            key = headers.get(b"x-test-key")
            scope["user"] = principal(user.decode(), roles, key.decode() if key else None)
        await self.app(scope, receive, send)


def config(**kwargs: Any) -> RateLimitConfig:
    """An enabled section (validated on construction, as every config section)."""
    kwargs.setdefault("enabled", True)
    return RateLimitConfig(**kwargs)


def redis_backend(**kwargs: Any) -> RedisBackend:
    """``open_backend`` on a ``redis://`` config, typed as the Redis implementation."""
    backend = open_backend(config(**kwargs))
    assert isinstance(backend, RedisBackend)
    return backend
