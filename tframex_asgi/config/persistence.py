"""``enterprise.persistence``: storage backend, migrations, the write queue and retention."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from tframex_asgi.catalog.retention import AGE_COLUMNS
from tframex_asgi.config._parse import Section
from tframex_asgi.errors import ConfigError

__all__ = ["PersistenceConfig", "WriteQueueConfig"]

_SCHEMES = {
    "memory": "memory",
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "s3": "s3",
}
_DEFAULT_URLS = {"memory": "memory://", "sqlite": "sqlite:///./tframex.db"}


@dataclass(frozen=True)
class WriteQueueConfig(Section):
    _path: ClassVar[str] = "enterprise.persistence.queue"

    max_size: int = 50_000
    # Up to this many rows per batch (one transaction): large enough that a burst is a few transactions.
    batch_size: int = 5000
    # Seconds the writer waits for a fuller batch before writing a partial one (a full batch is
    # written at once); also how often an idle writer looks again.
    flush_interval: float = 0.2
    spill_path: str = "./tframex-spill.jsonl"

    def _check(self, path: str) -> None:
        for name in ("max_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{path}.{name}", "must be at least 1")
        if self.flush_interval <= 0:
            raise ConfigError(f"{path}.flush_interval", "must be greater than 0")


@dataclass(frozen=True)
class PersistenceConfig(Section):
    _path: ClassVar[str] = "enterprise.persistence"

    enabled: bool = False
    backend: Literal["memory", "sqlite", "postgresql", "s3"] | None = None
    connection_string: str | None = None
    migrations: bool = True
    pool_min_size: int = 1
    pool_max_size: int = 10
    # Only checked: true requires replica_urls. Reads go to the replicas whenever replica_urls is
    # set, whatever this says.
    read_replicas: bool = False
    # postgresql:// URLs of streaming read replicas (connection_string must be postgresql:// too).
    # Reads (read, count, paging) go to them in turn; writes, migrations, /readyz and reads made
    # within read_your_writes seconds after a write in the same request go to connection_string
    # (the primary). A replica that fails is skipped for 5 s, its reads going to the primary. Each
    # replica's pool holds up to pool_max_size connections.
    replica_urls: tuple[str, ...] = ()
    # Seconds after a write during which reads in the same request still go to the primary, so a
    # handler reads back what it wrote; 0 sends every read to a replica.
    read_your_writes: float = 5.0
    # An s3://bucket/prefix URL: audit logs and execution records are archived there every
    # backup_interval seconds with signed, chained digests (`audit verify --from` checks them);
    # also the default target of `tframex-asgi data export`.
    backup_to_s3: bool | str = False
    # Seconds between scheduled backups; 0 keeps backup_to_s3 as the export target only.
    backup_interval: float = 3600.0
    # The write queue: execution, audit and metrics rows are written in batches off the request path.
    queue: WriteQueueConfig = field(default_factory=WriteQueueConfig)
    # Table name -> maximum age in days (at least 1), for `tframex-asgi data prune` (the server does
    # not prune by itself). Tables: conversations, messages, flow_executions, flow_steps,
    # agent_executions, tool_calls, metrics, events, audit_logs.
    retention: Mapping[str, int] = field(default_factory=dict)

    _aliases: ClassVar[dict[str, str]] = {"url": "connection_string", "dsn": "connection_string"}

    @staticmethod
    def _shorthand(value: Any, path: str) -> Mapping[str, Any]:
        if isinstance(value, bool):
            return {"enabled": value}
        raise ConfigError(path, f"expected a mapping or true/false, got {value!r}")

    @property
    def url(self) -> str:
        """The storage URL; the backend is chosen by its scheme."""
        if self.connection_string:
            return self.connection_string
        return _DEFAULT_URLS.get(self.backend or "sqlite", "")

    def _check(self, path: str) -> None:
        if self.connection_string:
            scheme = self.connection_string.split(":", 1)[0].split("+", 1)[0].lower()
            kind = _SCHEMES.get(scheme)
            if kind is None:
                raise ConfigError(
                    f"{path}.connection_string",
                    f"unsupported scheme {scheme!r} (memory://, sqlite:///path, postgresql://, s3://)",
                )
            if self.backend is not None and self.backend != kind:
                raise ConfigError(
                    f"{path}.backend",
                    f"{self.backend!r} does not match the connection string's scheme {scheme!r}",
                )
        elif self.enabled and self.backend in ("postgresql", "s3"):
            hint = " (or set DATABASE_URL)" if self.backend == "postgresql" and path.endswith("_config") else ""
            raise ConfigError(f"{path}.connection_string", f"is required for the {self.backend} backend{hint}")
        if self.read_replicas and not self.replica_urls:
            raise ConfigError(
                f"{path}.replica_urls", "is required with read_replicas: true (the replicas' postgresql:// URLs)"
            )
        if self.replica_urls:
            if _SCHEMES.get(self.url.split(":", 1)[0].split("+", 1)[0].lower()) != "postgresql":
                raise ConfigError(
                    f"{path}.replica_urls", "read replicas need a postgresql:// connection_string (the primary)"
                )
            for i, replica in enumerate(self.replica_urls):
                if _SCHEMES.get(replica.split(":", 1)[0].split("+", 1)[0].lower()) != "postgresql":
                    raise ConfigError(f"{path}.replica_urls[{i}]", "must be a postgresql:// URL")
        if self.read_your_writes < 0:
            raise ConfigError(f"{path}.read_your_writes", "must be 0 or more seconds")
        if self.backup_to_s3 is True:
            raise ConfigError(
                f"{path}.backup_to_s3",
                "true does not say where: set it to the s3://bucket/prefix URL backups are written to",
            )
        if self.backup_interval < 0:
            raise ConfigError(f"{path}.backup_interval", "must be 0 (no schedule) or more seconds")
        if isinstance(self.backup_to_s3, str) and not self.backup_to_s3.startswith("s3://"):
            raise ConfigError(f"{path}.backup_to_s3", f"must be an s3://bucket/prefix URL, got {self.backup_to_s3!r}")
        if self.pool_min_size < 0 or self.pool_max_size < max(1, self.pool_min_size):
            raise ConfigError(f"{path}.pool_max_size", "must be at least 1 and at least pool_min_size")
        for table, days in self.retention.items():
            if table not in AGE_COLUMNS:
                raise ConfigError(
                    f"{path}.retention.{table}", f"no retention for this table ({', '.join(AGE_COLUMNS)})"
                )
            if days < 1:
                raise ConfigError(f"{path}.retention.{table}", "must be at least 1 day")
