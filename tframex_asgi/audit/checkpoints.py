"""Prune checkpoints: where a pruned chain now starts, read from its ``audit.prune`` rows.

Here, below the chain verifier, the exporter and the pruner, because all three read them
(:mod:`tframex_asgi.audit.prune` writes them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["PRUNE_ACTION", "Checkpoints", "checkpoints_from", "load_checkpoints"]

PRUNE_ACTION = "audit.prune"
Checkpoints = dict[str, tuple[int, str]]  # chain_id -> (last pruned seq, its row_hash)


def checkpoints_from(rows: Iterable[Mapping[str, Any]]) -> Checkpoints:
    """The checkpoints declared by ``audit.prune`` rows (the furthest one per chain)."""
    found: Checkpoints = {}
    for row in rows:
        if row.get("action") != PRUNE_ACTION:
            continue
        values = row.get("new_values")
        chains = values.get("chains") if isinstance(values, Mapping) else None
        if not isinstance(chains, Mapping):
            continue
        for chain_id, point in chains.items():
            if not isinstance(point, Mapping):
                continue
            seq, row_hash = point.get("through_seq"), point.get("through_hash")
            if isinstance(seq, int) and isinstance(row_hash, str) and seq > found.get(str(chain_id), (0, ""))[0]:
                found[str(chain_id)] = (seq, row_hash)
    return found


async def load_checkpoints(storage: Any) -> Checkpoints:
    rows = await storage.read("audit_logs", {"action": PRUNE_ACTION}, limit=100_000)
    return checkpoints_from(rows)
