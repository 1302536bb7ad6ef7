"""The seed's "Production" example and its keys: high availability is a real mode, the keys
that need a location (replica URLs, the backup bucket) name what is missing, and the rest runs as
written."""

from __future__ import annotations

import pytest
from tframex import Message

from tests.metrics.test_otel_metrics import _attrs, _points, collector  # noqa: F401 - the fixture
from tframex_asgi import TFrameXApp, build_stack
from tframex_asgi.auth import get_identity_store
from tframex_asgi.config import EnterpriseConfig, loads_config
from tframex_asgi.demo import build_demo_app, register_demo
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.errors import ConfigError
from tframex_asgi.llm import OfflineLLM
from tframex_asgi.storage import open_storage

ISSUER = "https://127.0.0.1:9/"  # nothing listens: discovery fails at startup with a warning only


def production(**persistence: object) -> dict[str, object]:
    """The seed's Production keywords, as written (the seed's lines first, then what it left open)."""
    return {
        "enable_metrics": True,
        "metrics_config": {"backends": ["prometheus", "opentelemetry"], "high_availability": True},
        "enable_persistence": True,
        "persistence_config": {"backend": "postgresql", "read_replicas": True, "backup_to_s3": True, **persistence},
        "enable_security": True,
        "security_config": {
            "auth_providers": {"oauth2": {"enabled": True, "issuer": ISSUER}, "api_key": True},
            "rate_limiting": True,
            "audit_level": "full",
        },
    }


def test_replicas_and_backup_need_to_know_where(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/app")
    # read_replicas: True alone cannot know where the replicas are (tests/storage/test_read_replicas.py).
    with pytest.raises(ConfigError, match=r"persistence_config\.replica_urls: is required with read_replicas"):
        TFrameXApp(mcp_config_file=None, **production())
    replicas = {"replica_urls": ["postgresql://app@replica/app"]}
    # backup_to_s3: True cannot know the bucket (scheduled backups: tests/audit/test_backup.py).
    with pytest.raises(ConfigError, match=r"persistence_config\.backup_to_s3: true does not say where"):
        TFrameXApp(mcp_config_file=None, **production(**replicas))
    yaml = "enterprise:\n  persistence: {enabled: true, backend: postgresql, read_replicas: true}\n"
    with pytest.raises(ConfigError, match=r"enterprise\.persistence\.(replica_urls|connection_string)"):
        loads_config(yaml)
    # An s3:// URL is the target of `tframex-asgi data export`; anything else is refused.
    assert EnterpriseConfig.from_kwargs(persistence_config={"backup_to_s3": "s3://b/p"}).persistence.backup_to_s3
    with pytest.raises(ConfigError, match=r"backup_to_s3: must be an s3://"):
        EnterpriseConfig.from_kwargs(persistence_config={"backup_to_s3": "/tmp/x"})


def test_high_availability_refuses_per_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/app")
    ok = production(read_replicas=False, backup_to_s3=False)
    # The seed's rate_limiting: True counts in process memory: which setting to change is named.
    with pytest.raises(ConfigError, match=r"security_config\.rate_limiting\.storage: memory://.*redis://"):
        EnterpriseConfig.from_kwargs(**ok)  # type: ignore[arg-type]
    sqlite = {**ok, "persistence_config": {"backend": "sqlite"}}
    with pytest.raises(ConfigError, match=r"persistence_config\.connection_string: sqlite://.*postgresql://"):
        EnterpriseConfig.from_kwargs(**sqlite)  # type: ignore[arg-type]
    off = {**ok, "enable_persistence": False, "persistence_config": None}
    with pytest.raises(ConfigError, match=r"persistence_config\.enabled"):
        EnterpriseConfig.from_kwargs(**off)  # type: ignore[arg-type]
    yaml = "enterprise:\n  metrics: {enabled: true, high_availability: true}\n  persistence: {enabled: true}\n"
    with pytest.raises(ConfigError, match=r"enterprise\.persistence\.connection_string: sqlite://"):
        loads_config(yaml)
    with pytest.raises(ConfigError, match=r"high_availability"):
        build_stack(TFrameXEndpoint(build_demo_app()), **sqlite)


async def test_production_example_runs(
    pg_schema_dsn: str,
    redis_url: str,
    redis_prefix: str,
    collector: tuple[str, list[tuple[str, bytes]]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    otlp_url, received = collector
    monkeypatch.setenv("DATABASE_URL", pg_schema_dsn)
    kw = production(read_replicas=False, backup_to_s3=False)
    # Where the seed's "opentelemetry" sends: a collector on loopback that this test runs.
    otel = {"enabled": True, "endpoint": otlp_url}
    kw["metrics_config"] = {**kw["metrics_config"], "backends": {"prometheus": True, "opentelemetry": otel}}  # type: ignore[dict-item]
    security = dict(kw["security_config"])  # type: ignore[call-overload]
    security["rate_limiting"] = {"enabled": True, "storage": redis_url, "key_prefix": redis_prefix}
    kw["security_config"] = security
    app = TFrameXApp(default_llm=OfflineLLM(), mcp_config_file=None, **kw)
    register_demo(app)
    assert app.enterprise_config.metrics.high_availability
    assert {"metrics", "audit", "authentication", "rate_limit", "authorization"} <= set(app.stack.layers)
    async with app:
        store = get_identity_store(app.services)
        alice = await store.create_user("alice")
        principal = await app.principal_for("alice")
        async with app.run_context(principal=principal) as ctx:
            assert (await ctx.call_agent("calculator", "add 2 and 40")).content == "add returned 42"
            flow = await ctx.run_flow("echo_then_shout", Message(role="user", content="hi"))
            assert flow.current_message.content == "ECHO: ECHO: HI"
    async with open_storage(pg_schema_dsn) as db:
        audit = await db.read("audit_logs", {"user_id": alice["id"]}, order_by="created_at")
        # audit_level "full": successful in-process runs are audited too, as over HTTP.
        assert [(a["action"], a["status"]) for a in audit] == [
            ("POST /agents/{name}/run", "success"),
            ("POST /flows/{name}/run", "success"),
        ]
        assert len(await db.read("agent_executions", {"user_id": alice["id"]})) == 3  # calculator, 2 steps
    points = _points([body for path, body in received if path == "/v1/metrics"])
    flows = [p for p in points["flow_executions_total"] if _attrs(p)["flow"] == "echo_then_shout"]
    assert [p.as_double for p in flows] == [1.0]
    assert "/v1/traces" in {path for path, _ in received}


def test_high_availability_is_checked_on_a_config_built_directly() -> None:
    from tframex_asgi.config.metrics import MetricsConfig

    config = EnterpriseConfig(metrics=MetricsConfig(enabled=True, high_availability=True))
    with pytest.raises(ConfigError, match=r"enterprise\.persistence\.enabled"):
        build_stack(TFrameXEndpoint(build_demo_app()), config)
