"""Which tables age out, and by which TIMESTAMP column.

Read by the persistence config (a ``retention`` key must name one of these tables) and by
:mod:`tframex_asgi.storage.retention`, which deletes and exports by the column.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = ["AGE_COLUMNS"]

# Identity and RBAC tables are never aged out; everything that grows with traffic is.
AGE_COLUMNS: Final = MappingProxyType(
    {
        "conversations": "created_at",
        "messages": "created_at",
        "flow_executions": "started_at",
        "flow_steps": "started_at",
        "agent_executions": "started_at",
        "tool_calls": "called_at",
        "metrics": "timestamp",
        "events": "created_at",
        "audit_logs": "created_at",
    }
)
