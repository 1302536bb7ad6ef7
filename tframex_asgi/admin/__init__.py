"""Administration of users, roles and API keys: HTTP routes, CLI support and first-start bootstrap."""

from __future__ import annotations

__all__: list[str] = []
