"""`tframex-asgi audit tail|verify|export` against a SQLite database and a moto S3 server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.audit.conftest import ALICE, ListSink
from tframex_asgi.audit.logger import AuditLogger
from tframex_asgi.cli import main
from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.storage import open_storage

KEY = "cli-test-hmac-key-0123456789"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def populate(url: str, n: int, *, close: bool = True, users: bool = True) -> None:
    store = open_storage(url, PersistenceConfig(enabled=True, connection_string=url))
    async with store:
        if users:
            await store.write("users", {"id": ALICE.id, "username": "alice"})
        sink = ListSink()
        audit = AuditLogger(sink, AuditConfig(level="full", hmac_key=KEY))
        for i in range(n):
            scope = {
                "type": "http",
                "method": "GET",
                "path": f"/items/{i}",
                "headers": [],
                "query_string": b"",
                "tframex": {"request_id": f"req-{i}", "client_ip": "127.0.0.1", "principal": ALICE},
            }
            audit.log_request(scope, status=200 if i % 3 else 401, duration_ms=i, route="/items/{name}")
        if close:
            audit.close()
        await store.write_many("audit_logs", sink.table("audit_logs"))


async def tamper(url: str, seq: int, **values: Any) -> None:
    store = open_storage(url, PersistenceConfig(enabled=True, connection_string=url))
    async with store:
        row = (await store.read("audit_logs", {"seq": seq}))[0]
        await store.update("audit_logs", row["id"], values)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path}/audit.db"
    config = tmp_path / "enterprise.yaml"
    config.write_text(
        "enterprise:\n"
        f"  persistence: {{enabled: true, connection_string: '{url}'}}\n"
        f"  security: {{audit: {{level: full, hmac_key: '{KEY}'}}}}\n"
    )
    return url, str(config)


def test_verify_passes_then_reports_the_first_tampered_row(setup: tuple[str, str], capsys: Any) -> None:
    url, config = setup
    run(populate(url, 6))
    assert main(["audit", "verify", "--config", config]) == 0
    assert "OK" in capsys.readouterr().out
    run(tamper(url, 4, status="success"))
    assert main(["audit", "verify", "--config", config]) == 1
    err = capsys.readouterr().err
    assert "TAMPERED" in err and "seq 4" in err and "hash_mismatch" in err


def test_verify_strict_fails_on_open_chain(setup: tuple[str, str], capsys: Any) -> None:
    url, config = setup
    run(populate(url, 3, close=False))
    assert main(["audit", "verify", "--config", config]) == 0
    assert main(["audit", "verify", "--strict", "--config", config]) == 1


def test_tail_shows_newest_rows(setup: tuple[str, str], capsys: Any) -> None:
    url, config = setup
    run(populate(url, 5, close=False))
    assert main(["audit", "tail", "-n", "2", "--config", config]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "req=req-3" in lines[0] and "req=req-4" in lines[1] and "user=alice" in lines[1]
    assert main(["audit", "tail", "-n", "1", "--json", "--config", config]) == 0
    assert json.loads(capsys.readouterr().out)["request_id"] == "req-4"


def test_tail_follow_prints_new_rows(setup: tuple[str, str], tmp_path: Path) -> None:
    url, config = setup
    run(populate(url, 1, close=False))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tframex_asgi", "audit", "tail", "-f", "--interval", "0.2", "--config", config],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert proc.stdout is not None
        assert "req=req-0" in proc.stdout.readline()
        run(populate(url, 1, close=False, users=False))  # a second chain, one more row
        assert "req=req-0" in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)


def test_export_to_jsonl_with_progress_and_verify_the_export(
    setup: tuple[str, str], tmp_path: Path, capsys: Any
) -> None:
    url, config = setup
    run(populate(url, 7))
    out = tmp_path / "exports" / "audit.jsonl"
    assert main(["audit", "export", "--to", str(out), "--config", config]) == 0
    captured = capsys.readouterr()
    assert "100%" in captured.err and "exported 8 rows" in captured.out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, 9))
    assert main(["audit", "verify", "--file", str(out), "--config", config]) == 0
    lines = out.read_text().splitlines()
    del lines[3]
    out.write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify", "--file", str(out), "--config", config]) == 1


def test_export_to_s3(setup: tuple[str, str], s3_endpoint: str, tmp_path: Path, capsys: Any) -> None:
    import boto3  # type: ignore[import-untyped]

    url, config = setup
    run(populate(url, 4))
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="audit-archive")
    assert (
        main(
            [
                "audit",
                "export",
                "--to",
                "s3://audit-archive/prod/audit",
                "--endpoint-url",
                s3_endpoint,
                "--config",
                config,
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "uploading s3://audit-archive/prod/audit/audit_logs-" in captured.err and "100%" in captured.err
    objects = s3.list_objects_v2(Bucket="audit-archive", Prefix="prod/audit/")["Contents"]
    assert len(objects) == 1
    body = s3.get_object(Bucket="audit-archive", Key=objects[0]["Key"])["Body"].read().decode()
    local = tmp_path / "from-s3.jsonl"
    local.write_text(body)
    assert len(body.splitlines()) == 5
    assert main(["audit", "verify", "--file", str(local), "--config", config]) == 0
