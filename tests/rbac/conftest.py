"""Shared helpers for the RBAC and admin tests: storage, principals, a full stack."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest

from tframex_asgi.auth.principal import Principal
from tframex_asgi.clock import ManualClock
from tframex_asgi.config.security import RBACConfig
from tframex_asgi.rbac.engine import RBACEngine
from tframex_asgi.storage import BaseStorage, open_storage


def principal(
    perms: Iterable[str], *, id: str = "00000000-0000-0000-0000-000000000001", roles: Iterable[str] = ()
) -> Principal:
    return Principal(id=id, username="p", roles=frozenset(roles), permissions=frozenset(perms), auth_method="api_key")


@pytest.fixture
async def storage() -> AsyncIterator[BaseStorage]:
    store = open_storage("memory://")
    await store.connect()
    yield store
    await store.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def engine(storage: BaseStorage, clock: ManualClock) -> RBACEngine:
    rbac = RBACEngine(storage, clock, RBACConfig(cache_ttl=60.0))
    await rbac.start()
    return rbac


async def new_user(storage: BaseStorage, name: str) -> str:
    return await storage.write("users", {"username": name})


# Security on with API keys only; audit off so these tests do not depend on the audit package.
SECURE: dict[str, Any] = {
    "enable_security": True,
    "security_config": {"auth_providers": ["api_key"], "audit": "off"},
}


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")
