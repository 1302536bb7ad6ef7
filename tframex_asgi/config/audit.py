"""``enterprise.security.audit``: what is audited and how it is redacted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tframex_asgi.errors import ConfigError

__all__ = ["AuditConfig"]


@dataclass(frozen=True)
class AuditConfig:
    # full: every request; security: 401/403/413/429 and admin changes; off: no layer.
    level: Literal["full", "security", "off"] = "security"
    redact_fields: tuple[str, ...] = ()
    hash_chain: bool = True

    @staticmethod
    def _shorthand(value: Any, path: str) -> Mapping[str, Any]:
        if isinstance(value, bool):
            return {"level": "full" if value else "off"}
        if isinstance(value, str):
            return {"level": value}
        raise ConfigError(path, f"expected a mapping, a level or true/false, got {value!r}")
