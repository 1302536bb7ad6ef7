"""First-start bootstrap and the users/roles/keys commands on a real SQLite file."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tframex_asgi import EnterpriseConfig, Services, build_stack
from tframex_asgi.admin.bootstrap import bootstrap_admin
from tframex_asgi.cli import main
from tframex_asgi.cli.serve import build_server_app
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint

KEY = re.compile(r"tfx_[0-9a-f]{12}_[A-Za-z0-9_-]{43}")


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "enterprise.yaml"
    path.write_text(
        "enterprise:\n"
        "  persistence:\n"
        "    enabled: true\n"
        f"    connection_string: sqlite:///{tmp_path}/t.db\n"
        "  security:\n"
        "    auth_providers: [api_key]\n"
        "    audit: off\n"
    )
    return str(path)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


async def test_bootstrap_once_then_never(tmp_path: Path) -> None:
    cfg = EnterpriseConfig.from_kwargs(
        enable_persistence=True, persistence_config={"connection_string": f"sqlite:///{tmp_path}/b.db"},
        security_config={"auth_providers": ["api_key"], "audit": "off"},
    )  # fmt: skip
    services = Services(cfg)
    created = await bootstrap_admin(services)  # called outside a started stack: starts what it needs
    await services.startup()
    assert created is not None and created[0] == "admin" and KEY.fullmatch(created[1])
    assert await bootstrap_admin(services) is None
    await services.shutdown()
    # Restart on the same database: nothing new, and the key printed the first time works.
    stack = build_stack(TFrameXEndpoint(build_demo_app()), cfg)
    async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
        assert await bootstrap_admin(stack.services) is None
        resp = await c.get("/admin/users", headers={"X-API-Key": created[1]})
        assert resp.status_code == 200 and [u["roles"] for u in resp.json()["users"]] == [["admin"]]


async def test_serve_prints_the_admin_key_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the no-config default is ./tframex.db
    printed: list[str] = []
    args: Any = type("Args", (), {"config": None, "app": None})()
    for _ in range(2):
        app = build_server_app(args, announce=printed.append)
        await app.startup()
        await app.shutdown()
    assert len(printed) == 1 and KEY.search(printed[0]) and "ONCE" in printed[0]


def test_cli_users_roles_keys(
    config_file: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-password\n"))
    out = cli(
        capsys,
        "users",
        "create",
        "alice",
        "--config",
        config_file,
        "--email",
        "a@x.org",
        "--role",
        "developer",
        "--password-stdin",
        "--api-key",
    )
    assert "created user 'alice'" in out and "developer" in out and "ONCE" in out
    key = KEY.search(out)
    assert key is not None and "s3cret" not in out
    listed = cli(capsys, "users", "list", "--config", config_file)
    assert "alice" in listed and "developer" in listed and key.group() not in listed
    assert "granted" in cli(capsys, "roles", "grant", "alice", "operator", "--config", config_file)
    assert "nothing to do" in cli(capsys, "roles", "grant", "alice", "operator", "--config", config_file)
    assert "revoked" in cli(capsys, "roles", "revoke", "alice", "operator", "--config", config_file)
    assert "auditor" in cli(capsys, "roles", "create", "auditor", "--permission", "audit.view", "--config", config_file)
    assert "auditor" in cli(capsys, "roles", "list", "--config", config_file)
    made = cli(
        capsys,
        "keys",
        "create",
        "alice",
        "--name",
        "ci",
        "--scope",
        "agent.view",
        "--expires-in-days",
        "7",
        "--config",
        config_file,
    )
    second = KEY.search(made)
    assert second is not None and "ONCE" in made
    key_id = re.search(r"created API key ([0-9a-f-]{36})", made)
    assert key_id is not None
    keys = cli(capsys, "keys", "list", "--user", "alice", "--json", "--config", config_file)
    assert key_id.group(1) in keys and second.group() not in keys
    assert "revoked" in cli(capsys, "keys", "revoke", key_id.group(1), "--config", config_file)
    assert main(["keys", "revoke", "00000000-0000-0000-0000-000000000000", "--config", config_file]) == 2  # not found
    assert "disabled" in cli(capsys, "users", "disable", "alice", "--config", config_file)
    assert main(["users", "disable", "nobody", "--config", config_file]) == 2  # NotFoundError -> exit 2
    assert main(["roles", "grant", "alice", "ghost", "--config", config_file]) == 2
    # What the CLI wrote is what the server reads: the disabled user's key is refused.
    cfg = EnterpriseConfig.from_mapping(__import__("yaml").safe_load(Path(config_file).read_text())["enterprise"])

    async def check() -> int:
        stack = build_stack(TFrameXEndpoint(build_demo_app()), cfg)
        async with stack, httpx.AsyncClient(transport=httpx.ASGITransport(stack), base_url="http://t") as c:
            return (await c.get("/agents", headers={"X-API-Key": key.group()})).status_code

    assert asyncio.run(check()) == 401
