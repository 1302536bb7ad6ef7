"""Multiprocess Prometheus: `http_requests_in_flight` counts what is in flight now, across live
workers (an idle worker that served, or scraped, a request earlier adds nothing)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import asyncio, sys
from tests.asgi_harness import request
from tests.metrics.helpers import make_stack

async def main(directory, role):
    stack = make_stack(prometheus={"enabled": True, "multiprocess_dir": directory})
    async with stack:
        if role == "idle":
            # Serve a scrape (its own in-flight request is sampled then), stay alive, idle.
            assert (await request(stack, "GET", "/metrics")).status == 200
            assert (await request(stack, "GET", "/healthz")).status == 200
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        else:
            sys.stdout.write((await request(stack, "GET", "/metrics")).body.decode())

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_in_flight_is_not_overcounted_by_idle_workers(tmp_path: Path) -> None:
    directory = str(tmp_path / "prom")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    code = textwrap.dedent(WORKER)
    idle = subprocess.Popen(
        [sys.executable, "-c", code, directory, "idle"], env=env, cwd=ROOT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert idle.stdout is not None and idle.stdout.readline().strip() == "ready"
        scraper = subprocess.run(
            [sys.executable, "-c", code, directory, "scrape"], env=env, cwd=ROOT,
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert scraper.returncode == 0, scraper.stderr
        # One request in flight in all live workers: the scrape itself.
        assert re.findall(r"^tframex_http_requests_in_flight (\S+)$", scraper.stdout, re.M) == ["1.0"], scraper.stdout
    finally:
        assert idle.stdin is not None
        idle.stdin.write("\n")
        idle.stdin.close()
        assert idle.wait(timeout=60) == 0
