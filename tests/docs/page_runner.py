"""Run one docs page's marked blocks in order, in this process (started by test_doc_samples.py).

Usage: ``python -m tests.docs.page_runner BLOCKS.json`` in the page's working directory. Each page
runs in its own process because samples may switch process-wide state (Prometheus multiprocess
mode, the default registry, environment variables).

``serve`` blocks are clients of a running ``tframex-asgi serve``: the first one starts it, with its
defaults, in the subdirectory ``_serve`` (its own ``./tframex.db``), and in every such block the
placeholders a reader replaces, ``http://127.0.0.1:8000`` and ``tfx_...`` (the key ``serve`` printed
at first start), are replaced with that server's address and key.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

KEY_LINE = re.compile(r"^\s+(tfx_\S+)\s*$")


class Server:
    """``tframex-asgi serve`` on a free loopback port, as a reader starts it."""

    def __init__(self, timeout: float = 30.0) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        workdir = Path("_serve")
        workdir.mkdir(exist_ok=True)
        self.output: list[str] = []
        self.key: str | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tframex_asgi", "serve", "--port", str(port)],
            cwd=workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("tframex-asgi serve did not start:\n" + "".join(self.output))
            time.sleep(0.1)

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            found = KEY_LINE.match(line)
            if found and self.key is None:
                self.key = found.group(1)

    def _ready(self) -> bool:
        if self.key is None:
            return False
        import httpx

        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def client_code(self, code: str) -> str:
        assert self.key is not None
        return code.replace("http://127.0.0.1:8000", self.url).replace("tfx_...", self.key)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main(path: str) -> None:
    from tframex_asgi.config import EnterpriseConfig, loads_config

    page = json.loads(Path(path).read_text(encoding="utf-8"))
    environ = dict(os.environ)
    namespace: dict[str, object] = {"__name__": "__main__"}
    server: Server | None = None
    try:
        for block in page["blocks"]:
            kind, arg, code, where = block["kind"], block["arg"], block["code"], block["where"]
            if kind == "file":
                if not arg:
                    raise SystemExit(f"{where}: a file marker needs a name")
                target = Path(arg)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(code, encoding="utf-8")
            elif kind == "python":
                exec(compile(code, where, "exec"), namespace)  # noqa: S102 - our own docs
            elif kind == "serve":
                server = server or Server()
                exec(compile(server.client_code(code), where, "exec"), namespace)  # noqa: S102 - our own docs
            elif kind == "config":
                loads_config(code, source=where, environ=environ)
            elif kind == "config-defaults":
                if loads_config(code, source=where, environ={}) != EnterpriseConfig():
                    raise SystemExit(f"{where}: the defaults block differs from EnterpriseConfig()")
            else:
                raise SystemExit(f"{where}: unknown test marker kind {kind!r}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main(sys.argv[1])
