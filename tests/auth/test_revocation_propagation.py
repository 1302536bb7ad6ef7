"""Issue 11.7: revocation, disabling and role changes are in force in every process within 1 s,
also when made from the command line on the same database while ``serve`` runs, with no
database read per request. Before, both servers kept serving the revoked key, the disabled user
and the old role from their caches for up to 30/60 s.

Two real ``tframex-asgi serve`` processes share one database (a SQLite file, or PostgreSQL);
changes are made with the real CLI; each server has the credentials cached (warm) before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cli.test_serve import KEY, Server

# The promised bound. The CLI exits once its change is committed; the test then waits the bound
# and no more, so a server still answering from its old cache fails.
BOUND = 1.0


class Serve(Server):
    """The ``serve`` process of tests/cli/test_serve.py, on ``config`` (or the defaults)."""

    def __init__(self, cwd: Path, config: Path | None) -> None:
        super().__init__(cwd, *(["--config", str(config)] if config is not None else []))

    def status(self, path: str, key: str) -> int:
        return httpx.get(self.url + path, headers={"X-API-Key": key}, timeout=10).status_code


def cli(cwd: Path, config: Path | None, *args: str) -> str:
    cmd = [sys.executable, "-m", "tframex_asgi", *args] + (["--config", str(config)] if config else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TFRAMEX_")}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def scenario(cwd: Path, config: Path | None) -> None:
    servers = [Serve(cwd, config)]
    try:
        (admin_key,) = KEY.findall(servers[0].output())
        servers.append(Serve(cwd, config))  # same database: no second admin, the first key works
        made = cli(cwd, config, "users", "create", "dora", "--role", "developer", "--api-key")
        (dora_key,) = KEY.findall(made)
        second = cli(cwd, config, "keys", "create", "dora", "--name", "second")
        (dora_key2,) = KEY.findall(second)
        keys = json.loads(cli(cwd, config, "keys", "list", "--user", "dora", "--json"))
        second_id = next(k["id"] for k in keys if k["name"] == "second")

        for server in servers:  # warm: every credential is cached in every server
            assert server.status("/agents", dora_key) == 200
            assert server.status("/agents", dora_key2) == 200
            assert server.status("/agents", admin_key) == 200

        cli(cwd, config, "keys", "revoke", second_id)
        time.sleep(BOUND)
        assert [s.status("/agents", dora_key2) for s in servers] == [401, 401]
        assert [s.status("/agents", dora_key) for s in servers] == [200, 200]

        cli(cwd, config, "roles", "revoke", "dora", "developer")  # agent.view came from developer
        time.sleep(BOUND)
        assert [s.status("/agents", dora_key) for s in servers] == [403, 403]
        cli(cwd, config, "roles", "grant", "dora", "developer")
        time.sleep(BOUND)
        assert [s.status("/agents", dora_key) for s in servers] == [200, 200]

        cli(cwd, config, "users", "disable", "dora")
        time.sleep(BOUND)
        assert [s.status("/agents", dora_key) for s in servers] == [401, 401]
        assert [s.status("/agents", admin_key) for s in servers] == [200, 200]
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        assert "Traceback" not in server.output(), server.output()


def test_cli_changes_reach_every_server_on_sqlite(tmp_path: Path) -> None:
    scenario(tmp_path, None)  # the embedded defaults: SQLite at ./tframex.db


def test_cli_changes_reach_every_server_on_postgresql(tmp_path: Path, pg_schema_dsn: str) -> None:
    config = tmp_path / "tframex.yaml"
    config.write_text(
        "enterprise:\n"
        "  persistence:\n"
        "    enabled: true\n"
        f"    connection_string: '{pg_schema_dsn}'\n"
        "  security:\n"
        "    enabled: true\n"
        "    auth_providers: [api_key]\n"
        "    rate_limiting: {enabled: true, default: 600/minute}\n"
        "    audit: security\n"
    )
    scenario(tmp_path, config)


async def test_role_deleted_elsewhere_reaches_cached_token_principals(tmp_path: Path) -> None:
    """Two stacks on one SQLite file stand for two processes: a JWT principal cached in one
    (permissions from a custom role) loses them within 1 s of the role's deletion in the other."""
    import asyncio

    from joserfc import jwt
    from joserfc.jwk import OctKey

    from tframex_asgi import build_stack
    from tframex_asgi.demo import build_demo_app
    from tframex_asgi.endpoint import TFrameXEndpoint

    secret = "a-shared-secret-of-at-least-32-bytes!!"
    settings = {
        "enable_persistence": True,
        "persistence_config": {"connection_string": f"sqlite:///{tmp_path}/shared.db"},
        "enable_security": True,
        "security_config": {
            "auth_providers": {"jwt": {"enabled": True, "algorithms": ["HS256"], "secret": secret}},
            "audit": "off",
        },
    }
    serving = build_stack(TFrameXEndpoint(build_demo_app()), **settings)
    other = build_stack(TFrameXEndpoint(build_demo_app()), **settings)
    now = int(time.time())
    token = jwt.encode(
        {"alg": "HS256"}, {"sub": "ext-1", "exp": now + 300, "roles": ["reporter"]}, OctKey.import_key(secret)
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with serving, other:
        await other.services.rbac.create_role("reporter", ["agent.view"])
        await asyncio.sleep(BOUND)  # the new role reaches the serving process too
        async with httpx.AsyncClient(transport=httpx.ASGITransport(serving), base_url="http://t") as client:
            assert (await client.get("/agents", headers=headers)).status_code == 200  # now cached
            assert await other.services.rbac.delete_role("reporter")
            await asyncio.sleep(BOUND)
            assert (await client.get("/agents", headers=headers)).status_code == 403
