"""CLI honesty: `audit tail -n 1 --follow` shows only new rows after the newest one; `data export`
writes JSONL and names --to in its errors and the missing parent tables for a foreign key;
`data prune --table audit_logs` leaves `audit verify` passing (a signed checkpoint)."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.audit.conftest import ALICE, ListSink
from tests.cli.test_audit import KEY, populate
from tframex_asgi.audit.logger import AuditLogger
from tframex_asgi.cli import main
from tframex_asgi.clock import ManualClock
from tframex_asgi.config.audit import AuditConfig
from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.storage import open_storage

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400.0


def setup_config(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path}/audit.db"
    config = tmp_path / "enterprise.yaml"
    config.write_text(
        "enterprise:\n"
        f"  persistence: {{enabled: true, connection_string: '{url}'}}\n"
        f"  security: {{audit: {{level: full, hmac_key: '{KEY}'}}}}\n"
    )
    return url, str(config)


def readline(proc: subprocess.Popen[str], timeout: float) -> str | None:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return None
    return proc.stdout.readline()


def test_tail_follow_shows_only_new_rows(tmp_path: Path) -> None:
    url, config = setup_config(tmp_path)
    asyncio.run(populate(url, 40, close=False))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tframex_asgi", "audit", "tail", "-n", "1", "-f", "--interval", "0.1",
         "--config", config],
        stdout=subprocess.PIPE, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        first = readline(proc, 30)
        assert first is not None and "req=req-39" in first
        assert readline(proc, 1.5) is None  # several polls: no older row is replayed
        asyncio.run(populate(url, 1, close=False, users=False))  # one new row (a new chain)
        new = readline(proc, 30)
        assert new is not None and "req=req-0" in new
        assert readline(proc, 1.0) is None
    finally:
        proc.terminate()
        proc.wait(10)


def test_data_export_to_jsonl_and_clear_errors(tmp_path: Path, capsys: Any) -> None:
    url, config = setup_config(tmp_path)
    asyncio.run(populate(url, 5))
    out = tmp_path / "audit.jsonl"
    assert main(["data", "export", "--table", "audit_logs", "--to", str(out), "--config", config]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and all(r["created_at"].endswith("Z") for r in rows)  # 5 + the chain's end record
    assert not (tmp_path / "audit.jsonl.part").exists()
    capsys.readouterr()
    # The exported file verifies on its own.
    assert main(["audit", "verify", "--file", str(out), "--config", config]) == 0
    capsys.readouterr()
    # A bad --to names --to, not the persistence config.
    assert main(["data", "export", "--table", "audit_logs", "--to", "ftp://host/x", "--config", config]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --to:") and ".jsonl" in err
    # A SQLite target without the referenced users: the error says what to export first.
    target = f"sqlite:///{tmp_path}/copy.db"
    assert main(["data", "export", "--table", "audit_logs", "--to", target, "--config", config]) == 2
    err = capsys.readouterr().err
    assert "FOREIGN KEY constraint failed" not in err and "users" in err and "--to" in err
    assert main(["data", "export", "--table", "users", "--to", target, "--config", config]) == 0
    assert main(["data", "export", "--table", "audit_logs", "--to", target, "--config", config]) == 0


async def populate_aged(url: str) -> None:
    """One chain whose first 4 rows are 400 days old and last 3 are new; one old closed chain."""
    store = open_storage(url, PersistenceConfig(enabled=True, connection_string=url))
    async with store:
        await store.write("users", {"id": ALICE.id, "username": "alice"})
        mixed_clock, old_clock = ManualClock(time.time() - 400 * DAY), ManualClock(time.time() - 401 * DAY)
        mixed_sink, old_sink = ListSink(), ListSink()
        mixed = AuditLogger(mixed_sink, AuditConfig(level="full", hmac_key=KEY), clock=mixed_clock)
        for i in range(7):
            if i == 4:
                mixed_clock.advance(400 * DAY)
            mixed.log_change(principal=None, action="user.update", resource_type="user", resource_id=str(i))
        old = AuditLogger(old_sink, AuditConfig(level="full", hmac_key=KEY), clock=old_clock)
        for i in range(3):
            old.log_change(principal=None, action="role.create", resource_type="role", resource_id=f"r{i}")
        old.close()  # 3 rows + the end record, all old
        await store.write_many("audit_logs", mixed_sink.table("audit_logs") + old_sink.table("audit_logs"))


def test_prune_keeps_the_chain_verifiable(tmp_path: Path, capsys: Any) -> None:
    url, config = setup_config(tmp_path)
    asyncio.run(populate_aged(url))
    assert main(["audit", "verify", "--config", config]) == 0
    capsys.readouterr()
    assert main(["data", "prune", "--table", "audit_logs", "--older-than", "365", "--config", config]) == 0
    assert "audit_logs: deleted 8 rows" in capsys.readouterr().out  # 4 of the mixed chain, 3 + end record
    assert main(["audit", "verify", "--config", config]) == 0, capsys.readouterr().err
    capsys.readouterr()
    # A second prune (nothing old left but the checkpoint carries forward) still verifies.
    assert main(["data", "prune", "--table", "audit_logs", "--older-than", "365", "--config", config]) == 0
    assert main(["audit", "verify", "--config", config]) == 0
    capsys.readouterr()

    async def remaining() -> list[dict[str, Any]]:
        store = open_storage(url, PersistenceConfig(enabled=True, connection_string=url))
        async with store:
            return await store.read("audit_logs", {"action": "user.update"}, order_by=["seq"])

    rows = asyncio.run(remaining())
    assert [r["seq"] for r in rows] == [5, 6, 7]

    async def delete_one(row_id: str) -> None:
        store = open_storage(url, PersistenceConfig(enabled=True, connection_string=url))
        async with store:
            await store.delete("audit_logs", row_id)

    asyncio.run(delete_one(str(rows[0]["id"])))  # a deletion the checkpoint does not cover
    assert main(["audit", "verify", "--config", config]) == 1
    assert "missing_rows" in capsys.readouterr().err


def test_a_reader_that_stops_early_is_not_an_error(tmp_path: Path) -> None:
    """`tframex-asgi config show | head -1`: the pipe's reader is gone before the command writes,
    so every write fails with EPIPE; that is the reader's choice, so exit 0 and no error line."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFRAMEX_")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tframex_asgi", "config", "show"],
            cwd=tmp_path, env=env, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")


def test_bad_values_and_unreadable_sources_are_one_error_line_and_exit_2(tmp_path: Path) -> None:
    """Each is "could not do what was asked" (2), never a traceback, and never 1 (which `audit
    verify` keeps for "tampered")."""
    from tests.cli.test_packaging import cli

    assert cli("users", "create", "u1", cwd=tmp_path).returncode == 0
    # A negative age would reach into the future and take every row, the prune's checkpoint too.
    pruned = cli("data", "prune", "--table", "audit_logs", "--older-than", "-1", cwd=tmp_path)
    assert pruned.returncode == 2 and "--older-than: must be 0 or more days, got -1" in pruned.stderr
    assert cli("audit", "verify", cwd=tmp_path).returncode == 0  # nothing was deleted
    (tmp_path / "bad.jsonl").write_text('{"seq": 1}\nnot json\n')
    verified = cli("audit", "verify", "--file", "bad.jsonl", cwd=tmp_path)
    assert (verified.returncode, verified.stderr) == (2, "error: bad.jsonl:2: not JSON lines (Expecting value)\n")
    # A page of 0 rows exported nothing, then --prune deleted every row it had not copied.
    for size in ("0", "-5"):
        exported = cli("data", "export", "--table", "audit_logs", "--to", "x.jsonl", "--page-size", size,
                       "--prune", "--older-than", "0", cwd=tmp_path)  # fmt: skip
        assert exported.returncode == 2 and f"--page-size: must be 1 or more rows, got {size}" in exported.stderr
    assert cli("audit", "verify", cwd=tmp_path).returncode == 0  # nothing was deleted
    tail = cli("audit", "tail", "-n", "-5", cwd=tmp_path)
    assert tail.returncode == 2 and "-n/--lines: must be 1 or more, got -5" in tail.stderr
    key = cli("keys", "create", "u1", "--expires-in-days", "-3", cwd=tmp_path)
    assert (key.returncode, key.stderr) == (2, "error: --expires-in-days: must be more than 0 and at most 3650\n")
    no_credentials = {
        "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }  # fmt: skip
    exported = cli("audit", "export", "--to", "s3://bucket/audit", cwd=tmp_path, env=no_credentials)
    assert exported.returncode == 2, exported.stderr
    assert exported.stderr.splitlines()[-1] == "error: S3: Unable to locate credentials"
    assert "Traceback" not in exported.stderr
