"""One timestamp format (ISO 8601 UTC with `Z`) in CLI and API output, and one meaning per exit code:
0 done, 1 a check found a problem, 2 the command could not do what was asked (one `error:` line)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_audit import populate, tamper
from tests.cli.test_cli_honesty import setup_config
from tframex_asgi import build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin
from tframex_asgi.cli import main
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def stamps(value: Any, key: str = "") -> list[tuple[str, str]]:
    """Every (key, value) whose key names a time (…_at), anywhere in ``value``."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in stamps(v, k)]
    if isinstance(value, list):
        return [s for v in value for s in stamps(v, key)]
    return [(key, value)] if key.endswith("_at") and value is not None else []


def assert_all_z(found: list[tuple[str, str]]) -> None:
    assert found, "no timestamps seen"
    bad = [(k, v) for k, v in found if not (isinstance(v, str) and STAMP.match(v))]
    assert not bad, bad


async def test_api_timestamps_are_iso_utc_z(tmp_path: Path) -> None:
    stack = build_stack(
        TFrameXEndpoint(build_demo_app()),
        enable_persistence=True,
        persistence_config={"connection_string": f"sqlite:///{tmp_path}/t.db"},
        security_config={"auth_providers": ["api_key"]},
    )
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as http:
        created = await bootstrap_admin(stack.services)
        assert created is not None
        auth = {"X-API-Key": created[1]}
        found = []
        for path in ("/admin/users", "/admin/api-keys"):
            found += stamps((await http.get(path, headers=auth)).json())
        run = await http.post("/agents/assistant/run", headers=auth, json={"input": "hi"})
        conversation = run.json()["conversation_id"]
        found += stamps((await http.get("/conversations", headers=auth)).json())
        found += stamps((await http.get(f"/conversations/{conversation}", headers=auth)).json())
        found += stamps((await http.get("/audit", headers=auth)).json())
    assert_all_z(found)


def test_cli_timestamps_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, config = setup_config(tmp_path)
    populate_done = populate(url, 3)
    import asyncio

    asyncio.run(populate_done)
    assert main(["users", "create", "carol", "--api-key", "--config", config]) == 0
    capsys.readouterr()
    assert main(["users", "list", "--json", "--config", config]) == 0
    found = stamps(json.loads(capsys.readouterr().out))
    assert main(["keys", "list", "--user", "carol", "--json", "--config", config]) == 0
    found += stamps(json.loads(capsys.readouterr().out))
    assert main(["audit", "tail", "-n", "3", "--json", "--config", config]) == 0
    found += [s for line in capsys.readouterr().out.splitlines() for s in stamps(json.loads(line))]
    assert_all_z(found)
    assert main(["keys", "list", "--user", "carol", "--config", config]) == 0  # the table form too
    table = capsys.readouterr().out
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", table) and not re.search(r"\d\d \d\d:", table)

    # 2: could not do it, one error line on stderr, nothing on stdout.
    for argv in (
        ["keys", "revoke", "00000000-0000-0000-0000-000000000000"],
        ["users", "disable", "nobody"],
        ["roles", "grant", "carol", "no-such-role"],
        ["data", "export", "--table", "nope", "--to", str(tmp_path / "x.jsonl")],
    ):
        assert main([*argv, "--config", config]) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("error: ") and err.count("\n") == 1, (argv, out, err)
    (tmp_path / "bad.yaml").write_text("enterprise:\n  metrics: {backends: {statsd: {port: x}}}\n")
    assert main(["config", "check", str(tmp_path / "bad.yaml")]) == 2
    assert "enterprise.metrics.backends.statsd.port" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["users", "create"])
    assert usage.value.code == 2
    capsys.readouterr()
    unreachable = tmp_path / "pg.yaml"
    unreachable.write_text("enterprise:\n  persistence: {connection_string: 'postgresql://nobody@127.0.0.1:1/x'}\n")
    assert main(["migrate", "--config", str(unreachable)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    # 1: the check ran and found a problem.
    assert main(["audit", "verify", "--config", config]) == 0
    asyncio.run(tamper(url, 2, status="failure"))
    assert main(["audit", "verify", "--config", config]) == 1
