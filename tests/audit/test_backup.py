"""Scheduled S3 backup (moto server on loopback) with signed, chained digests that
``tframex-asgi audit verify --from s3://...`` checks, and detects tampering with."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tframex_asgi import build_stack
from tframex_asgi.cli import main
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.errors import ConfigError

KEY = "backup-test-hmac-key-0123456789"
BUCKET = "tfx-backups"


def _digests(s3: Any) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="prod/digests/")
    return sorted(o["Key"] for o in listed.get("Contents", ()))


def test_scheduled_backups_verify_and_tampering_is_detected(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    import boto3  # type: ignore[import-untyped]

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    url = f"sqlite:///{tmp_path}/app.db"
    config = tmp_path / "enterprise.yaml"
    config.write_text(
        "enterprise:\n"
        f"  persistence: {{enabled: true, connection_string: '{url}', backup_to_s3: 's3://{BUCKET}/prod',"
        " backup_interval: 0.2}\n"
        f"  security: {{audit: {{level: full, hmac_key: '{KEY}'}}}}\n"
    )
    stack = build_stack(TFrameXEndpoint(build_demo_app()), str(config))

    async def traffic() -> None:
        async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
            for _ in range(3):
                assert (await c.get("/agents")).status_code == 401  # audited refusals
            deadline = time.monotonic() + 20
            while len(_digests(s3)) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)

    asyncio.run(traffic())
    digests = _digests(s3)
    assert len(digests) >= 2
    newest = json.loads(s3.get_object(Bucket=BUCKET, Key=digests[-1])["Body"].read())
    assert newest["previous"]["key"] == digests[-2] and newest["signature"]
    tables = {f["table"]: f for f in newest["files"]}
    assert set(tables) == {"audit_logs", "agent_executions", "tool_calls", "flow_executions", "flow_steps"}
    assert tables["audit_logs"]["rows"] >= 3

    capsys.readouterr()
    assert main(["audit", "verify", "--from", f"s3://{BUCKET}/prod", "--strict", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"{len(digests)} digests" in out and "OK: every digest, archive and chain is intact" in out

    # Edit one archived audit row: its digest no longer matches.
    key = tables["audit_logs"]["key"]
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().replace(b'"GET', b'"PUT', 1)
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    assert main(["audit", "verify", "--from", f"s3://{BUCKET}/prod", "--config", str(config)]) == 1
    assert "content differs from its digest" in capsys.readouterr().err

    # Delete a digest in the middle of the chain: the next one no longer follows.
    if len(digests) >= 3:
        s3.delete_object(Bucket=BUCKET, Key=digests[-2])
    else:
        s3.delete_object(Bucket=BUCKET, Key=digests[0])
    assert main(["audit", "verify", "--from", f"s3://{BUCKET}/prod", "--config", str(config)]) == 1
    assert "does not follow the previous digest" in capsys.readouterr().err


def test_backup_to_s3_true_names_what_is_missing() -> None:
    with pytest.raises(ConfigError, match=r"persistence_config\.backup_to_s3: true does not say where"):
        build_stack(
            TFrameXEndpoint(build_demo_app()),
            enable_persistence=True,
            persistence_config={"backend": "sqlite", "backup_to_s3": True},
        )


def test_s3_failures_are_storage_errors_one_line_each(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, caplog: Any
) -> None:
    """A bucket that does not exist, on the real (moto) S3 API: `verify --from` and `export --to`
    say so in one line and exit 2, a backup raises StorageError, and the scheduler logs one warning."""
    from tframex_asgi.audit.backup import ScheduledBackup, run_backup
    from tframex_asgi.audit.redact import Redactor
    from tframex_asgi.clock import SystemClock
    from tframex_asgi.config import load_config
    from tframex_asgi.errors import StorageError
    from tframex_asgi.storage import open_storage

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    url = f"sqlite:///{tmp_path}/app.db"
    config = tmp_path / "enterprise.yaml"
    config.write_text(
        f"enterprise:\n  persistence: {{enabled: true, connection_string: '{url}', backup_to_s3: 's3://nowhere/prod',"
        " backup_interval: 0.05}\n"
    )
    capsys.readouterr()
    assert main(["audit", "verify", "--from", "s3://nowhere/prod", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: S3: ") and "NoSuchBucket" in err and len(err.splitlines()) == 1
    assert main(["audit", "export", "--to", "s3://nowhere/prod", "--config", str(config)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: S3: ") and "NoSuchBucket" in err[-1]

    def ours() -> list[Any]:
        return [r for r in caplog.records if r.name.startswith("tframex_asgi")]

    async def backups() -> None:
        storage = open_storage(url)
        await storage.connect()
        try:
            with pytest.raises(StorageError, match="NoSuchBucket"):
                await run_backup(storage, "s3://nowhere/prod", None, Redactor(), dt.datetime.now(dt.UTC))
            scheduled = ScheduledBackup(load_config(str(config)), storage, SystemClock())
            with caplog.at_level("WARNING", logger="tframex_asgi"):
                await scheduled.start()
                deadline = time.monotonic() + 10
                while not ours() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await scheduled.stop()
        finally:
            await storage.close()

    asyncio.run(backups())
    record = ours()[0]
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "scheduled backup to s3://nowhere/prod failed: S3: " in record.getMessage()
