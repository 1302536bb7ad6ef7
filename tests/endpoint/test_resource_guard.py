"""Issue 11.8: per-agent, per-tool and per-flow permissions (``rbac.resources``) enforced where
the run happens, so no route or nesting gets around them; conversation writes need data.write.

Before, a rule on one agent's route was bypassed through ``/v1/chat/completions`` with
``model=<agent>``, through a flow whose step is the agent, and through another agent calling it
as a tool; and a key scoped to ``agent.execute`` alone created conversations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.rbac.conftest import client
from tframex_asgi import build_stack
from tframex_asgi.auth.store import get_identity_store
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint

RESOURCES = {
    "agents": {"shouter": "shout.use"},
    "tools": {"add": "math.use"},
    "flows": {"echo_then_shout": "flow.loud"},
}


def app_with_relay() -> Any:
    app = build_demo_app()

    @app.agent(name="relay", callable_agents=["shouter"], system_prompt="Delegate.")
    async def relay() -> None: ...

    return app


class Env:
    def __init__(self, stack: Any, http: httpx.AsyncClient) -> None:
        self.stack, self.http = stack, http

    async def key_for(self, name: str, roles: list[str], scopes: list[str] | None = None) -> str:
        store = get_identity_store(self.stack.services)
        user = await store.create_user(name)
        for role in roles:
            await self.stack.services.rbac.grant(user["id"], role)
        return (await store.create_api_key(user["id"], scopes=scopes or ()))[1]

    async def post(self, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(path, headers={"X-API-Key": key}, json=body)

    async def chat(self, key: str, model: str, text: str, stream: bool = False) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
        return await self.post(key, "/v1/chat/completions", body)


@pytest.fixture
async def env(tmp_path) -> AsyncIterator[Env]:
    stack = build_stack(
        TFrameXEndpoint(app_with_relay()),
        enable_persistence=True,
        persistence_config={"connection_string": f"sqlite:///{tmp_path}/guard.db"},
        enable_security=True,
        security_config={
            "auth_providers": ["api_key"],
            "rbac": {
                "roles": {"loud": {"permissions": ["shout.use", "math.use", "flow.loud"]}},
                "resources": RESOURCES,
            },
            "audit": "off",
        },
    )
    async with stack, client(stack) as http:
        yield Env(stack, http)


async def test_a_guarded_agent_is_refused_on_every_route(env: Env) -> None:
    alice = await env.key_for("alice", [])  # the default role: agent.execute, tool.call, flow.execute, ...
    bob = await env.key_for("bob", ["loud"])
    admin = await env.key_for("root", ["admin"])  # admin holds every declared permission

    for key, allowed in ((alice, False), (bob, True), (admin, True)):
        run = await env.post(key, "/agents/shouter/run", {"input": "hi"})
        chat = await env.chat(key, "shouter", "hi")
        streamed = await env.chat(key, "shouter", "hi", stream=True)
        flow = await env.post(key, "/flows/echo_then_shout/run", {"input": "hi"})
        relayed = await env.post(key, "/agents/relay/run", {"input": '/call shouter {"input_message": "psst"}'})
        if allowed:
            assert run.status_code == 200 and run.json()["output"] == "ECHO: HI"
            assert chat.json()["choices"][0]["message"]["content"] == "ECHO: HI"
            assert streamed.status_code == 200 and "ECHO:" in streamed.text
            assert flow.json()["output"] == "ECHO: ECHO: HI"
            assert relayed.json()["output"] == "shouter returned ECHO: PSST"
        else:
            for refused in (run, chat, streamed, flow):
                assert refused.status_code == 403, refused.text
                assert refused.json()["error"]["code"] == "forbidden"
                assert "shout.use" in refused.json()["error"]["message"] or "flow.loud" in refused.text
            # Called as a tool by an agent alice may run: the sub-agent does not run, the caller
            # gets the refusal as the tool's result.
            assert relayed.status_code == 200
            assert "ECHO: PSST" not in relayed.json()["output"]
            assert "missing permission shout.use" in relayed.json()["output"]
    # Unguarded agents still run for everyone who holds the route's permission.
    assert (await env.post(alice, "/agents/assistant/run", {"input": "hi"})).json()["output"] == "Echo: hi"


async def test_flow_steps_need_their_agents_permissions(env: Env) -> None:
    # flow.loud alone: the flow may start, but its shouter step is refused.
    only_flow = await env.key_for("carol", [], scopes=None)
    rbac = env.stack.services.rbac
    await rbac.create_role("flowonly", ["flow.loud"])
    carol = (await get_identity_store(env.stack.services).get_user_by_username("carol"))["id"]
    await rbac.grant(carol, "flowonly")
    resp = await env.post(only_flow, "/flows/echo_then_shout/run", {"input": "hi"})
    assert resp.status_code == 403, resp.text
    assert "step 'shouter'" in resp.json()["error"]["message"] and "shout.use" in resp.json()["error"]["message"]


async def test_guarded_tools_directly_and_inside_a_run(env: Env) -> None:
    alice = await env.key_for("alice", [])
    bob = await env.key_for("bob", ["loud"])
    direct = await env.post(alice, "/tools/add/call", {"arguments": {"a": 1, "b": 2}})
    assert direct.status_code == 403 and "math.use" in direct.json()["error"]["message"]
    assert (await env.post(bob, "/tools/add/call", {"arguments": {"a": 1, "b": 2}})).json()["result"] == 3
    # The calculator agent is not guarded, its add tool is.
    inside = await env.post(alice, "/agents/calculator/run", {"input": "add 2 and 40"})
    assert inside.status_code == 200 and "42" not in inside.json()["output"]
    assert "missing permission math.use" in inside.json()["output"]
    ok = await env.post(bob, "/agents/calculator/run", {"input": "add 2 and 40"})
    assert ok.json()["output"] == "add returned 42"
    # word_count has no rule: it runs for alice.
    words = await env.post(alice, "/tools/word_count/call", {"arguments": {"text": "a b c"}})
    assert words.json()["result"] == 3


async def test_conversation_writes_need_data_write(env: Env) -> None:
    scoped = await env.key_for("dave", [], scopes=["agent.execute"])
    refused = await env.post(scoped, "/agents/assistant/run", {"input": "hi"})
    assert refused.status_code == 403 and "data.write" in refused.json()["error"]["message"]
    assert await env.stack.services.storage.count("conversations") == 0
    # Stateless OpenAI-style runs store nothing: agent.execute is enough.
    chat = await env.chat(scoped, "assistant", "hi")
    assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"] == "Echo: hi"
    writer = await env.key_for("erin", [], scopes=["agent.execute", "data.write"])
    stored = await env.post(writer, "/agents/assistant/run", {"input": "hi"})
    assert stored.status_code == 200 and stored.json()["conversation_id"]
    assert await env.stack.services.storage.count("conversations") == 1


def test_resource_rules_are_validated() -> None:
    from tframex_asgi import ConfigError, EnterpriseConfig

    with pytest.raises(ConfigError) as err:
        EnterpriseConfig.from_kwargs(security_config={"rbac": {"resources": {"agents": {"payroll": "Payroll Run"}}}})
    assert "security_config.rbac.resources.agents.payroll" in str(err.value)
    with pytest.raises(ConfigError) as err:
        EnterpriseConfig.from_kwargs(security_config={"rbac": {"resources": {"models": {}}}})
    assert "models" in str(err.value)


def test_real_serve_and_openai_sdk_obey_resource_rules(tmp_path) -> None:
    import openai

    from tests.auth.test_revocation_propagation import KEY, Serve, cli

    config = tmp_path / "tframex.yaml"
    config.write_text(
        "enterprise:\n"
        "  persistence: {enabled: true, connection_string: 'sqlite:///./tframex.db'}\n"
        "  security:\n"
        "    auth_providers: [api_key]\n"
        "    rbac: {resources: {agents: {shouter: shout.use}}}\n"
    )
    server = Serve(tmp_path, config)
    try:
        (admin_key,) = KEY.findall(server.output())
        (alice_key,) = KEY.findall(cli(tmp_path, config, "users", "create", "alice", "--api-key"))
        alice = openai.OpenAI(base_url=server.url + "/v1", api_key=alice_key, max_retries=0)
        hi = [{"role": "user", "content": "hi"}]
        assert alice.chat.completions.create(model="assistant", messages=hi).choices[0].message.content == "Echo: hi"
        with pytest.raises(openai.PermissionDeniedError) as denied:
            alice.chat.completions.create(model="shouter", messages=hi)
        assert "shout.use" in str(denied.value)
        with pytest.raises(openai.PermissionDeniedError):
            alice.chat.completions.create(model="shouter", messages=hi, stream=True)
        # /v1/models lists only what the caller may run; a guarded model looks missing.
        assert {m.id for m in alice.models.list().data} == {"assistant", "calculator"}
        with pytest.raises(openai.NotFoundError):
            alice.models.retrieve("shouter")
        with pytest.raises(openai.PermissionDeniedError):
            alice.responses.create(model="shouter", input="hi")
        with pytest.raises(openai.PermissionDeniedError):
            alice.responses.create(model="shouter", input="hi", stream=True)
        assert alice.responses.create(model="assistant", input="hi").output_text == "Echo: hi"
        admin = openai.OpenAI(base_url=server.url + "/v1", api_key=admin_key, max_retries=0)
        assert admin.chat.completions.create(model="shouter", messages=hi).choices[0].message.content == "ECHO: HI"
        assert "shouter" in {m.id for m in admin.models.list().data}
        assert admin.responses.create(model="shouter", input="hi").output_text == "ECHO: HI"
        # A stored response writes a conversation: data.write, as POST /agents/{name}/run needs.
        import httpx

        made = httpx.post(
            server.url + "/admin/api-keys",
            headers={"X-API-Key": admin_key},
            json={"name": "runner", "scopes": ["agent.execute"]},
        )
        runner = openai.OpenAI(base_url=server.url + "/v1", api_key=made.json()["key"], max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as no_write:
            runner.responses.create(model="assistant", input="hi")
        assert "data.write" in str(no_write.value)
        assert runner.responses.create(model="assistant", input="hi", store=False).output_text == "Echo: hi"
    finally:
        server.stop()
