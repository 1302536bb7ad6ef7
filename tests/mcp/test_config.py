"""The MCP servers file is read strictly (errors name the dotted path), a stdio server's
environment is only its own, and a module-level app keeps its mcp_config_file."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from tframex import TFrameXApp

from tests.mcp.conftest import stdio, write_config
from tframex_asgi import build_stack
from tframex_asgi.endpoint import TFrameXEndpoint, create_app
from tframex_asgi.errors import ConfigError
from tframex_asgi.mcp.capture import DeferredMCPManager, config_file_of
from tframex_asgi.mcp.config import load_servers, parse_servers
from tframex_asgi.mcp.env import server_environment


def test_valid_file_with_defaults(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "math": stdio(env={"TOKEN": "${MY_TOKEN}", "MODE": "${MODE:-fast}"}, cwd="/tmp"),
            "web": {"type": "streamable-http", "url": "http://127.0.0.1:1/mcp", "tool_call_timeout": 5},
        },
    )
    math, web = load_servers(path, environ={"MY_TOKEN": "t0ken"})
    assert math.alias == "math" and math.type == "stdio" and math.cwd == "/tmp"
    assert dict(math.env) == {"TOKEN": "t0ken", "MODE": "fast"}
    assert (math.tool_call_timeout, math.init_step_timeout, math.ping_interval) == (30.0, 30.0, 10.0)
    assert web.url == "http://127.0.0.1:1/mcp" and web.tool_call_timeout == 5.0
    assert "t0ken" not in repr(math)  # env and headers values never reach a log through repr


@pytest.mark.parametrize(
    ("servers", "path"),
    [
        ({"a__b": stdio()}, "mcpServers.a__b"),
        ({"m": {"type": "websocket"}}, "mcpServers.m.type"),
        ({"m": {**stdio(), "comand": "x"}}, "mcpServers.m.comand"),
        ({"m": {"type": "stdio"}}, "mcpServers.m.command"),
        ({"m": {**stdio(), "args": "--x"}}, "mcpServers.m.args"),
        ({"m": {**stdio(), "env": {"A": 1}}}, "mcpServers.m.env"),
        ({"m": {**stdio(), "env": {"A": "${UNSET_FOR_TEST}"}}}, "mcpServers.m.env.A"),
        ({"m": {**stdio(), "tool_call_timeout": 0}}, "mcpServers.m.tool_call_timeout"),
        ({"m": {**stdio(), "ping_interval": True}}, "mcpServers.m.ping_interval"),
        ({"m": {"type": "streamable-http"}}, "mcpServers.m.url"),
        ({"m": {"type": "sse", "url": "ftp://x"}}, "mcpServers.m.url"),
        ({"m": {"type": "streamable-http", "url": "http://x", "command": "y"}}, "mcpServers.m.command"),
        ({"m": []}, "mcpServers.m"),
    ],
)
def test_bad_entries_name_their_path(servers: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_servers({"mcpServers": servers}, environ={})
    assert err.value.path == path


def test_file_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_servers("servers_config.json") == ()  # tframex's default name, absent: MCP off
    with pytest.raises(ConfigError, match="no such file"):
        load_servers(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{\n  nope", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON.*line 2"):
        load_servers(bad)
    bad.write_text(json.dumps({"servers": {}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="mcpServers"):
        load_servers(bad)
    # The stack is built with the file read: a bad entry fails the build, naming file and key.
    bad.write_text(json.dumps({"mcpServers": {"m": {"type": "stdio"}}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.json: mcpServers.m.command"):
        create_app(TFrameXApp(mcp_config_file=str(bad)), enable_security=False)


def test_server_environment_is_only_the_safe_set_and_the_config() -> None:
    parent = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "AWS_SECRET_ACCESS_KEY": "s",
        "DATABASE_URL": "postgresql://x",
        "TFRAMEX_LLM_API_KEY": "k",
        "SHELL": "() { evil; }",
    }
    env = server_environment({"TOKEN": "mine", "PATH": "/opt/bin"}, parent)
    assert env == {"PATH": "/opt/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "TOKEN": "mine"}


def test_module_level_app_keeps_its_config_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Built with no event loop running (this test is synchronous), as a module-level app is."""
    path = write_config(tmp_path, {"math": stdio()})
    with caplog.at_level(logging.INFO):
        app = TFrameXApp(mcp_config_file=str(path))
    assert "no running event loop" not in caplog.text
    assert isinstance(app._mcp_manager, DeferredMCPManager)
    assert config_file_of(app) == str(path)
    stack = create_app(app, enable_security=False)
    assert list(stack.services.mcp.servers) == ["math"]


async def test_the_stand_in_builds_tframex_manager_for_plain_tframex_use(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"math": stdio()})
    app = TFrameXApp(mcp_config_file=str(path))
    stats = app._mcp_manager.get_stats()  # first use, inside a loop: tframex's own manager answers
    assert stats["servers"] == {} and type(app._mcp_manager._real).__name__ == "MCPManager"
    await app._mcp_manager.progress_tracker.shutdown()


def test_endpoint_override_for_an_app_that_lost_its_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"math": stdio()})
    app = TFrameXApp(mcp_config_file=None)
    assert config_file_of(app) is None
    assert create_app(app, enable_security=False).services.mcp is None
    stack = build_stack(TFrameXEndpoint(app, mcp_config_file=str(path)), enable_security=False)
    assert list(stack.services.mcp.servers) == ["math"]


def test_an_app_without_mcp_servers_gets_no_mcp_meta_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no servers_config.json here: tframex's default means "no MCP"
    app = TFrameXApp()
    assert not any(name.startswith("tframex_") for name in app._tools)
    assert create_app(app, enable_security=False).services.mcp is None
    write_config(tmp_path, {"math": stdio()}, name="servers_config.json")
    with_file = TFrameXApp()
    assert "tframex_list_mcp_servers" in with_file._tools
    assert list(create_app(with_file, enable_security=False).services.mcp.servers) == ["math"]
