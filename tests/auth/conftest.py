"""Fixtures for the auth tests: services on a manual clock, a fast argon2 hasher, a probe app
that reports the identity it was given, and storage parametrised over the backends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tframex_asgi.auth.passwords import PasswordHasher
from tframex_asgi.auth.store import IdentityStore, get_identity_store
from tframex_asgi.clock import ManualClock
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.layers import build_layer
from tframex_asgi.services import Services
from tframex_asgi.storage import open_storage

FAST = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}


async def probe(scope, receive, send):
    """Reports what the app sees: user, auth scopes, state and the headers left."""
    if scope["type"] == "lifespan":
        return
    user = scope.get("user")
    body = json.dumps(
        {
            "authenticated": getattr(user, "is_authenticated", None),
            "id": getattr(user, "identity", None),
            "username": getattr(user, "display_name", None),
            "roles": sorted(getattr(user, "roles", ())),
            "method": getattr(user, "auth_method", None),
            "scopes": list(getattr(scope.get("auth"), "scopes", [])),
            "principal_is_user": scope.get("tframex", {}).get("principal") is user,
            "headers": sorted({k.decode() for k, _ in scope["headers"]}),
        }
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def make_config(providers: dict[str, Any], **security: Any) -> EnterpriseConfig:
    providers = dict(providers)
    basic = providers.get("basic")
    if basic is not None:
        providers["basic"] = {**FAST, **(basic if isinstance(basic, dict) else {"enabled": bool(basic)})}
    else:
        providers["basic"] = {**FAST, "enabled": False}
        providers["order"] = [k for k in providers if k not in ("basic", "order")]
    return EnterpriseConfig.from_kwargs(
        enable_security=True,
        security_config={"auth_providers": providers, **security},
    )


class Env:
    """A built authentication layer around ``probe`` with its services, store and client."""

    def __init__(self, services: Services, app: Any) -> None:
        self.services = services
        self.app = app
        self.clock: ManualClock = services.clock  # type: ignore[assignment]
        self.store: IdentityStore = get_identity_store(services)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")

    @property
    def rbac(self) -> Any:
        return self.services.rbac

    async def user(self, name: str = "alice", password: str | None = "correct horse", roles: tuple[str, ...] = ()):
        row = await self.store.create_user(name, password=password)
        for role in roles:
            await self.rbac.grant(row["id"], role)
        return row

    async def get(self, path: str = "/x", **headers: str) -> httpx.Response:
        return await self.client.get(path, headers=headers)


EnvFactory = Callable[..., Any]


@pytest.fixture(params=["memory"])
def storage_url(request: pytest.FixtureRequest) -> str:
    return "memory://"


@pytest.fixture
async def env_factory(storage_url: str) -> AsyncIterator[EnvFactory]:
    made: list[Env] = []

    async def make(
        providers: dict[str, Any] | None = None,
        *,
        app: Any = probe,
        extras: dict[str, Any] | None = None,
        **security: Any,
    ) -> Env:
        config = make_config(providers or {"api_key": True, "basic": True}, **security)
        services = Services(config, clock=ManualClock(), storage=open_storage(storage_url))
        services.on_startup(services.storage.connect)
        services.on_shutdown(services.storage.close)
        for part, value in (extras or {}).items():
            setattr(services, part, value)  # replaces that part of the services
        wrapped = build_layer("authentication", app, services)
        env = Env(services, wrapped)
        await services.startup()
        made.append(env)
        return env

    yield make
    for env in made:
        await env.store.drain()
        await env.client.aclose()
        await env.services.shutdown()


@pytest.fixture
async def env(env_factory: EnvFactory) -> Env:
    return await env_factory()


@pytest.fixture
def fast_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
