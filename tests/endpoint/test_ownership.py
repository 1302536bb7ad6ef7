"""Conversation ownership for stored users and for token identities (JWT subjects with no users row)."""

from __future__ import annotations

import time

import httpx
from joserfc import jwt
from joserfc.jwk import OctKey

from tframex_asgi import build_stack
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint

SECRET = "s" * 48


def token(sub: str, roles: list[str]) -> dict[str, str]:
    claims = {"sub": sub, "roles": roles, "exp": int(time.time()) + 300, "iat": int(time.time())}
    return {"Authorization": "Bearer " + jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(SECRET))}


def jwt_stack():
    return build_stack(
        TFrameXEndpoint(build_demo_app()),
        security_config={"auth_providers": {"jwt": {"enabled": True, "algorithms": ["HS256"], "secret": SECRET}}},
    )


async def test_token_identities_own_their_conversations() -> None:
    stack = jwt_stack()
    alice, bob = token("alice", ["user"]), token("bob", ["user"])
    admin = token("root", ["admin"])
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        run = await c.post("/agents/assistant/run", headers=alice, json={"input": "mine"})
        assert run.status_code == 200, run.text
        cid = run.json()["conversation_id"]
        assert (await c.post("/agents/assistant/run", headers=bob, json={"input": "bob's"})).status_code == 200

        assert (await c.get(f"/conversations/{cid}", headers=alice)).status_code == 200
        # Another subject: the conversation looks missing, and cannot be continued either.
        assert (await c.get(f"/conversations/{cid}", headers=bob)).status_code == 404
        cont = await c.post("/agents/assistant/run", headers=bob, json={"input": "x", "conversation_id": cid})
        assert cont.status_code == 404
        assert [r["id"] for r in (await c.get("/conversations", headers=alice)).json()["conversations"]] == [cid]
        assert len((await c.get("/conversations", headers=bob)).json()["conversations"]) == 1
        # system.admin sees everyone's rows.
        everyone = (await c.get("/conversations", headers=admin, params={"all": "true"})).json()["conversations"]
        assert len(everyone) == 2
        assert (await c.get(f"/conversations/{cid}", headers=admin)).status_code == 200


async def test_a_token_subject_cannot_pass_for_the_stored_user_with_that_id() -> None:
    stack = build_stack(
        TFrameXEndpoint(build_demo_app()),
        security_config={
            "auth_providers": {
                "api_key": True,
                "jwt": {"enabled": True, "algorithms": ["HS256"], "secret": SECRET},
            }
        },
    )
    from tframex_asgi.auth.store import get_identity_store

    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        store = get_identity_store(stack.services)
        user = await store.create_user("carol")
        _, key = await store.create_api_key(str(user["id"]))
        run = await c.post("/agents/assistant/run", headers={"X-API-Key": key}, json={"input": "secret"})
        cid = run.json()["conversation_id"]
        forged = token(str(user["id"]), ["user"])  # a JWT whose subject is carol's users.id
        assert (await c.get(f"/conversations/{cid}", headers=forged)).status_code == 404
        assert (await c.get(f"/conversations/{cid}", headers={"X-API-Key": key})).status_code == 200
