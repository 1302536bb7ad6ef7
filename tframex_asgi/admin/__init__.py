"""Administration of users, roles and API keys: HTTP routes, the service behind them and the
``users``/``roles``/``keys`` commands (tframex_asgi.cli.admin_common), and first-start bootstrap."""

from __future__ import annotations

__all__: list[str] = []
