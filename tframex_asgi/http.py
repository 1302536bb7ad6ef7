"""Small ASGI response helpers shared by the middlewares (no Starlette on the hot path)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from tframex_asgi.types import Send

__all__ = ["error_body", "send_json", "send_json_error"]


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def send_json_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send the package's JSON error shape. ``message`` must never carry a secret."""
    await send_json(send, status, error_body(code, message), headers)
