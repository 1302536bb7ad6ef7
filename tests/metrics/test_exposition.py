"""The exposition as Prometheus sees it: `promtool check metrics` accepts it (one process and
multiprocess mode), and several worker processes add up in multiprocess mode."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from tests.metrics.helpers import make_stack

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[2]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is not installed (apt-get install prometheus)"
        if IN_CI:
            pytest.fail(message + " (CI=true: required)")
        pytest.skip(message)
    return path


def check(exposition: str) -> None:
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


async def test_promtool_accepts_the_exposition() -> None:
    promtool()
    stack = make_stack()
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        await c.post("/agents/calculator/run", json={"input": "add 2 and 40"})
        await c.post("/agents/assistant/run", json={"input": "BOOM"})
        await c.post("/flows/echo_then_shout/run", json={"input": "hi"})
        await c.post("/tools/add/call", json={"arguments": {"a": "x", "b": 1}})
        await c.get("/nope")
        stack.services.metrics.child("auth_failures_total", ("invalid_token",)).inc()
        text = (await c.get("/metrics")).text
    assert "tframex_tool_calls_total" in text and "tframex_flow_step_duration_seconds_bucket" in text
    check(text)


WORKER = """
import asyncio, sys
from tests.asgi_harness import request
from tests.metrics.helpers import make_stack

async def main(directory, n, scrape):
    stack = make_stack(prometheus={"enabled": True, "multiprocess_dir": directory})
    async with stack:
        for _ in range(n):
            assert (await request(stack, "GET", "/healthz")).status == 200
        if scrape:
            response = await request(stack, "GET", "/metrics")
            sys.stdout.write(response.body.decode())

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"))
"""


def test_multiprocess_workers_add_up(tmp_path: Path) -> None:
    directory = str(tmp_path / "prom")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    code = textwrap.dedent(WORKER)
    workers = [
        subprocess.Popen([sys.executable, "-c", code, directory, str(n), "0"], env=env, cwd=ROOT) for n in (30, 12)
    ]
    assert [w.wait(timeout=90) for w in workers] == [0, 0]
    scraper = subprocess.run(
        [sys.executable, "-c", code, directory, "1", "1"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=90
    )
    assert scraper.returncode == 0, scraper.stderr
    text = scraper.stdout
    assert 'tframex_http_requests_total{method="GET",route="/healthz",status_class="2xx"} 43.0' in text
    # Per-process gauges keep a pid label; finished workers' live gauges are gone.
    pids = set(re.findall(r'tframex_process_resident_memory_bytes\{pid="(\d+)"\}', text))
    assert len(pids) == 1 and pids != {str(w.pid) for w in workers}
    assert re.search(r"^tframex_http_requests_in_flight 1\.0$", text, re.M)  # only the scrape itself
    if shutil.which("promtool") or IN_CI:
        check(text)
