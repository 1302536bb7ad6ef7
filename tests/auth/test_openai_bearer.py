"""Issue 15.1: our API keys work as ``Authorization: Bearer tfx_...``, so the real ``openai`` SDK
runs against ``tframex-asgi serve`` with nothing but ``base_url`` and ``api_key``. Bearer keys go
through the same provider as ``X-API-Key``: same cache, same failure accounting, same audit
reasons."""

from __future__ import annotations

import asyncio
import signal

import httpx
import openai
import pytest

from tests.cli.test_serve import KEY, Server


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    yield srv
    assert srv.stop() in (0, -signal.SIGTERM), srv.output()


def test_openai_sdk_with_a_tframex_key(server) -> None:
    (key,) = KEY.findall(server.output())
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Echo: hi"
    stream = client.chat.completions.create(
        model="assistant", messages=[{"role": "user", "content": "a b"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Echo: a b"

    async def async_call() -> str | None:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as aclient:
            done = await aclient.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "x"}])
            return done.choices[0].message.content

    assert asyncio.run(async_call()) == "Echo: x"
    # The same key works on the native routes as a Bearer token too.
    assert httpx.get(server.url + "/agents", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_wrong_bearer_keys_are_counted_and_audited(server) -> None:
    (key,) = KEY.findall(server.output())
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key=wrong, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "hi"}])
    # Opaque bearer values that are not ours are not API keys (and no JWT provider is on here).
    assert httpx.get(server.url + "/agents", headers={"Authorization": "Bearer opaque-token"}).status_code == 401
    with httpx.Client(base_url=server.url, timeout=30) as c:
        rows = c.get("/audit", params={"reason": "invalid_credentials"}, headers={"X-API-Key": key}).json()["items"]
        assert {r["resource_id"] for r in rows} >= {"/v1/chat/completions", "/agents"}, rows
        assert wrong not in str(rows)
        # The default brute-force budget is 10 failures a minute per address: the 11th is blocked.
        statuses = [c.get("/agents", headers={"Authorization": f"Bearer {wrong}"}).status_code for _ in range(12)]
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    with pytest.raises(openai.RateLimitError):
        openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0).chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "hi"}]
        )
