"""Credentials cut out of free text: error messages and log records that quote an MCP server's URL.

The MCP SDK's HTTP transports log the endpoint URL at DEBUG and httpx logs every request's URL
at INFO; a URL may carry ``user:password@`` or ``?token=...``. The filter is installed on those
loggers when :mod:`tframex_asgi.mcp.connection` is imported, before any MCP connection exists.
"""

from __future__ import annotations

import logging
import re

__all__ = ["install_log_filter", "redact"]

_URL_SECRETS = re.compile(r"(?<=://)[^/@\s'\"]+@|\?[^\s'\"=]+=[^\s'\"]*")
_LOGGERS = ("mcp.client.streamable_http", "mcp.client.sse", "httpx")


def redact(text: str) -> str:
    return _URL_SECRETS.sub(lambda m: "***@" if m.group().endswith("@") else "?***", text)


class _RedactURLs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = _RedactURLs()


def install_log_filter() -> None:
    """Idempotent (a logger holds a filter once)."""
    for name in _LOGGERS:
        logging.getLogger(name).addFilter(_FILTER)
