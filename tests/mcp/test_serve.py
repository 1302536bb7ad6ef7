"""The issue's scenario end to end: a module-level ``TFrameXApp(mcp_config_file=...)`` served by a
real ``tframex-asgi serve --app mymod:app`` process (uvicorn, lifespan, embedded SQLite), its MCP
server a stdio child holding only the environment its config names, stopped cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx

from tests.cli.test_serve import KEY
from tests.conftest import free_port
from tests.mcp.conftest import stdio, wait_until, write_config

MODULE = """
from tframex import TFrameXApp
from tframex_asgi.llm.offline import OfflineLLM

app = TFrameXApp(default_llm=OfflineLLM(), mcp_config_file="mcp.json")


@app.agent(name="calc", description="adds with an MCP tool", mcp_tools_from_servers="ALL")
async def calc() -> None: ...
"""

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
    "DATABASE_URL": "postgresql://user:db-secret@db/x",
    "TFRAMEX_LLM_API_KEY": "sk-llm-secret",
}


def test_module_level_app_served_by_the_cli(tmp_path: Path) -> None:
    write_config(tmp_path, {"math": stdio(env={"GREETING": "hello"})})
    (tmp_path / "mymod.py").write_text(MODULE, encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFRAMEX_")} | SECRETS
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tframex_asgi", "serve", "--app", "mymod:app", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )

    def output() -> str:
        return log.read_text(errors="replace")

    def up() -> bool:
        assert proc.poll() is None, output()
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, "tframex-asgi serve to come up")
        keys = KEY.findall(output())
        assert len(keys) == 1, output()
        auth = {"X-API-Key": keys[0]}
        with httpx.Client(base_url=url, headers=auth, timeout=60) as c:
            ready = c.get("/readyz")
            assert ready.status_code == 200 and ready.json()["mcp"]["math"]["state"] == "up", ready.text
            names = {t["name"] for t in c.get("/tools").json()["tools"]}
            assert {"math__add", "math__fail", "math__env"} <= names
            calc = next(a for a in c.get("/agents").json()["agents"] if a["name"] == "calc")
            assert "math__add" in calc["tools"]
            assert c.post("/tools/math__add/call", json={"arguments": {"a": 2, "b": 3}}).json()["result"] == "5"
            for name, value in SECRETS.items():
                got = c.post("/tools/math__env/call", json={"arguments": {"name": name}}).json()["result"]
                assert got == "<unset>", f"{name} leaked to the MCP server as {got!r}"
            assert c.post("/tools/math__env/call", json={"arguments": {"name": "GREETING"}}).json()["result"] == "hello"
            run = c.post("/agents/calc/run", json={"input": '/call math__add {"a": 40, "b": 2}'})
            assert run.status_code == 200 and run.json()["output"] == "math__add returned 42", run.text
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    text = output()
    assert code in (0, -signal.SIGTERM), text
    for bad in ("no running event loop", "Failed to initialize MCPManager", "cancel scope", "Traceback"):
        assert bad not in text, text
    for value in SECRETS.values():
        assert value not in text
    # The write queue was flushed at shutdown: the endpoint's five calls and the agent's one are rows.
    with sqlite3.connect(tmp_path / "tframex.db") as db:
        rows = db.execute("SELECT tool_name, status FROM tool_calls WHERE tool_type = 'mcp'").fetchall()
    assert sorted(rows).count(("math__add", "success")) == 2 and len(rows) == 6, rows


def test_a_bad_servers_file_stops_serve_with_the_dotted_path(tmp_path: Path) -> None:
    write_config(tmp_path, {"math": {"type": "stdio", "args": ["x.py"]}})
    (tmp_path / "mymod.py").write_text(MODULE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "tframex_asgi", "serve", "--app", "mymod:app", "--port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "mcp.json: mcpServers.math.command: a stdio server needs a non-empty command" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
