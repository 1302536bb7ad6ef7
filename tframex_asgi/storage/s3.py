"""``s3://bucket/prefix``: one JSON object per row, for archival (audit logs, exports).

Objects live at ``prefix/table/<id>.json``. Primary keys are enforced with conditional writes
(``If-None-Match: *``), so re-running an export never duplicates a row; UNIQUE and foreign keys
are not (``enforces_constraints`` is False). Reads list the table's objects, so this backend is
for archives, not for request-path queries. Query options: ``?endpoint_url=...&region=...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from tframex_asgi.errors import ConflictError, StorageError, ValidationError
from tframex_asgi.storage.base import BaseStorage, Row
from tframex_asgi.storage.memory import sort_rows
from tframex_asgi.storage.schema import Table, column, table
from tframex_asgi.storage.validate import (
    check_page,
    coerce,
    key_filters,
    prepare_filters,
    prepare_order,
    prepare_update,
    prepared_chunks,
    row_key,
)

if TYPE_CHECKING:
    from tframex_asgi.config.persistence import PersistenceConfig

__all__ = ["S3Storage"]

_CONCURRENCY = 16


def _dump(tbl: Table, row: Mapping[str, Any]) -> bytes:
    out = {}
    for name, value in row.items():
        kind = tbl.by_name[name].kind
        if value is not None and kind == "timestamp":
            value = value.isoformat()
        elif value is not None and kind == "json":
            value = json.loads(value)
        out[name] = value
    return json.dumps(out, ensure_ascii=False).encode("utf-8")


def _load(tbl: Table, body: bytes) -> Row:
    raw = json.loads(body)
    row: Row = {}
    for col in tbl.columns:
        value = raw.get(col.name)
        if value is not None and col.kind == "timestamp":
            value = datetime.fromisoformat(value)
        elif value is not None and col.kind == "decimal":
            value = float(value)
        row[col.name] = value
    return row


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


class S3Storage(BaseStorage):
    enforces_constraints = False

    def __init__(self, url: str, config: PersistenceConfig | None = None) -> None:
        self.url = url
        parts = urlsplit(url)
        if not parts.netloc:
            raise StorageError("s3 URL needs a bucket: s3://bucket/prefix")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.endpoint_url = query.get("endpoint_url")
        self.region = query.get("region", "us-east-1")
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._limit = asyncio.Semaphore(_CONCURRENCY)

    def _key(self, tbl: Table, key: str) -> str:
        return "/".join(p for p in (self.prefix, tbl.name, f"{key}.json") if p)

    def _table_prefix(self, tbl: Table) -> str:
        return "/".join(p for p in (self.prefix, tbl.name) if p) + "/"

    async def connect(self) -> None:
        if self._client is not None:
            return
        stack = contextlib.AsyncExitStack()
        try:
            client = await stack.enter_async_context(
                get_session().create_client("s3", endpoint_url=self.endpoint_url, region_name=self.region)
            )
            try:
                await client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _status(exc) != 404:
                    raise
                await client.create_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError, OSError) as exc:
            await stack.aclose()
            raise StorageError(f"cannot open S3 bucket {self.bucket!r}: {exc}") from exc
        self._stack, self._client = stack, client

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def _call(self, method: str, **kwargs: Any) -> Any:
        if self._client is None:
            raise StorageError("S3 storage is not connected (await storage.connect())")
        async with self._limit:
            try:
                return await getattr(self._client, method)(Bucket=self.bucket, **kwargs)
            except ClientError as exc:
                if _status(exc) in (404, 412):
                    raise
                raise StorageError(f"S3 {method}: {exc}") from exc
            except (BotoCoreError, OSError) as exc:
                raise StorageError(f"S3 {method}: {exc}") from exc

    async def _exists(self, key: str) -> bool:
        try:
            await self._call("head_object", Key=key)
        except ClientError:
            return False
        return True

    async def ping(self) -> bool:
        try:
            await self._call("head_bucket")
        except (StorageError, ClientError):
            return False
        return True

    async def write(self, table: str, data: Mapping[str, Any]) -> str:
        return (await self.write_many(table, [data]))[0]

    async def write_many(
        self, table: str, rows: Sequence[Mapping[str, Any]], *, skip_existing: bool = False
    ) -> list[str]:
        tbl = _table(table)
        prepared = [row async for chunk in prepared_chunks(tbl.name, rows) for row in chunk]
        keys = [row_key(tbl, row) for row in prepared]
        if len(set(keys)) != len(keys) and not skip_existing:
            raise ConflictError(f"duplicate key in {tbl.name} batch")
        if not skip_existing:
            # Checked before writing anything, so a duplicate leaves the batch unwritten.
            found = await asyncio.gather(*(self._exists(self._key(tbl, k)) for k in keys))
            if any(found):
                raise ConflictError(f"duplicate key in {tbl.name}: {keys[found.index(True)]}")

        async def put(key: str, row: Mapping[str, Any]) -> None:
            try:
                await self._call("put_object", Key=self._key(tbl, key), Body=_dump(tbl, row), IfNoneMatch="*")
            except ClientError as exc:
                if not skip_existing:
                    raise ConflictError(f"duplicate key in {tbl.name}: {key}") from exc

        await asyncio.gather(*(put(k, r) for k, r in dict(zip(keys, prepared, strict=True)).items()))
        return [row["id"] if tbl.has_id else k for k, row in zip(keys, prepared, strict=True)]

    async def _get(self, tbl: Table, key: str) -> Row | None:
        try:
            response = await self._call("get_object", Key=self._key(tbl, key))
        except ClientError:
            return None
        async with response["Body"] as body:
            return _load(tbl, await body.read())

    async def _all(self, tbl: Table) -> list[Row]:
        keys: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = await self._call("list_objects_v2", Prefix=self._table_prefix(tbl), **token)
            keys.extend(obj["Key"] for obj in page.get("Contents", ()))
            if not page.get("IsTruncated"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        names = [k.rsplit("/", 1)[-1].removesuffix(".json") for k in keys]
        rows = await asyncio.gather(*(self._get(tbl, n) for n in names))
        return [r for r in rows if r is not None]

    async def _matching(self, tbl: Table, filters: Mapping[str, Any] | None) -> list[Row]:
        wanted = {k: _canonical_read(tbl, k, v) for k, v in prepare_filters(tbl, filters).items()}
        return [r for r in await self._all(tbl) if all(r[k] == v for k, v in wanted.items())]

    async def read(
        self,
        table: str,
        filters: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
        order_by: str | Iterable[str] | None = None,
    ) -> list[Row]:
        tbl = _table(table)
        order = prepare_order(tbl, order_by)
        check_page(limit, offset)
        rows = sort_rows(await self._matching(tbl, filters), order)
        return rows[offset : None if limit is None else offset + limit]

    async def count(self, table: str, filters: Mapping[str, Any] | None = None) -> int:
        tbl = _table(table)
        return len(await self._matching(tbl, filters))

    async def update(self, table: str, id: str, data: Mapping[str, Any]) -> bool:
        tbl, values = prepare_update(table, data)
        key = row_key(tbl, key_filters(tbl, id))
        row = await self._get(tbl, key)
        if row is None:
            return False
        merged = {**row, **{k: _canonical_read(tbl, k, v) for k, v in values.items()}}
        stored = {
            k: (json.dumps(v) if tbl.by_name[k].kind == "json" and v is not None else v) for k, v in merged.items()
        }
        await self._call("put_object", Key=self._key(tbl, key), Body=_dump(tbl, stored))
        return True

    async def delete(self, table: str, id: str) -> bool:
        tbl = _table(table)
        key = self._key(tbl, row_key(tbl, key_filters(tbl, id)))
        if not await self._exists(key):
            return False
        await self._call("delete_object", Key=key)
        return True

    async def _delete_rows(self, tbl: Table, rows: list[Row]) -> int:
        await asyncio.gather(*(self._call("delete_object", Key=self._key(tbl, row_key(tbl, r))) for r in rows))
        return len(rows)

    async def delete_where(self, table: str, filters: Mapping[str, Any]) -> int:
        tbl = _table(table)
        if not filters:
            raise ValidationError("delete_where needs at least one filter")
        return await self._delete_rows(tbl, await self._matching(tbl, filters))

    async def delete_older_than(self, table: str, column_name: str, cutoff: datetime) -> int:
        tbl = _table(table)
        col = column(tbl, column_name)
        if col.kind != "timestamp":
            raise ValidationError(f"{tbl.name}.{col.name} is not a TIMESTAMP column")
        limit = coerce(col, cutoff, "cutoff")
        rows = [r for r in await self._all(tbl) if r[col.name] is not None and r[col.name] < limit]
        return await self._delete_rows(tbl, rows)


def _canonical_read(tbl: Table, name: str, value: Any) -> Any:
    """A canonical value as :func:`_load` returns it (JSON decoded)."""
    if value is not None and tbl.by_name[name].kind == "json":
        return json.loads(value)
    return value


def _table(name: str) -> Table:
    return table(name)
