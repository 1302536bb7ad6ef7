"""One error tree for the package, each error with a machine-readable code.

HTTP layers turn these into the JSON shape ``{"error": {"code": ..., "message": ...}}``
(see :mod:`tframex_asgi.http`); everything else raises them with ``raise ... from exc``
so the driver error stays attached for debugging.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "ConfigError",
    "ConflictError",
    "LLMError",
    "NotFoundError",
    "ServiceUnavailableError",
    "StorageError",
    "TFrameXASGIError",
    "ToolError",
    "ValidationError",
]


class TFrameXASGIError(Exception):
    """Base of every error raised by tframex-asgi."""

    code: str = "internal_error"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(TFrameXASGIError, ValueError):
    """A configuration value is missing, unknown or invalid.

    ``path`` is the dotted path of the offending key, e.g.
    ``enterprise.metrics.backends.statsd.port``.
    """

    code = "config_error"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


class ValidationError(TFrameXASGIError, ValueError):
    """A request or an argument is malformed."""

    code = "invalid_request"
    status = 400


class NotFoundError(TFrameXASGIError, LookupError):
    code = "not_found"
    status = 404


class ConflictError(TFrameXASGIError):
    """The change conflicts with what is stored (a duplicate name, say)."""

    code = "conflict"
    status = 409


class AuthenticationError(TFrameXASGIError):
    code = "unauthenticated"
    status = 401


class AuthorizationError(TFrameXASGIError):
    code = "forbidden"
    status = 403


class ServiceUnavailableError(TFrameXASGIError):
    code = "service_unavailable"
    status = 503


class StorageError(TFrameXASGIError):
    """The database failed or is unreachable (503; the message stays generic for clients)."""

    code = "storage_unavailable"
    status = 503


class ToolError(TFrameXASGIError):
    """A tool called through the endpoint failed."""

    code = "tool_failed"
    status = 422


class LLMError(TFrameXASGIError):
    """The language model failed; surfaced as an error instead of assistant text."""

    code = "llm_error"
    status = 502
