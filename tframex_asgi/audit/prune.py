"""Prune old audit rows and keep the hash chains verifiable: a signed checkpoint.

Deleting the oldest rows of a chain removes its start, which ``audit verify`` rightly reports
as truncation. Before deleting, :func:`prune_audit` records one ``audit.prune`` row (chained and,
with ``audit.hmac_key``, keyed like every other row) naming, for every chain that keeps rows,
the last pruned ``seq`` and its ``row_hash``. The verifier starts such a chain from that point
instead of from the genesis hash, so the rows that remain must still link up exactly; any
other gap, edit or reordering is still reported. Checkpoints of earlier prunes are carried
forward, so pruning a checkpoint row itself loses nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tframex_asgi.audit.checkpoints import PRUNE_ACTION, Checkpoints, checkpoints_from, load_checkpoints
from tframex_asgi.audit.export import iter_rows
from tframex_asgi.audit.logger import get_audit
from tframex_asgi.util import as_naive_utc

__all__ = ["PRUNE_ACTION", "checkpoints_from", "load_checkpoints", "prune_audit"]


def _naive_utc(value: Any) -> dt.datetime | None:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return as_naive_utc(value)


async def prune_audit(services: Any, before: dt.datetime) -> int:
    """Delete ``audit_logs`` rows created before ``before`` (naive UTC), after recording the
    checkpoint that keeps the remaining chains verifiable. Returns the rows deleted.

    ``services`` must be started; its audit logger writes the checkpoint row.
    """

    storage = services.storage
    cutoff = _naive_utc(before)
    assert cutoff is not None
    carried = await load_checkpoints(storage)
    pruned: Checkpoints = {}
    kept: set[str] = set()
    async for row in iter_rows(storage):  # chain, seq order: the last old row of a chain wins
        chain_id, seq = row.get("chain_id"), row.get("seq")
        if chain_id is None or seq is None:
            continue
        created = _naive_utc(row.get("created_at"))
        if created is not None and created < cutoff:
            pruned[str(chain_id)] = (int(seq), str(row.get("row_hash")))
        else:
            kept.add(str(chain_id))
    if pruned:
        points = {**carried}
        for chain_id, point in pruned.items():
            if point[0] > points.get(chain_id, (0, ""))[0]:
                points[chain_id] = point
        chains = {c: {"through_seq": s, "through_hash": h} for c, (s, h) in sorted(points.items()) if c in kept}
        audit = get_audit(services)
        audit.log_change(
            principal=None, action=PRUNE_ACTION, resource_type="audit_chain",
            new_values={"before": cutoff.isoformat(timespec="microseconds") + "Z"},
            internal_values={"chains": chains},  # chain ids and row hashes: hex, not secrets
        )  # fmt: skip
        await audit.flush()  # durable before a single row is deleted
    deleted: int = await storage.delete_older_than("audit_logs", "created_at", cutoff)
    return deleted
