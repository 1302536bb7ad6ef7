"""The opaque ``cursor`` of ``GET /audit``: where the previous page ended, sealed to its query.

A cursor carries the key of the last row of a page (``created_at``, ``id``) and a MAC over that
key *and* the query's filters and time window. So a cursor that was edited, cut short, or reused
with other filters is a 400 naming ``cursor``, never a silently different page. The MAC key is
``security.audit.hmac_key`` when set (then only this deployment can mint cursors), else a fixed
one: the cursor is then checked, not secret. Either way a cursor only ever selects rows the
caller may already list: it grants nothing.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from typing import Any

from tframex_asgi.errors import ValidationError

__all__ = ["CursorCodec"]

_DEFAULT_KEY = b"tframex-asgi/audit-cursor/v1"
_MAC_BYTES = 12
# Base64 of the longest key ("YYYY-MM-DDTHH:MM:SS.ffffff|<uuid>") plus its MAC, with room to spare.
_MAX_CHARS = 160


def _binding(filters: Mapping[str, Any], since: dt.datetime | None, until: dt.datetime | None) -> bytes:
    window = [None if t is None else t.isoformat() for t in (since, until)]
    return json.dumps([sorted(filters.items()), window], separators=(",", ":"), default=str).encode()


class CursorCodec:
    def __init__(self, key: str | None = None) -> None:
        self._key = hashlib.sha256(b"audit-cursor:" + key.encode()).digest() if key else _DEFAULT_KEY

    def _mac(self, payload: bytes, binding: bytes) -> bytes:
        return hmac.new(self._key, payload + b"\n" + binding, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(
        self, row: Mapping[str, Any], filters: Mapping[str, Any], since: dt.datetime | None, until: dt.datetime | None
    ) -> str:
        """The cursor after ``row`` (a stored row: naive UTC ``created_at``, text ``id``)."""
        created = row["created_at"]
        payload = f"{created.isoformat(timespec='microseconds')}|{row['id']}".encode()
        raw = payload + self._mac(payload, _binding(filters, since, until))
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decode(
        self, text: str, filters: Mapping[str, Any], since: dt.datetime | None, until: dt.datetime | None
    ) -> tuple[dt.datetime, str]:
        """(created_at, id) of the row a cursor points after; a ValidationError naming ``cursor`` otherwise."""
        if len(text) > _MAX_CHARS:
            raise ValidationError("cursor is not a cursor of GET /audit (too long)")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise ValidationError("cursor is not a cursor of GET /audit (not base64url)") from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload, _binding(filters, since, until))):
            raise ValidationError(
                "cursor does not match this query: it was changed, or belongs to other filters or another time window"
            )
        try:
            created_text, row_id = payload.decode().split("|")
            created = dt.datetime.fromisoformat(created_text)
            row_id = str(uuid.UUID(row_id))
        except ValueError:  # a MAC made with the same key over bad data: still never a 500
            raise ValidationError("cursor is not a cursor of GET /audit (bad key)") from None
        return created, row_id
