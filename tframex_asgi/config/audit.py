"""``enterprise.security.audit``: what is audited and how it is redacted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from tframex_asgi.config._parse import Section
from tframex_asgi.errors import ConfigError

__all__ = ["AuditConfig"]


@dataclass(frozen=True)
class AuditConfig(Section):
    _path: ClassVar[str] = "enterprise.security.audit"

    # full: every request; security: 401/403/413/429 and admin changes; off: no layer.
    level: Literal["full", "security", "off"] = "security"
    redact_fields: tuple[str, ...] = ()
    hash_chain: bool = True
    # With a key, row hashes are HMAC-SHA-256: whoever can write the table cannot forge a chain.
    hmac_key: str | None = None
    # Security events (401/403/413/429) are also written to the seed's events table.
    events_table: bool = True
    # buffered: rows reach the database off the request path (a SIGKILL loses the last ~0.15 s).
    # durable: each response waits until its row is fsynced in a local journal (docs/audit.md).
    durability: Literal["buffered", "durable"] = "buffered"
    # Directory of the durable journal's files (one per process), replayed at start.
    journal_path: str = "./tframex-audit-journal"

    @staticmethod
    def _shorthand(value: Any, path: str) -> Mapping[str, Any]:
        if isinstance(value, bool):
            return {"level": "full" if value else "off"}
        if isinstance(value, str):
            return {"level": value}
        raise ConfigError(path, f"expected a mapping, a level or true/false, got {value!r}")

    def _check(self, path: str) -> None:
        if self.level not in ("full", "security", "off"):
            raise ConfigError(f"{path}.level", f"expected full, security or off, got {self.level!r}")
        if self.hmac_key is not None and len(self.hmac_key) < 16:
            raise ConfigError(f"{path}.hmac_key", "must be at least 16 characters")
        if self.durability not in ("buffered", "durable"):
            raise ConfigError(f"{path}.durability", f"expected buffered or durable, got {self.durability!r}")
        if not self.journal_path.strip():
            raise ConfigError(f"{path}.journal_path", "must name a directory")
        if self.hmac_key is not None and not self.hash_chain:
            raise ConfigError(f"{path}.hmac_key", "needs hash_chain: true")

    def __repr__(self) -> str:
        # The key must not show up in logs or tracebacks that print the config.
        key = "***" if self.hmac_key else None
        return (
            f"AuditConfig(level={self.level!r}, redact_fields={self.redact_fields!r}, "
            f"hash_chain={self.hash_chain!r}, hmac_key={key!r}, events_table={self.events_table!r}, "
            f"durability={self.durability!r}, journal_path={self.journal_path!r})"
        )
