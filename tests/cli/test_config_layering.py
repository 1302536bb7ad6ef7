"""A config file layers over the serve defaults: `serve --config rl.yaml` with the README's
rate-limit snippet keeps persistence, Basic auth and metrics; `config check`/`config show` print
the effective configuration; CLI writes into memory-only storage are refused."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import httpx

from tests.cli.test_packaging import ROOT, cli
from tests.cli.test_serve import KEY, Server
from tframex_asgi.config.layering import layer_over
from tframex_asgi.defaults import DEFAULT_BLOCK, default_config, serve_config


def readme_rate_limit_snippet(storage: str) -> str:
    """The README's rate-limit YAML, with its Redis URL swapped for ``storage``."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Rate limiting") :]
    block = section[section.index("```yaml") + len("```yaml") : section.index("```", section.index("```yaml") + 7)]
    assert "rate_limiting:" in block
    return re.sub(r"storage: \S+", f"storage: {storage}", block)


def test_rate_limit_file_keeps_the_serve_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rl.yaml"
    path.write_text(readme_rate_limit_snippet("memory://"))
    config = serve_config(path)
    assert config.persistence.enabled and config.persistence.url == "sqlite:///./tframex.db"
    assert config.security.auth_providers.enabled_in_order == ("api_key", "basic")
    assert config.metrics.enabled and config.metrics.backends.prometheus.enabled
    assert config.security.audit.level == "security"
    # ... and the file's own settings win.
    assert config.security.rate_limiting.default == "100/minute"
    assert config.security.max_body_bytes == 10485760
    assert dict(config.security.rate_limiting.tiers) == {"premium": "1000/minute"}


def test_layering_rules() -> None:
    # Alias spellings replace the key they stand for; shorthands set one key; lists replace.
    merged = layer_over(
        DEFAULT_BLOCK,
        {
            "persistence": {"url": "sqlite:///other.db"},
            "security": {"rate_limiting": False, "audit": "full", "auth_providers": ["api_key"]},
            "metrics": {"enabled": False},
        },
    )
    from tframex_asgi.config import EnterpriseConfig

    config = EnterpriseConfig.from_mapping(merged)
    assert config.persistence.url == "sqlite:///other.db" and config.persistence.enabled
    assert not config.security.rate_limiting.enabled
    assert config.security.audit.level == "full"
    assert config.security.auth_providers.enabled_in_order == ("api_key",)
    assert not config.metrics.enabled
    # A provider added as a mapping joins the default ones.
    added = EnterpriseConfig.from_mapping(
        layer_over(DEFAULT_BLOCK, {"security": {"auth_providers": {"basic": {"realm": "corp"}}}})
    )
    assert added.security.auth_providers.enabled_in_order == ("api_key", "basic")
    assert added.security.auth_providers.basic.realm == "corp"
    # Configuring a default provider keeps its place; a new one is tried after the defaults.
    readme = {"api_key": {"enabled": True, "header_name": "X-API-Key"}, "jwt": {"enabled": True, "secret": "s" * 32,
              "algorithms": ["HS256"]}}  # fmt: skip
    merged_order = EnterpriseConfig.from_mapping(layer_over(DEFAULT_BLOCK, {"security": {"auth_providers": readme}}))
    assert merged_order.security.auth_providers.enabled_in_order == ("api_key", "basic", "jwt")
    assert serve_config(None) == default_config()


def test_serve_with_rate_limit_file_persists_users_and_keys(tmp_path: Path) -> None:
    (tmp_path / "rl.yaml").write_text(readme_rate_limit_snippet("memory://"))
    server = Server(tmp_path, "--config", "rl.yaml")
    try:
        (key,) = KEY.findall(server.output())
        assert f"{server.url}/agents" in server.output()  # the real address, not HOST:PORT
        made = cli(
            "users", "create", "alice", "--role", "developer", "--password-stdin", "--config", "rl.yaml",
            cwd=tmp_path, stdin="correct horse battery\n",
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert c.get("/agents", auth=("alice", "correct horse battery")).status_code == 200
            assert c.get("/metrics", headers={"X-API-Key": key}).status_code == 200
            limited = c.get("/agents", headers={"X-API-Key": key})
            assert limited.headers["ratelimit-policy"] == '"default";q=100;w=60', limited.headers
    finally:
        assert server.stop() in (0, -signal.SIGTERM), server.output()
    again = Server(tmp_path, "--config", "rl.yaml")
    try:
        assert KEY.findall(again.output()) == []  # the admin was kept: no new key
        assert httpx.get(again.url + "/agents", headers={"X-API-Key": key}).status_code == 200
    finally:
        assert again.stop() in (0, -signal.SIGTERM), again.output()


def test_cli_refuses_memory_only_writes(tmp_path: Path) -> None:
    (tmp_path / "mem.yaml").write_text("enterprise:\n  persistence: {enabled: false}\n")
    for args in (
        ("users", "create", "ghost", "--api-key"),
        ("keys", "create", "ghost"),
        ("roles", "grant", "ghost", "admin"),
    ):
        done = cli(*args, "--config", "mem.yaml", cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "store it now" not in done.stdout and "tfx_" not in done.stdout
        assert "enterprise.persistence" in done.stderr and "memory" in done.stderr
    # serve still runs on it (a demo), but says plainly that users and keys die with the process.
    server = Server(tmp_path, "--config", "mem.yaml")
    try:
        assert "persistence is off" in server.output() and len(KEY.findall(server.output())) == 1
    finally:
        assert server.stop() in (0, -signal.SIGTERM), server.output()


def test_config_check_and_show_print_the_effective_config(tmp_path: Path) -> None:
    (tmp_path / "rl.yaml").write_text(readme_rate_limit_snippet("memory://"))
    checked = cli("config", "check", "rl.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    body = json.loads(checked.stdout[checked.stdout.index("{") :])["enterprise"]
    assert body["persistence"]["enabled"] is True and body["metrics"]["enabled"] is True
    assert body["security"]["auth_providers"]["basic"]["enabled"] is True
    assert body["security"]["rate_limiting"]["default"] == "100/minute"
    shown = cli("config", "show", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    defaults = json.loads(shown.stdout)["enterprise"]
    assert defaults["persistence"]["enabled"] is True
    assert defaults["security"]["rate_limiting"]["default"] == "600/minute"
    assert defaults["persistence"]["connection_string"] == "sqlite:///./tframex.db"  # no password: shown


def test_config_check_and_show_mask_every_secret(tmp_path: Path) -> None:
    """Secrets given in the file or through ${VAR} never reach the printed config: the keys that
    are secrets whole, and the password and query of every URL (database, replicas, Redis, S3)."""
    (tmp_path / "secrets.yaml").write_text(
        "enterprise:\n"
        "  persistence:\n"
        "    connection_string: postgresql://app:PgPassw0rd@db:5432/app\n"
        "    replica_urls: [postgresql://ro:ReplicaPw1@replica:5432/app]\n"
        "    backup_to_s3: s3://bucket/prefix?secret_access_key=S3Secret9\n"
        "  security:\n"
        "    auth_providers:\n"
        "      jwt: {enabled: true, algorithms: [HS256], secret: JwtSecret42-padded-to-thirty-two-bytes}\n"
        "    rate_limiting: {enabled: true, storage: 'redis://:RedisPw99@redis:6379/0'}\n"
        "    audit: {hmac_key: '${AUDIT_HMAC_KEY}'}\n"
        "  metrics:\n"
        "    backends:\n"
        "      opentelemetry: {enabled: true, endpoint: 'https://u:OtelPw7@collector:4318/v1/traces',"
        " headers: {authorization: Bearer OtelToken}}\n"
    )
    env = {"AUDIT_HMAC_KEY": "hmacSECRETvalue1234567890"}
    for command in (("config", "check", "secrets.yaml"), ("config", "show", "secrets.yaml")):
        done = cli(*command, cwd=tmp_path, env=env)
        out = done.stdout + done.stderr
        for secret in ("PgPassw0rd", "ReplicaPw1", "S3Secret9", "JwtSecret42", "RedisPw99", "hmacSECRET", "OtelPw7",
                       "OtelToken"):  # fmt: skip
            assert secret not in out, (command, secret, out)
        if command[1] == "show":
            body = json.loads(done.stdout)["enterprise"]
            assert body["security"]["rate_limiting"]["storage"] == "redis://:***@redis:6379/0"
            assert body["persistence"]["replica_urls"] == ["postgresql://ro:***@replica:5432/app"]
            assert body["security"]["audit"]["hmac_key"] == "***"


def test_config_show_takes_the_shared_config_options(tmp_path: Path) -> None:
    (tmp_path / "c2.yaml").write_text("enterprise:\n  security:\n    rate_limiting:\n      default: 7/minute\n")

    def shown(*args: str, env: dict[str, str] | None = None) -> str:
        done = cli("config", "show", *args, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["enterprise"]["security"]["rate_limiting"]["default"]

    assert shown("c2.yaml") == shown("--config", "c2.yaml") == "7/minute"
    assert shown(env={"TFRAMEX_ASGI_CONFIG": "c2.yaml"}) == "7/minute"
    assert shown() == "600/minute"
