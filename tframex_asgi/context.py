"""The outermost layer: request id, client address, and the JSON error shape for crashes.

Everything of ours lives in ``scope["tframex"]`` (a :class:`RequestState`); identity lives in
``scope["user"]`` / ``scope["auth"]`` as Starlette expects.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from typing import Any

from tframex_asgi.errors import ServiceUnavailableError, StorageError
from tframex_asgi.http import send_json_error
from tframex_asgi.ids import new_time_hex_id
from tframex_asgi.openai_shape import openai_error_send
from tframex_asgi.paths import RouteTable, match_early
from tframex_asgi.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestContextMiddleware", "RequestState", "client_ip", "get_state", "new_request_id"]

logger = logging.getLogger("tframex_asgi.context")
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
# A JWT or an API key fits _SAFE_ID: such an "id" is replaced, so it never reaches an audit row,
# a log line or the echoed header. (Long hex ids stay: they are trace ids, like ours.)
_CREDENTIAL_ID = re.compile(rb"eyJ[A-Za-z0-9_-]*\.|tfx_")

# A fresh request id: 32 hex digits, the time in ms then 80 random bits (tframex_asgi.ids), so
# the audit index on request ids grows at its end rather than at random pages.
new_request_id = new_time_hex_id


class RequestState(dict[str, Any]):
    """``scope["tframex"]``: request id, client ip, principal, rate-limit state, audit reason."""

    @property
    def request_id(self) -> str:
        return str(self.get("request_id", ""))


def get_state(scope: Scope) -> RequestState:
    """The request's :class:`RequestState`, created if an outer layer did not."""
    state = scope.get("tframex")
    if state is None:
        state = RequestState()
        scope["tframex"] = state
    return state  # type: ignore[no-any-return]


class TrustedProxies:
    def __init__(self, cidrs: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, host: str | None) -> bool:
        if not host or not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)


def client_ip(scope: Scope, proxies: TrustedProxies) -> str | None:
    """The client address: X-Forwarded-For is read right to left, only through trusted proxies."""
    client = scope.get("client")
    peer: str | None = client[0] if client else None
    if peer not in proxies:
        return peer
    forwarded: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            forwarded.extend(p.strip() for p in value.decode("latin-1").split(","))
    for hop in reversed(forwarded):
        if hop not in proxies:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a forged or garbled hop: fall back to what we saw
    return forwarded[0] if forwarded else peer


class RequestContextMiddleware:
    """Assigns a request id (echoed in a response header), resolves the client IP once and
    turns an unhandled exception before the response started into a JSON 500 (a storage or
    service outage into its 503).

    ``header_name=None``: the id is still assigned (audit rows and logs carry it), but no header
    is read or echoed. The stack passes ``enterprise.server.request_id_header``, which
    :class:`~tframex_asgi.config.ServerConfig` checked (a non-empty ASCII name) when it was built."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        header_name: str | None = "X-Request-ID",
        trust_request_id: bool = True,
        trusted_proxies: Iterable[str] = (),
        openai_prefix: str | None = None,
        route_table: RouteTable[Any] | None = None,
    ) -> None:
        self.app = app
        # b"" never matches a header name, and lower() keeps its length (0): nothing is replaced.
        self.header = header_name.lower().encode("latin-1") if header_name else b""
        self.echo = bool(header_name)
        self.trust_request_id = trust_request_id and self.echo
        self.proxies = TrustedProxies(trusted_proxies)
        # Paths whose error bodies leave in OpenAI's shape (set when the TFrameX endpoint is served).
        self.openai_prefix = openai_prefix
        # The authorization table, matched here so rejections by inner layers carry the route.
        self.route_table = route_table

    def _request_id(self, scope: Scope) -> str:
        if self.trust_request_id:
            wanted = self.header
            for name, value in scope.get("headers", ()):
                if name == wanted and _SAFE_ID.match(value) and not _CREDENTIAL_ID.search(value):
                    return str(value.decode("ascii"))
        return new_request_id()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        state = scope.get("tframex")
        if state is None:
            state = scope["tframex"] = RequestState()
        request_id = self._request_id(scope)
        state["request_id"] = request_id
        if self.proxies:
            state["client_ip"] = client_ip(scope, self.proxies)
        else:  # no trusted proxy: the peer is the client, and X-Forwarded-For is never read
            client = scope.get("client")
            state["client_ip"] = client[0] if client else None
        if self.route_table is not None:
            match_early(scope, state, self.route_table, scope.get("method", "") if kind == "http" else "WEBSOCKET")
        if kind == "websocket":
            await self.app(scope, receive, send)
            return

        if self.openai_prefix is not None and scope["path"].startswith(self.openai_prefix):
            send = openai_error_send(send)
        header_name = self.header
        echo = self.echo
        size = len(header_name)
        header = (header_name, request_id.encode("ascii"))
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if echo:
                    # The app's own id header is replaced (lower() keeps the length: others are
                    # kept without lowering their names).
                    old = message.get("headers", ())
                    headers = [h for h in old if len(h[0]) != size or h[0].lower() != header_name]
                    headers.append(header)
                    message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except (ServiceUnavailableError, StorageError) as exc:
            # A dependency is down (a route that let our storage error through: /audit, the
            # user's own routes): the documented 503 with its generic message, not a 500.
            logger.warning("request %s failed: %s (%s)", request_id, exc.code, type(exc.__cause__ or exc).__name__)
            if started:
                raise
            await send_json_error(send_with_id, exc.status, exc.code, exc.message, [(b"retry-after", b"1")])
        except Exception:
            logger.exception("unhandled error in request %s", request_id)
            if started:
                raise
            await send_json_error(send_with_id, 500, "internal_error", f"internal error (request id {request_id})")
