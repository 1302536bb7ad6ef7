"""The seed's integration style: ``TFrameXApp(..., enable_metrics=..., ...)`` as written, and
in-process runs authorised, measured, recorded and audited like HTTP runs."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from tframex import Message

from tframex_asgi import TFrameXApp
from tframex_asgi.auth import Principal, get_identity_store
from tframex_asgi.demo import register_demo
from tframex_asgi.errors import AuthenticationError, AuthorizationError, ConfigError, ValidationError
from tframex_asgi.llm import OfflineLLM
from tframex_asgi.storage import open_storage


def test_it_is_a_tframex_app_and_other_arguments_pass_through() -> None:
    import tframex

    app = TFrameXApp(default_llm=OfflineLLM(), mcp_config_file=None, enable_security=False)
    assert isinstance(app, tframex.TFrameXApp) and app._mcp_manager is None
    assert app.stack.layers == ("context",)  # security off, nothing else on
    with pytest.raises(ConfigError, match=r"metrics_config\.export_interval"):
        TFrameXApp(mcp_config_file=None, enable_metrics=True, metrics_config={"export_interval": 0})
    with pytest.raises(TypeError):
        TFrameXApp(mcp_config_file=None, enable_audit=True)  # not a seed keyword: tframex refuses it


async def test_development_example_records_in_process_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the seed's {"backend": "sqlite"} is ./tframex.db
    app = TFrameXApp(
        default_llm=OfflineLLM(),
        # Minimal configuration for development (the seed's, as written)
        enable_metrics=False,
        enable_persistence=True,
        persistence_config={"backend": "sqlite"},
        enable_security=False,
    )
    register_demo(app)
    async with app.run_context() as ctx:
        reply = await ctx.call_agent("calculator", "add 2 and 40")
        flow = await ctx.run_flow("echo_then_shout", Message(role="user", content="hi"))
    assert reply.content == "add returned 42" and flow.current_message.content == "ECHO: ECHO: HI"
    assert not app.services.started  # the context started the services and, last out, stopped them
    async with open_storage(f"sqlite:///{tmp_path}/tframex.db") as db:
        runs = await db.read("agent_executions", {"agent_name": "calculator"})
        assert [(r["status"], r["tool_calls_count"], r["output_message"]) for r in runs] == [
            ("success", 1, "add returned 42")
        ]
        assert [t["tool_name"] for t in await db.read("tool_calls", {"agent_execution_id": runs[0]["id"]})] == ["add"]
        flows = await db.read("flow_executions", {"flow_name": "echo_then_shout"})
        assert [f["final_output"] for f in flows] == ["ECHO: ECHO: HI"]
        steps = await db.read("flow_steps", {"execution_id": flows[0]["id"]}, order_by="step_order")
        assert [s["step_name"] for s in steps] == ["assistant", "shouter"]


@pytest.fixture
def staging_app(pg_schema_dsn: str, monkeypatch: pytest.MonkeyPatch) -> TFrameXApp:
    monkeypatch.setenv("DATABASE_URL", pg_schema_dsn)  # what the seed's staging example leaves implicit
    app = TFrameXApp(
        default_llm=OfflineLLM(),
        mcp_config_file=None,
        enable_metrics=True,
        metrics_config={"backends": ["prometheus"]},
        enable_persistence=True,
        persistence_config={"backend": "postgresql"},
        enable_security=True,
        security_config={"auth_providers": ["api_key"]},
    )
    return register_demo(app)  # type: ignore[return-value]


async def test_staging_example_in_process_runs_like_http_runs(staging_app: TFrameXApp, pg_schema_dsn: str) -> None:
    app = staging_app
    assert app.enterprise_config.persistence.url == pg_schema_dsn
    async with app:
        store = get_identity_store(app.services)
        alice = await store.create_user("alice")
        await app.services.rbac.grant(alice["id"], "user")
        await app.services.rbac.grant(alice["id"], "developer")
        bob = await store.create_user("bob")
        _, key = await store.create_api_key(alice["id"])
        as_alice = await app.principal_for("alice")
        # Every user holds the default role "user": bob acts through a key scoped to agent.view.
        as_bob = Principal(bob["id"], "bob", frozenset({"user"}), frozenset({"agent.view"}), "api_key")

        async with app.run_context(principal=as_alice) as ctx:
            assert (await ctx.call_agent("calculator", "add 2 and 40")).content == "add returned 42"
            chunks = [c.content async for c in ctx.call_agent_stream("assistant", "hello") if c.content]
            assert "".join(chunks) == "Echo: hello"
        async with app.run_context(principal=as_bob) as ctx:
            with pytest.raises(AuthorizationError, match="agent.execute"):
                await ctx.call_agent("calculator", "add 1 and 1")
        async with app.run_context() as ctx:
            with pytest.raises(AuthenticationError, match="principal="):
                await ctx.run_flow("echo_then_shout", Message(role="user", content="hi"))

        # The same app serves HTTP behind the same layers and services.
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
            http = await c.post("/agents/calculator/run", json={"input": "add 1 and 2"}, headers={"X-API-Key": key})
            assert http.status_code == 200, http.text
            scrape = (await c.get("/metrics", headers={"X-API-Key": key})).text
    # HTTP run and in-process run counted by the same collector; the refused one never ran.
    assert 'tframex_agent_executions_total{agent="calculator",status="success"} 2.0' in scrape
    assert 'tframex_agent_executions_total{agent="assistant",status="success"} 1.0' in scrape

    async with open_storage(pg_schema_dsn) as db:
        runs = await db.read("agent_executions", {"agent_name": "calculator"}, order_by="started_at")
        assert [(r["user_id"], r["status"]) for r in runs] == [(alice["id"], "success")] * 2
        assert runs[0]["metadata"]["request_id"].startswith("inproc-")
        audit = await db.read("audit_logs", {"resource_type": "http"}, order_by="created_at")
        seen = [(a["action"], a["user_id"], a["status"]) for a in audit]
        # The default audit level ("security") records refusals, in-process as over HTTP.
        assert seen == [("POST /agents/{name}/run", bob["id"], "denied"), ("POST /flows/{name}/run", None, "denied")]
        assert [a["user_agent"] for a in audit] == ["tframex-asgi in-process"] * 2
        assert audit[0]["resource_id"] == "/agents/calculator/run" and audit[0]["reason"] == "forbidden"


def test_staging_without_database_url_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"persistence_config\.connection_string.*DATABASE_URL"):
        TFrameXApp(mcp_config_file=None, enable_persistence=True, persistence_config={"backend": "postgresql"})
    assert "DATABASE_URL" not in os.environ


async def test_in_process_conversations_are_recorded_and_owned(tmp_path: Path) -> None:
    from tframex_asgi.errors import NotFoundError

    url = f"sqlite:///{tmp_path}/convo.db"
    app = TFrameXApp(
        default_llm=OfflineLLM(),
        mcp_config_file=None,
        enable_persistence=True,
        persistence_config={"connection_string": url},
        enable_security=True,
    )
    register_demo(app)
    async with app:
        store = get_identity_store(app.services)
        alice = await store.create_user("alice")
        await store.create_user("bob")
        as_alice, as_bob = await app.principal_for("alice"), await app.principal_for("bob")
        async with app.run_context(principal=as_alice, record_conversation=True) as ctx:
            await ctx.call_agent("calculator", "add 2 and 40")
            await ctx.call_agent("calculator", "add 1 and 1")
            cid = ctx.conversation_id
            with pytest.raises(ValidationError, match="records a conversation with 'calculator'"):
                await ctx.call_agent("assistant", "hi")
        assert cid is not None
        async with app.run_context(principal=as_bob, conversation_id=cid) as ctx:
            with pytest.raises(NotFoundError):  # someone else's conversation looks missing
                await ctx.call_agent("calculator", "add 3 and 3")
        async with app.run_context(principal=as_alice, conversation_id=cid) as ctx:
            assert (await ctx.call_agent("calculator", "add 3 and 3")).content == "add returned 6"
    async with open_storage(url) as db:
        convo = (await db.read("conversations", {"id": cid}))[0]
        assert convo["user_id"] == alice["id"] and convo["agent_name"] == "calculator"
        rows = await db.read("messages", {"conversation_id": cid}, order_by="created_at")
        assert [r["role"] for r in rows] == ["user", "assistant", "tool", "assistant"] * 3
        runs = await db.read("agent_executions", {"conversation_id": cid})
        assert len(runs) == 3 and {r["user_id"] for r in runs} == {alice["id"]}
