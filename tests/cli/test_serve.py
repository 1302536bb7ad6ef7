"""`tframex-asgi serve` end to end, as the README tells a new user: a real uvicorn process on its
embedded defaults (SQLite in the working directory, security on, admin key printed once)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

KEY = re.compile(r"^\s+(tfx_\S+)\s*$", re.MULTILINE)


class Server:
    def __init__(self, cwd: Path, *extra: str, log_level: str = "warning") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TFRAMEX_")}
        self.out = cwd / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tframex_asgi", "serve", "--port", str(self.port), "--log-level", log_level, *extra],
            cwd=cwd,
            env=env,
            stdout=self.out.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"serve did not come up:\n{self.output()}")

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, as a process manager would; uvicorn shuts down gracefully and then re-raises
        the signal, so a clean stop exits with 0 or -SIGTERM (never a crash code or a timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        return int(self.proc.returncode)


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_serve_on_embedded_defaults_end_to_end(workdir: Path) -> None:
    server = Server(workdir)
    try:
        keys = KEY.findall(server.output())
        assert len(keys) == 1, server.output()
        key = keys[0]
        auth = {"X-API-Key": key}
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.get("/readyz").json() == {"status": "ready"}
            denied = c.get("/agents")
            assert denied.status_code == 401 and "www-authenticate" in denied.headers
            assert c.get("/agents", headers={"X-API-Key": "tfx_wrong"}).status_code == 401
            names = {a["name"] for a in c.get("/agents", headers=auth).json()["agents"]}
            assert names == {"assistant", "calculator", "shouter"}
            run = c.post("/agents/calculator/run", headers=auth, json={"input": "add 2 and 40"})
            assert run.status_code == 200 and run.json()["output"] == "add returned 42"
            flow = c.post("/flows/echo_then_shout/run", headers=auth, json={"input": "hi"}).json()
            assert flow["output"] == "ECHO: ECHO: HI"
            with c.stream("POST", "/agents/assistant/run", headers=auth, json={"input": "a b", "stream": True}) as s:
                assert s.headers["content-type"].startswith("text/event-stream")
                lines = [line for line in s.iter_lines() if line]
            events = [line[7:] for line in lines if line.startswith("event: ")]
            assert events[-1] == "done" and events.count("chunk") >= 2
            chat = c.post(
                "/v1/chat/completions",
                headers=auth,
                json={"model": "assistant", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert chat.json()["choices"][0]["message"]["content"] == "Echo: hi"
            assert c.get("/metrics", headers=auth).status_code == 200
    finally:
        assert server.stop() in (0, -signal.SIGTERM), server.output()
    assert (workdir / "tframex.db").exists()
    # Second start on the same database: the admin exists, no key is printed again, the old key works.
    again = Server(workdir)
    try:
        assert KEY.findall(again.output()) == []
        assert httpx.get(again.url + "/agents", headers={"X-API-Key": key}).status_code == 200
    finally:
        assert again.stop() in (0, -signal.SIGTERM), again.output()
    assert key not in json.dumps(again.output())  # the key is never logged
