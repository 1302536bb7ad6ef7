"""The seed's style served by real processes: ``tframex-asgi serve --app mod:app`` and plain
``uvicorn mod:app`` with an app built as ``tframex_asgi.TFrameXApp(enable_..., ...)``."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tframex_asgi.storage import open_storage

APP = """
from tframex_asgi import TFrameXApp
from tframex_asgi.demo import register_demo
from tframex_asgi.llm import OfflineLLM

app = TFrameXApp(
    default_llm=OfflineLLM(),
    mcp_config_file=None,
    enable_metrics=True,
    metrics_config={"backends": ["prometheus"]},
    enable_persistence=True,
    persistence_config={"backend": "sqlite"},
    enable_security=SECURITY,
    security_config={"auth_providers": ["api_key"]},
)
register_demo(app)
"""
KEY = re.compile(r"^\s+(tfx_\S+)\s*$", re.MULTILINE)


def _start(cwd: Path, *command: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = cwd / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFRAMEX_")}
    env["PYTHONPATH"] = str(cwd)
    argv = [a.replace("PORT", str(port)) for a in command]
    proc = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited early:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url, log
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the server did not come up:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


async def _runs(db: str) -> list[str]:
    async with open_storage(f"sqlite:///{db}") as storage:
        return [r["agent_name"] for r in await storage.read("agent_executions", {"agent_name": "calculator"})]


def test_tframex_asgi_serve_uses_the_apps_own_keywords(tmp_path: Path) -> None:
    (tmp_path / "seedapp.py").write_text(APP.replace("SECURITY", "True"))
    proc, url, log = _start(tmp_path, "-m", "tframex_asgi", "serve", "--app", "seedapp:app", "--port", "PORT")
    try:
        keys = KEY.findall(log.read_text())
        assert len(keys) == 1, log.read_text()  # the admin bootstrap of the app's own stack
        auth = {"X-API-Key": keys[0]}
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.get("/agents").status_code == 401
            run = c.post("/agents/calculator/run", headers=auth, json={"input": "add 2 and 40"})
            assert run.status_code == 200 and run.json()["output"] == "add returned 42"
            scrape = c.get("/metrics", headers=auth).text
            assert 'tframex_agent_executions_total{agent="calculator",status="success"} 1.0' in scrape
    finally:
        assert _stop(proc) in (0, -signal.SIGTERM), log.read_text()
    assert asyncio.run(_runs(str(tmp_path / "tframex.db"))) == ["calculator"]


def test_plain_uvicorn_serves_the_app_itself(tmp_path: Path) -> None:
    (tmp_path / "seedapp.py").write_text(APP.replace("SECURITY", "False"))
    proc, url, log = _start(tmp_path, "-m", "uvicorn", "seedapp:app", "--port", "PORT", "--log-level", "warning")
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            run = c.post("/agents/calculator/run", json={"input": "add 1 and 2"})
            assert run.status_code == 200 and run.json()["output"] == "add returned 3"
    finally:
        assert _stop(proc) in (0, -signal.SIGTERM), log.read_text()
    # Lifespan shutdown flushed the write queue: the run is recorded.
    assert asyncio.run(_runs(str(tmp_path / "tframex.db"))) == ["calculator"]


def test_serve_refuses_a_second_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tframex_asgi.cli import main

    (tmp_path / "seedapp2.py").write_text(APP.replace("SECURITY", "False"))
    (tmp_path / "e.yaml").write_text("enterprise: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["serve", "--app", "seedapp2:app", "--config", "e.yaml"]) == 2
    assert "--config: seedapp2:app configures itself" in capsys.readouterr().err
