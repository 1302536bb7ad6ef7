"""Scheduled backup to S3 with signed, chained digests (CloudTrail-digest style).

Every ``persistence.backup_interval`` seconds the stack archives ``audit_logs`` (ordered by chain
and sequence, every column, secrets already redacted as in ``audit export``) and
the execution records (``agent_executions``, ``tool_calls``, ``flow_executions``, ``flow_steps``)
as JSONL objects under ``backup_to_s3``, then writes a digest
``<prefix>/digests/<stamp>.json`` naming each object with its SHA-256 and row count, the last
sequence and hash of every audit chain, and the previous digest's key and SHA-256; the digest is
signed with HMAC-SHA-256 under the audit ``hmac_key`` (unsigned, and said so, without one).

``tframex-asgi audit verify --from s3://bucket/prefix`` walks the digests in order and checks each
signature, the link to the previous digest, every object's SHA-256, and the hash chains of the
newest audit archive: deleting, reordering or editing an archive or a digest is detected.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from tframex_asgi.audit.chain import VerifyReport, verify_rows
from tframex_asgi.audit.export import iter_rows
from tframex_asgi.audit.redact import Redactor
from tframex_asgi.audit.routes import public_row
from tframex_asgi.errors import ConfigError, StorageError
from tframex_asgi.storage.s3client import s3_client
from tframex_asgi.util import cancel_and_wait

__all__ = ["BackupReport", "ScheduledBackup", "backup_scheduled", "run_backup", "verify_backups"]

logger = logging.getLogger("tframex_asgi.audit.backup")
TABLES = (
    ("audit_logs", ("chain_id", "seq")),
    ("agent_executions", ("started_at", "id")),
    ("tool_calls", ("called_at", "id")),
    ("flow_executions", ("started_at", "id")),
    ("flow_steps", ("execution_id", "step_order")),
)


_SETTING = "enterprise.persistence.backup_to_s3"


def _split(url: str) -> tuple[str, str]:
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not url.startswith("s3://") or not bucket:
        raise ConfigError("enterprise.persistence.backup_to_s3", f"expected s3://bucket/prefix, got {url!r}")
    return bucket, prefix.strip("/")


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _sign(doc: dict[str, Any], key: bytes | None) -> str | None:
    return hmac.new(key, _canonical(doc), hashlib.sha256).hexdigest() if key else None


async def _body(s3: Any, bucket: str, key: str) -> bytes:
    obj = await s3.get_object(Bucket=bucket, Key=key)
    async with obj["Body"] as stream:
        data: bytes = await stream.read()
    return data


async def _digest_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/digests/".lstrip("/")):
        keys.extend(item["Key"] for item in page.get("Contents", ()))
    return sorted(keys)  # stamps sort in time order


async def run_backup(storage: Any, url: str, key: bytes | None, redactor: Redactor, now: dt.datetime) -> str:
    """One backup: the archives, then their digest; returns the digest's key."""
    bucket, prefix = _split(url)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    base = f"{prefix}/" if prefix else ""
    files: list[dict[str, Any]] = []
    chains: dict[str, dict[str, Any]] = {}
    async with s3_client(_SETTING) as s3:
        for table, order in TABLES:
            lines: list[bytes] = []
            async for row in iter_rows(storage, table, order):
                out = public_row(row, redactor) if table == "audit_logs" else row
                lines.append(json.dumps(out, separators=(",", ":"), ensure_ascii=False, default=str).encode())
                if table == "audit_logs" and row.get("chain_id"):
                    chains[str(row["chain_id"])] = {"seq": row.get("seq"), "hash": row.get("hash")}
            body = b"\n".join(lines) + (b"\n" if lines else b"")
            object_key = f"{base}{table}/{stamp}.jsonl"
            await s3.put_object(Bucket=bucket, Key=object_key, Body=body, ContentType="application/x-ndjson")
            files.append(
                {"key": object_key, "table": table, "rows": len(lines), "sha256": hashlib.sha256(body).hexdigest()}
            )
        previous = None
        earlier = await _digest_keys(s3, bucket, prefix)
        if earlier:
            last = await _body(s3, bucket, earlier[-1])
            previous = {"key": earlier[-1], "sha256": hashlib.sha256(last).hexdigest()}
        doc: dict[str, Any] = {"created_at": now.isoformat(), "files": files, "chains": chains, "previous": previous}
        doc["signature"] = _sign(doc, key)
        digest_key = f"{base}digests/{stamp}.json"
        await s3.put_object(Bucket=bucket, Key=digest_key, Body=_canonical(doc), ContentType="application/json")
    return digest_key


@dataclass
class BackupReport:
    digests: int = 0
    signed: bool = True
    problems: list[str] = field(default_factory=list)
    audit: VerifyReport | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and (self.audit is None or self.audit.ok)


async def verify_backups(url: str, key: bytes | None) -> BackupReport:
    bucket, prefix = _split(url)
    report = BackupReport()
    async with s3_client(_SETTING) as s3:
        keys = await _digest_keys(s3, bucket, prefix)
        if not keys:
            report.problems.append(f"no digests under {url}")
            return report
        previous: dict[str, Any] | None = None
        newest: dict[str, Any] = {}
        for digest_key in keys:
            raw = await _body(s3, bucket, digest_key)
            doc = json.loads(raw)
            signature = doc.pop("signature", None)
            if key is None or signature is None:
                report.signed = False
            elif not hmac.compare_digest(signature, _sign(doc, key) or ""):
                report.problems.append(f"{digest_key}: bad signature")
            if doc.get("previous") != previous:
                report.problems.append(f"{digest_key}: does not follow the previous digest (one deleted or replaced)")
            previous = {"key": digest_key, "sha256": hashlib.sha256(raw).hexdigest()}
            newest = doc
            report.digests += 1
        for entry in newest.get("files", ()):
            body = await _body(s3, bucket, entry["key"])
            if hashlib.sha256(body).hexdigest() != entry["sha256"]:
                report.problems.append(f"{entry['key']}: content differs from its digest")
                continue
            if entry["table"] == "audit_logs":
                rows = [json.loads(line) for line in body.splitlines() if line.strip()]
                report.audit = verify_rows(rows, key)
    return report


class ScheduledBackup:
    """A backup of ``storage`` to ``persistence.backup_to_s3`` every ``backup_interval`` seconds."""

    def __init__(self, cfg: Any, storage: Any, clock: Any) -> None:
        self.storage, self.clock = storage, clock
        self.url = str(cfg.persistence.backup_to_s3)
        self.interval = cfg.persistence.backup_interval
        hmac_key = cfg.security.audit.hmac_key
        self.key = hmac_key.encode() if hmac_key else None
        self.redactor = Redactor(cfg.security.audit.redact_fields)
        self._task: asyncio.Task[None] | None = None
        self.last: str | None = None

    async def once(self) -> str:
        now = dt.datetime.fromtimestamp(self.clock.time(), dt.UTC)
        self.last = await run_backup(self.storage, self.url, self.key, self.redactor, now)
        return self.last

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.once()
            except StorageError as exc:  # S3 or the database down: the next interval tries again
                logger.warning("scheduled backup to %s failed: %s", self.url, exc)
            except Exception:
                logger.exception("scheduled backup to %s failed", self.url)

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None


def backup_scheduled(cfg: Any) -> bool:
    """Whether ``cfg`` asks for scheduled backups (``backup_to_s3`` a URL, ``backup_interval`` above 0)."""
    persistence = cfg.persistence
    return bool(persistence.enabled and isinstance(persistence.backup_to_s3, str) and persistence.backup_interval > 0)
