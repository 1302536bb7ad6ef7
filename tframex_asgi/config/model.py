"""The one config object: :class:`EnterpriseConfig`, the seed's ``enterprise:`` block."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from tframex_asgi.catalog.routes import RuleSet, merge_rules
from tframex_asgi.config._parse import Section, parse_section, to_plain
from tframex_asgi.config.metrics import MetricsConfig
from tframex_asgi.config.persistence import PersistenceConfig
from tframex_asgi.config.security import SecurityConfig
from tframex_asgi.errors import ConfigError

__all__ = ["EnterpriseConfig", "ServerConfig", "authorization_rules"]


@dataclass(frozen=True)
class ServerConfig(Section):
    _path: ClassVar[str] = "enterprise.server"

    # None: no request id header (nothing read or echoed); with every feature off, no layer at all.
    request_id_header: str | None = "X-Request-ID"
    # Accept a client's request id when it is a short token of safe characters.
    trust_request_id: bool = True
    # Messages of a conversation replayed to an agent (the newest ones).
    history_limit: int = 20
    # Add a Server-Timing header: each layer's own time for this request (off: no cost at all).
    server_timing: bool = False
    # After lifespan startup, move every object alive then into the garbage collector's permanent
    # generation (gc.freeze), so full collections stop rescanning them (on in `tframex-asgi serve`).
    gc_freeze: bool = False

    def _check(self, path: str) -> None:
        header = self.request_id_header  # RequestContextMiddleware takes it as checked here
        if header is not None and (not header or not header.isascii()):
            raise ConfigError(
                f"{path}.request_id_header", "must be a non-empty ASCII header name, or null to send no request id"
            )
        if self.history_limit < 0:
            raise ConfigError(f"{path}.history_limit", "must be 0 or more")


def authorization_rules(config: EnterpriseConfig, guarded: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The ``(rule, permission)`` pairs the authorization layer serves for ``config``: the
    endpoint's routes, the public paths, a moved Prometheus path, then ``rbac.routes``.

    ``guarded``: rules of routes the app guards itself (RequirePermission / @require_permission),
    which need no second declaration; explicit ``rbac.routes`` entries, added after, win."""
    security = config.security
    rules: dict[str, str] = dict(guarded or {})
    prometheus = config.metrics.backends.prometheus
    if prometheus.path != "/metrics":  # the scrape route moved: it still needs metrics.view
        rules[f"GET {prometheus.path}"] = "metrics.view"
    rules.update(security.rbac.routes)
    return merge_rules(rules, public_paths=security.public_paths)


def _clashing_key(config: EnterpriseConfig, path: str, message: str) -> str:
    """The key of the rule a route-table error names (the message quotes its template)."""
    security = config.security
    for rule in security.rbac.routes:
        if rule.split()[-1] in message:
            return f"{path}.security.rbac.routes.{rule}"
    for i, public in enumerate(security.public_paths):
        if public in message:
            return f"{path}.security.public_paths[{i}]"
    return f"{path}.security.rbac.routes"


def check_high_availability(config: EnterpriseConfig, path: str | None) -> None:
    """``metrics.high_availability``: several replicas serve the app, so state kept inside one
    process would differ per replica. Refuse each such setting, naming the one to change.
    ``path`` None: the error names the seed's keywords (``security_config.…``)."""
    if not config.metrics.high_availability:
        return

    def at(section: str, key: str) -> str:
        return f"{section}_config.{key}" if path is None else f"{path}.{section}.{key}"

    because = f"with {at('metrics', 'high_availability')}: true (several replicas)"
    persistence = config.persistence
    if not persistence.enabled:
        raise ConfigError(
            at("persistence", "enabled"),
            f"users, keys and audit rows would live in each replica's memory {because}: enable persistence "
            "with a postgresql:// connection_string",
        )
    scheme = persistence.url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            at("persistence", "connection_string"),
            f"{scheme}:// storage is local to one process or host {because}: use postgresql://",
        )
    limits = config.security.rate_limiting
    if config.security.enabled and limits.storage.startswith("memory:"):
        # The brute-force guard counts failed logins in the same storage, limits on or off.
        raise ConfigError(
            at("security", "rate_limiting.storage"),
            f"memory:// keeps rate-limit and failed-login counters per process {because}: "
            "set storage: redis://host:6379/0",
        )


def _database_url_default(body: dict[str, Any]) -> None:
    """The seed's staging/production examples name ``backend: postgresql`` and leave the URL to
    ``DATABASE_URL`` (its YAML says ``connection_string: "${DATABASE_URL}"``): do the same."""
    if body.get("backend") in ("postgresql", "postgres") and not any(
        body.get(k) for k in ("connection_string", "url", "dsn")
    ):
        url = os.environ.get("DATABASE_URL")
        if url:
            body["connection_string"] = url


@dataclass(frozen=True)
class EnterpriseConfig(Section):
    _path: ClassVar[str] = "enterprise"

    # The metrics layer and its backends (the seed's `enable_metrics`, `metrics_config`).
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # The storage backend of users, keys, audit and execution rows (`enable_persistence`, `persistence_config`).
    persistence: PersistenceConfig = field(default_factory=PersistenceConfig)
    # Authentication, authorization, rate limits, audit and the body size limit (`enable_security`,
    # `security_config`).
    security: SecurityConfig = field(default_factory=SecurityConfig)
    # Request ids, conversation history and process settings (`server_config`).
    server: ServerConfig = field(default_factory=ServerConfig)

    def _check(self, path: str) -> None:
        # The authorization route table spans sections (rbac.routes, public_paths, the
        # Prometheus path): its rules are compiled here as the layer compiles them, so a bad or
        # clashing rule is a config error naming the key, never a failure at ``serve`` start.
        security = self.security
        if not (security.enabled and security.rbac.enabled):
            return
        try:
            RuleSet(rule for rule, _ in authorization_rules(self))
        except ValueError as exc:
            raise ConfigError(_clashing_key(self, path, str(exc)), str(exc)) from None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, path: str = "enterprise") -> EnterpriseConfig:
        """Build from the contents of the ``enterprise:`` block (already env-substituted)."""
        config = parse_section(cls, data or {}, path)
        # Across sections, so checked on the finished config (never on a half-built one).
        check_high_availability(config, path)
        return config

    @classmethod
    def from_kwargs(
        cls,
        *,
        enable_metrics: bool = False,
        metrics_config: Mapping[str, Any] | None = None,
        enable_persistence: bool = False,
        persistence_config: Mapping[str, Any] | None = None,
        enable_security: bool = True,
        security_config: Mapping[str, Any] | None = None,
        server_config: Mapping[str, Any] | None = None,
    ) -> EnterpriseConfig:
        """Build from the seed's ``TFrameXApp(...)`` keyword names.

        Security is on unless ``enable_security=False`` is passed: secure by default.
        """
        sections: dict[str, Any] = {}
        for name, enabled, section in (
            ("metrics", enable_metrics, metrics_config),
            ("persistence", enable_persistence, persistence_config),
            ("security", enable_security, security_config),
        ):
            if section is not None and not isinstance(section, Mapping):
                raise ConfigError(f"{name}_config", f"expected a mapping, got {section!r}")
            body = dict(section or {})
            if "enabled" in body and bool(body["enabled"]) != bool(enabled):
                raise ConfigError(f"{name}_config.enabled", f"contradicts enable_{name}={enabled!r}")
            body["enabled"] = enabled
            if name == "persistence":
                _database_url_default(body)
            sections[name] = body
        if server_config is not None:
            sections["server"] = server_config
        # Errors name the seed's keyword (metrics_config.port), not the YAML path.
        out = cls()
        for name, body in sections.items():
            keyword = f"{name}_config" if name != "server" else "server_config"
            out = replace(out, **{name: parse_section(type(getattr(out, name)), body, keyword)})
        check_high_availability(out, None)
        return out

    def to_dict(self) -> dict[str, Any]:
        plain = to_plain(self)
        assert isinstance(plain, dict)
        return plain
