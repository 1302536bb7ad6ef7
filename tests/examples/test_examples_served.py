"""Each example run exactly as its docstring says, under a real server, in an empty directory:
the first start prints an admin API key once, and the docstring's first request works with it.
A restart keeps the users (no second key; the first still works)."""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[2]
KEY = re.compile(r"^\s+(tfx_\S+)\s*$", re.MULTILINE)
EXAMPLES = ["starlette_app", "fastapi_app", "quart_app", "legacy_asgi2_app", "wsgi_app"]


def docstring_lines(name: str, label: str) -> str:
    text = (ROOT / "examples" / f"{name}.py").read_text()
    found = re.search(rf"^{label}:\s+(.+)$", text, re.MULTILINE)
    assert found, f"examples/{name}.py has no '{label}:' line"
    return found.group(1)


class Served:
    def __init__(self, name: str, cwd: Path) -> None:
        command = docstring_lines(name, "Run").split("   (")[0].split()  # "hypercorn x:app   (or uvicorn)"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if command[0] == "uvicorn":
            argv = [sys.executable, "-m", "uvicorn", *command[1:], "--port", str(self.port)]
        elif command[0] == "hypercorn":
            argv = [sys.executable, "-m", "hypercorn", *command[1:], "--bind", f"127.0.0.1:{self.port}"]
        else:
            raise AssertionError(f"unknown server in {command}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TFRAMEX_") and k != "DATABASE_URL"}
        env["PYTHONPATH"] = str(ROOT)
        self.log = cwd / f"{name}-{self.port}.log"
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{name} exited early:\n{self.output()}")
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"{name} did not come up:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def first_request(name: str, url: str, key: str) -> httpx.Response:
    """The docstring's `Then:  curl -H "X-API-Key: $KEY" URL` line, with the printed key."""
    line = docstring_lines(name, "Then")
    found = re.fullmatch(r'curl -H "X-API-Key: \$KEY" http://127\.0\.0\.1:8000(\S*)', line)
    assert found, line
    return httpx.get(url + found.group(1), headers={"X-API-Key": key}, timeout=30)


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_prints_a_key_that_logs_in(name: str, tmp_path: Path) -> None:
    server = Served(name, tmp_path)
    try:
        keys = KEY.findall(server.output())
        assert len(keys) == 1, server.output()
        key = keys[0]
        answer = first_request(name, server.url, key)
        assert answer.status_code == 200, answer.text
        if name != "wsgi_app":  # the WSGI app does not echo its caller
            assert "admin" in answer.text  # the request ran as the bootstrapped admin
        assert first_request(name, server.url, "tfx_" + "x" * 43).status_code == 401
    finally:
        server.stop()
    assert (tmp_path / "tframex.db").exists()
    if name == "starlette_app":  # a restart keeps the users: no second key, the first one works
        # The README's way to a new key when none is printed: `tframex-asgi keys create admin`.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TFRAMEX_")}
        made = subprocess.run(
            [sys.executable, "-m", "tframex_asgi", "keys", "create", "admin"], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        (new_key,) = KEY.findall(made.stdout)
        again = Served(name, tmp_path)
        try:
            assert KEY.findall(again.output()) == []
            assert first_request(name, again.url, key).status_code == 200
            assert first_request(name, again.url, new_key).status_code == 200
        finally:
            again.stop()
