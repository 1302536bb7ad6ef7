"""SIGTERM with requests in flight: every response the clients received has exactly one audit row."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tframex_asgi.audit.export import verify_storage
from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.storage import open_storage

HMAC = b"server-app-hmac-key-0123"


def start_server(tmp_path: Path, url: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "AUDIT_TEST_DB": url,
        "AUDIT_TEST_SPILL": str(tmp_path / "spill.jsonl"),
        "PYTHONPATH": os.getcwd(),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "tests.audit.server_app:create",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--lifespan",
            "on",
            "--no-proxy-headers",
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base, log
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start:\n" + log.read_text())


async def fire(base: str, proc: subprocess.Popen[bytes]) -> tuple[int, int]:
    """Start slow and rejected requests, SIGTERM once enough are in flight; (responses, polls)."""
    limits = httpx.Limits(max_keepalive_connections=0)  # one connection per request: no idle-socket races
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(i: int) -> int:
            try:
                if i % 4 == 3:
                    response = await client.get("/secret", headers={"x-api-key": f"tfx_wrong_{i}"})
                else:
                    response = await client.get("/slow", params={"s": "1.5"})
            except httpx.TransportError:
                return 0  # refused after SIGTERM: the app never saw it
            assert response.status_code == (401 if i % 4 == 3 else 200)
            return 1

        tasks = [asyncio.create_task(one(i)) for i in range(60)]
        polls = 0
        while True:
            polls += 1
            if (await client.get("/inflight")).json()["in_flight"] >= 20:
                break
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        late = [asyncio.create_task(one(100 + i)) for i in range(10)]  # racing the shutdown
        done = await asyncio.gather(*tasks, *late)
    return sum(done), polls


async def audit_rows(url: str) -> list[dict[str, Any]]:
    store = open_storage(url, PersistenceConfig(enabled=True, connection_string=url))
    async with store:
        rows: list[dict[str, Any]] = await store.read("audit_logs")
        report = await verify_storage(store, HMAC)
    assert report.ok, report.problems
    assert report.open_chains == [] and report.closed_chains == 1
    return rows


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/audit.db"
    return str(request.getfixturevalue("pg_schema_dsn"))


def test_sigterm_with_requests_in_flight_loses_nothing(tmp_path: Path, db_url: str) -> None:
    url = db_url
    proc, base, log = start_server(tmp_path, url)
    try:
        responses, polls = asyncio.run(fire(base, proc))
        # uvicorn re-raises the signal once its graceful shutdown (lifespan included) is over.
        assert proc.wait(60) in (0, -signal.SIGTERM), log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = asyncio.run(audit_rows(url))
    requests = [r for r in rows if r["action"] != "audit.chain_end"]
    assert responses >= 20
    # Every response received (plus the startup health check and the in-flight polls) has one row.
    assert len(requests) == responses + polls + 1
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["request_id"] for r in requests}) == len(requests)
    slow = [r for r in requests if r["resource_id"] == "/slow"]
    assert all(r["status"] == "success" for r in slow)
    denied = [r for r in requests if r["resource_id"] == "/secret"]
    assert denied and all(r["reason"] == "invalid_credentials" for r in denied)
    assert not (tmp_path / "spill.jsonl").exists() or (tmp_path / "spill.jsonl").stat().st_size == 0
