"""GET /audit by keyset: next_cursor pages visit every row once, bad input is a 400 naming the
parameter, and every documented query is an index range scan on SQLite and PostgreSQL (no sort,
no full scan: the same cost at 1k and 1M rows; benchmarks/bench_audit_reads.py measures it)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from starlette.authentication import AuthCredentials
from starlette.routing import Router

from tframex_asgi.audit.routes import audit_routes
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.services import Services
from tframex_asgi.storage import open_storage
from tframex_asgi.storage.base import BaseStorage
from tframex_asgi.storage.memory import MemoryStorage

USERS = ("0b4cf0a4-5a5e-4d47-9d5c-7b0a4f1d2c01", "0b4cf0a4-5a5e-4d47-9d5c-7b0a4f1d2c02")
ACTIONS = ("GET /agents", "POST /agents/{name}/run", "GET /audit", "user.update")
STATUSES = (("success", None), ("denied", "invalid_token"), ("denied", "rate_limited"), ("error", "internal_error"))
CHAINS = ("c" * 32, "d" * 32)
T0 = dt.datetime(2026, 1, 1)


def audit_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` rows; every third one shares its created_at with the one before (ties are paged by id)."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        status, reason = STATUSES[rnd.randrange(len(STATUSES))]
        rows.append(
            {
                "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                "user_id": rnd.choice((*USERS, None)),
                "action": rnd.choice(ACTIONS),
                "resource_type": "http",
                "created_at": T0 + dt.timedelta(seconds=i - i // 3),
                "status": status,
                "reason": reason,
                "request_id": f"req-{i}",
                "chain_id": CHAINS[i % 2],
                "seq": i // 2 + 1,
            }
        )
    return rows


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{request.getfixturevalue('tmp_path')}/audit.db"
    return str(request.getfixturevalue("pg_schema_dsn"))


async def open_store(url: str) -> BaseStorage:
    config = PersistenceConfig(enabled=True, connection_string=url)
    store: BaseStorage = MemoryStorage() if url == "memory://" else open_storage(url, config)
    await store.connect()
    for user in USERS:
        await store.write("users", {"id": user, "username": user[-2:]})
    return store


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[BaseStorage]:
    opened = await open_store(store_url)
    yield opened
    await opened.close()


def client_for(storage: BaseStorage, hmac_key: str | None = None) -> httpx.AsyncClient:
    audit: dict[str, Any] = {"level": "full"} | ({"hmac_key": hmac_key} if hmac_key else {})
    config = EnterpriseConfig.from_kwargs(enable_security=True, security_config={"audit": audit})
    services = Services(config, storage=storage)
    inner = Router(routes=audit_routes(config, storage, services.audit, None))

    async def as_auditor(scope: Any, receive: Any, send: Any) -> None:
        scope["auth"] = AuthCredentials(["audit.view"])  # authentication and RBAC are tested elsewhere
        await inner(scope, receive, send)

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=as_auditor), base_url="http://test")


def expected(rows: Sequence[dict[str, Any]], query: dict[str, str]) -> list[str]:
    since = dt.datetime.fromisoformat(query["since"]) if "since" in query else None
    until = dt.datetime.fromisoformat(query["until"]) if "until" in query else None
    keep = [
        r
        for r in rows
        if all(r[k] == v for k, v in query.items() if k not in ("since", "until"))
        and (since is None or r["created_at"] >= since)
        and (until is None or r["created_at"] <= until)
    ]
    keep.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
    return [r["id"] for r in keep]


QUERIES: list[dict[str, str]] = [
    {},
    {"status": "denied"},
    {"reason": "rate_limited"},
    {"user_id": USERS[0], "action": "GET /agents"},
    {"chain_id": CHAINS[1]},
    {"request_id": "req-77"},
    {"since": (T0 + dt.timedelta(seconds=100)).isoformat(), "until": (T0 + dt.timedelta(seconds=700)).isoformat()},
    {"action": "user.update", "since": (T0 + dt.timedelta(seconds=300)).isoformat()},
]


async def test_next_cursor_pages_visit_every_row_once_in_order(store: BaseStorage) -> None:
    rows = audit_rows(1500)
    await store.write_many("audit_logs", rows)
    async with client_for(store) as client:
        for query in QUERIES:
            seen: list[str] = []
            params: dict[str, str | int] = {**query, "limit": 97}
            pages = 0
            while True:
                response = await client.get("/audit", params=params)
                assert response.status_code == 200, response.text
                body = response.json()
                seen += [item["id"] for item in body["items"]]
                pages += 1
                if body["next_cursor"] is None:
                    break
                assert body["next_offset"] is None or pages == 1  # cursor pages are not offset pages
                params = {**query, "limit": 97, "cursor": body["next_cursor"]}
            assert seen == expected(rows, query), query
            assert pages == len(seen) // 97 + 1


async def test_offset_still_pages_the_same_order(store: BaseStorage) -> None:
    rows = audit_rows(300)
    await store.write_many("audit_logs", rows)
    async with client_for(store) as client:
        first = (await client.get("/audit", params={"limit": 50})).json()
        second = (await client.get("/audit", params={"limit": 50, "offset": 50})).json()
        by_cursor = (await client.get("/audit", params={"limit": 50, "cursor": first["next_cursor"]})).json()
    assert first["next_offset"] == 50
    assert [i["id"] for i in second["items"]] == [i["id"] for i in by_cursor["items"]] == expected(rows, {})[50:100]


def bad_queries(cursor: str) -> list[tuple[dict[str, str], str]]:
    tampered = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    return [
        ({"request_id": "\x00"}, "request_id"),
        ({"reason": "x" * 5000}, "reason"),
        ({"action": "a" * 101}, "action"),
        ({"chain_id": "z\x00z"}, "chain_id"),
        ({"status": "s" * 51}, "status"),
        ({"user_id": "not-a-uuid"}, "user_id"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "9999-12-31T23:59:59-05:00"}, "since"),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since"),
        ({"until": "1e400"}, "until"),
        ({"since": "nan"}, "since"),
        ({"since": "\x00"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "\x00"}, "limit"),
        ({"limit": "9" * 5000}, "limit"),
        ({"offset": "-5"}, "offset"),
        ({"cursor": "%%%not-base64"}, "cursor"),
        ({"cursor": "A" * 5000}, "cursor"),
        ({"cursor": "AAAA"}, "cursor"),
        ({"cursor": tampered}, "cursor"),
        ({"cursor": cursor, "status": "denied"}, "cursor"),  # another query's cursor
        ({"cursor": cursor, "offset": "10"}, "cursor"),
        ({"cursor": "\x00"}, "cursor"),
    ]


async def test_bad_filters_limits_dates_and_cursors_are_400_naming_the_parameter(store: BaseStorage) -> None:
    await store.write_many("audit_logs", audit_rows(30))
    async with client_for(store) as client:
        cursor = (await client.get("/audit", params={"limit": 5})).json()["next_cursor"]
        assert cursor
        for params, name in bad_queries(cursor):
            response = await client.get("/audit", params=params)
            assert response.status_code == 400, (params, response.text)
            error = response.json()["error"]
            assert set(error) == {"code", "message"} and error["code"], params
            assert name in error["message"], (params, error)


async def test_a_cursor_is_sealed_with_the_hmac_key(store: BaseStorage) -> None:
    await store.write_many("audit_logs", audit_rows(30))
    async with client_for(store, hmac_key="k" * 20) as keyed, client_for(store) as plain:
        cursor = (await keyed.get("/audit", params={"limit": 5})).json()["next_cursor"]
        assert (await keyed.get("/audit", params={"limit": 5, "cursor": cursor})).status_code == 200
        # Minted by a deployment with another key (here: none): refused, not silently followed.
        refused = await plain.get("/audit", params={"limit": 5, "cursor": cursor})
    assert refused.status_code == 400 and "cursor" in refused.json()["error"]["message"]
