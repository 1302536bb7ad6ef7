"""Config: kwargs and YAML forms, env substitution, and errors that name the dotted path."""

from __future__ import annotations

import pytest

from tframex_asgi.cli import main
from tframex_asgi.config import EnterpriseConfig, load_config, loads_config
from tframex_asgi.errors import ConfigError

SEED_YAML = """
enterprise:
  metrics:
    enabled: true
    backends:
      prometheus:
        enabled: true
        port: 9090
      statsd:
        enabled: true
        host: "localhost"
        port: 8125
      opentelemetry:
        enabled: true
        endpoint: "http://jaeger:14268/api/traces"
  persistence:
    enabled: true
    backend: "postgresql"
    connection_string: "${DATABASE_URL}"
    migrations: true
  security:
    enabled: true
    auth_providers:
      oauth2:
        enabled: true
        issuer: "${OAUTH2_ISSUER}"
        client_id: "${OAUTH2_CLIENT_ID}"
      api_key:
        enabled: true
        header_name: "X-API-Key"
    rbac:
      enabled: true
      default_role: "user"
"""

ENV = {
    "DATABASE_URL": "postgresql://app@db:5432/app",
    "OAUTH2_ISSUER": "https://idp.example.com",
    "OAUTH2_CLIENT_ID": "tframex",
}


def test_seed_yaml_block_loads_with_env_substitution() -> None:
    cfg = loads_config(SEED_YAML, environ=ENV)
    assert cfg.metrics.enabled and cfg.metrics.backends.prometheus.port == 9090
    assert cfg.metrics.backends.statsd.enabled and cfg.metrics.backends.statsd.port == 8125
    assert cfg.metrics.backends.opentelemetry.endpoint == "http://jaeger:14268/api/traces"
    assert cfg.persistence.url == "postgresql://app@db:5432/app"
    assert cfg.security.auth_providers.oauth2.issuer == "https://idp.example.com"
    # Providers are tried in the order they are listed.
    assert cfg.security.auth_providers.enabled_in_order == ("oauth2", "api_key")
    assert cfg.security.rbac.default_role == "user"


def test_env_default_and_literal_dollar() -> None:
    cfg = loads_config(
        "enterprise:\n  metrics:\n    backends:\n      statsd: {port: '${STATSD_PORT:-9125}', prefix: 'a$$b'}\n",
        environ={},
    )
    assert cfg.metrics.backends.statsd.port == 9125
    assert cfg.metrics.backends.statsd.prefix == "a$b"


def test_missing_env_names_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        loads_config(SEED_YAML, environ={k: v for k, v in ENV.items() if k != "OAUTH2_ISSUER"})
    assert err.value.path == "enterprise.security.auth_providers.oauth2.issuer"
    assert "OAUTH2_ISSUER" in str(err.value)


@pytest.mark.parametrize(
    ("yaml_text", "path", "words"),
    [
        (
            "enterprise: {metrics: {backends: {statsd: {port: nope}}}}",
            "enterprise.metrics.backends.statsd.port",
            "integer",
        ),
        (
            "enterprise: {metrics: {backends: {statsd: {port: 70000}}}}",
            "enterprise.metrics.backends.statsd.port",
            "65535",
        ),
        ("enterprise: {metrics: {bogus: 1}}", "enterprise.metrics.bogus", "unknown key"),
        ("enterprise: {persistence: {backend: oracle}}", "enterprise.persistence.backend", "one of"),
        (
            "enterprise: {persistence: {connection_string: 'mysql://x'}}",
            "enterprise.persistence.connection_string",
            "scheme",
        ),
        (
            "enterprise: {security: {auth_providers: {jwt: {enabled: true, secret: s, algorithms: [HS256, None]}}}}",
            "enterprise.security.auth_providers.jwt.algorithms[1]",
            "none",
        ),
        (
            "enterprise: {security: {rate_limiting: {default: 'lots'}}}",
            "enterprise.security.rate_limiting.default",
            "rate limit",
        ),
        (
            "enterprise: {security: {trusted_proxies: ['not-an-ip']}}",
            "enterprise.security.trusted_proxies[0]",
            "IP network",
        ),
        ("enterprise: {security: {enabled: maybe}}", "enterprise.security.enabled", "true or false"),
        ("other: 1", "other", "top-level"),
    ],
)
def test_bad_values_name_the_dotted_path(yaml_text: str, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        loads_config(yaml_text, environ={})
    assert err.value.path == path
    assert words.lower() in str(err.value).lower()


def test_invalid_yaml_reports_position() -> None:
    with pytest.raises(ConfigError, match=r"x\.yaml: invalid YAML at line 3, column 4"):
        loads_config("enterprise:\n  metrics: {a: b\n  c: [\n", source="x.yaml")


def test_seed_kwargs_forms() -> None:
    cfg = EnterpriseConfig.from_kwargs(
        enable_metrics=True,
        metrics_config={"backends": ["prometheus", "statsd"], "export_interval": 60},
        enable_persistence=True,
        persistence_config={"backend": "sqlite"},
        enable_security=True,
        security_config={
            "auth_providers": ["api_key", "basic"],
            "require_auth": True,
            "rate_limiting": True,
            "audit_level": "full",
        },
    )
    assert cfg.metrics.backends.prometheus.enabled and cfg.metrics.backends.statsd.enabled
    assert not cfg.metrics.backends.opentelemetry.enabled
    assert cfg.persistence.url == "sqlite:///./tframex.db"
    assert cfg.security.auth_providers.enabled_in_order == ("api_key", "basic")
    assert cfg.security.rate_limiting.enabled
    assert cfg.security.audit.level == "full"


def test_kwargs_errors_name_the_keyword() -> None:
    with pytest.raises(ConfigError) as err:
        EnterpriseConfig.from_kwargs(enable_metrics=True, metrics_config={"backends": ["prometheus", "graphite"]})
    assert err.value.path == "metrics_config.backends[1]"
    with pytest.raises(ConfigError) as err:
        EnterpriseConfig.from_kwargs(enable_persistence=True, persistence_config={"backend": "postgresql"})
    assert err.value.path == "persistence_config.connection_string"


def test_security_is_on_by_default_and_config_is_frozen() -> None:
    cfg = EnterpriseConfig()
    assert cfg.security.enabled and cfg.security.require_auth
    assert cfg.security.public_paths == ("/healthz", "/readyz")
    assert cfg.security.auth_providers.enabled_in_order == ("api_key",)
    with pytest.raises(AttributeError):
        cfg.security.enabled = False  # type: ignore[misc]


def test_config_check_cli(tmp_path, capsys) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("enterprise:\n  persistence:\n    enabled: true\n    connection_string: postgresql://u:pw@h/db\n")
    assert main(["config", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "pw" not in out  # connection strings may hold passwords
    bad = tmp_path / "bad.yaml"
    bad.write_text("enterprise:\n  metrics:\n    backends:\n      statsd:\n        port: x\n")
    assert main(["config", "check", str(bad)]) == 2
    assert "enterprise.metrics.backends.statsd.port" in capsys.readouterr().err
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 2


def test_load_config_from_file(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("enterprise:\n  server:\n    request_id_header: X-Correlation-ID\n")
    assert load_config(path).server.request_id_header == "X-Correlation-ID"


def test_mapping_fields_parse_and_name_bad_entries() -> None:
    cfg = EnterpriseConfig.from_mapping(
        {
            "persistence": {"retention": {"audit_logs": 30}},
            "metrics": {"backends": {"statsd": {"tags": {"env": "prod"}}}},
        }
    )
    assert dict(cfg.persistence.retention) == {"audit_logs": 30}
    assert dict(cfg.metrics.backends.statsd.tags) == {"env": "prod"}
    with pytest.raises(ConfigError) as err:
        EnterpriseConfig.from_mapping({"persistence": {"retention": {"audit_logs": "soon"}}})
    assert err.value.path == "enterprise.persistence.retention.audit_logs"
