"""``RateLimitMiddleware``: 429 with ``Retry-After`` and IETF ``RateLimit`` headers, pure ASGI.

It sits inside authentication (so ``scope["user"]`` names the API key, user and roles) and outside
authorization. Per request: consume every applicable limit (route, then client), test the token
budget; after the response has ended, charge the tokens the run reported in ``state["usage"]``.
When the storage fails or is slow, ``fail_open`` decides: let the request through, or answer 503.
Either way the request is marked ``audit_reason = "ratelimit_unavailable"`` and counted in
:class:`~tframex_asgi.ratelimit.protocol.RateLimitStats`.
"""

from __future__ import annotations

import logging

from tframex_asgi.config.ratelimit import RateLimitConfig
from tframex_asgi.context import RequestState, get_state
from tframex_asgi.http import send_json_error
from tframex_asgi.ratelimit.backend import open_backend
from tframex_asgi.ratelimit.headers import Header, rate_limit_headers, retry_after_header
from tframex_asgi.ratelimit.policy import Check, Policy, Rules
from tframex_asgi.ratelimit.protocol import Backend, StorageUnavailable, SyncBackend, WindowState
from tframex_asgi.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RateLimitMiddleware"]

logger = logging.getLogger("tframex_asgi.ratelimit")


class RateLimitMiddleware:
    """Rate limits per API key, user or client IP, per role tier, per route and per token budget.

    ``config`` is validated already (a config section checks itself on construction).
    ``backend`` defaults to one opened from ``config.storage``; pass one to share its Redis pool.
    """

    def __init__(self, app: ASGIApp, config: RateLimitConfig | None = None, *, backend: Backend | None = None) -> None:
        cfg = config or RateLimitConfig(enabled=True)  # a RateLimitConfig validated itself when built
        self.app = app
        self.config = cfg
        self.rules = Rules(cfg)
        self.backend = backend or open_backend(cfg)
        self.stats = self.backend.stats
        self.exempt = frozenset(cfg.exempt_paths)
        self.headers_on_success = cfg.headers_on_success
        # Memory storage and a lease count synchronously: no coroutine per limit on the common path.
        self._hit_sync = self.backend.hit_window_sync if isinstance(self.backend, SyncBackend) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        state = get_state(scope)
        hits, tokens = self.rules.checks(scope)
        try:
            if self._hit_sync is not None and not tokens:
                rejected, windows, rest = self._evaluate_sync(hits)
                if rest:  # a lease ran out: the remaining limits go to the storage
                    rejected, windows = await self._evaluate(rest, tokens, windows)
            else:
                rejected, windows = await self._evaluate(hits, tokens)
        except StorageUnavailable:
            await self._unavailable(scope, receive, send, state)
            return
        if rejected is not None:
            await self._reject(send, state, *rejected)
            return
        self.stats.allowed_total += 1
        if windows:
            tightest = windows[0] if len(windows) == 1 else min(windows, key=lambda pw: pw[1].remaining)
            state["ratelimit"] = _summary(*tightest)
        if not tokens and not (windows and self.headers_on_success):
            await self.app(scope, receive, send)
            return
        extra = rate_limit_headers(windows) if self.headers_on_success else []
        app_send = _with_headers(send, extra) if extra else send
        if not tokens:
            await self.app(scope, receive, app_send)
            return
        try:
            await self.app(scope, receive, app_send)
        except BaseException:
            # Cancelled or failed mid-run: the tokens produced so far were still spent.
            await self._charge(tokens, state)
            raise
        await self._charge(tokens, state)

    async def _evaluate(
        self, hits: list[Check], tokens: list[Check], windows: list[tuple[Policy, WindowState]] | None = None
    ) -> tuple[tuple[Policy, WindowState] | None, list[tuple[Policy, WindowState]]]:
        """``(rejection, windows)``: the policy that refused the request (with its window), or
        the windows of every applied policy for the headers. One storage call per limit: the hit
        reports its own window (on network storage: the hit, then a window read only when the
        headers need it or the hit was refused)."""
        backend = self.backend
        want = self.headers_on_success
        windows = windows if windows is not None else []
        for check in hits:
            allowed, state = await backend.hit_window(check.policy.item, check.key, strategy=check.strategy, state=want)
            if not allowed:
                assert state is not None  # a refusal always reports its window
                return (check.policy, state), []
            if state is not None:
                windows.append((check.policy, state))
        # The token budget is charged after the run, so before it we can only refuse a client
        # whose budget is already spent.
        for c in tokens:
            window = await backend.window(c.policy.item, *c.key, strategy=c.strategy)
            if window.remaining <= 0:
                return (c.policy, window), []
            windows.append((c.policy, window))
        return None, (windows if want else [])

    def _evaluate_sync(
        self, hits: list[Check]
    ) -> tuple[tuple[Policy, WindowState] | None, list[tuple[Policy, WindowState]], list[Check]]:
        """:meth:`_evaluate` for a synchronous backend and no token budget (same decisions, no
        awaits), and the checks it could not answer without I/O (from the first such one on)."""
        hit = self._hit_sync
        assert hit is not None
        want = self.headers_on_success
        windows: list[tuple[Policy, WindowState]] = []
        for i, check in enumerate(hits):
            answer = hit(check.policy.item, check.key, strategy=check.strategy, state=want)
            if answer is None:
                return None, windows, hits[i:]
            allowed, state = answer
            if not allowed:
                assert state is not None  # a refusal always reports its window
                return (check.policy, state), [], []
            if state is not None:
                windows.append((check.policy, state))
        return None, windows, []

    async def _reject(self, send: Send, state: RequestState, policy: Policy, window: WindowState) -> None:
        self.stats.rejected_total += 1
        state["audit_reason"] = "rate_limited"
        state["ratelimit"] = _summary(policy, window)
        exhausted = WindowState(window.limit, 0, window.reset, window.window)
        headers = [retry_after_header(window.reset), *rate_limit_headers([(policy, exhausted)])]
        await send_json_error(send, 429, "rate_limited", "too many requests: retry later", headers)

    async def _unavailable(self, scope: Scope, receive: Receive, send: Send, state: RequestState) -> None:
        state["audit_reason"] = "ratelimit_unavailable"
        if self.config.fail_open:
            self.stats.failed_open_total += 1
            await self.app(scope, receive, send)
            return
        self.stats.failed_closed_total += 1
        await send_json_error(
            send,
            503,
            "ratelimit_unavailable",
            "rate limiting is temporarily unavailable: retry later",
            [retry_after_header(max(self.config.cooldown, 1.0))],
        )

    async def _charge(self, tokens: list[Check], state: RequestState) -> None:
        """Spend the run's tokens from each budget; bounded by the storage timeout, never raises."""
        used = int(getattr(state.get("usage"), "total_tokens", 0) or 0)
        if not tokens or used <= 0:
            return
        try:
            for check in tokens:
                item = check.policy.item
                how = check.strategy
                if not await self.backend.hit(item, *check.key, cost=used, strategy=how):
                    # A run may cost more than is left, and limits refuses such a hit outright
                    # (moving and sliding windows): spend what is left so the next run waits.
                    left = (await self.backend.window(item, *check.key, strategy=how)).remaining
                    if left > 0:
                        await self.backend.hit(item, *check.key, cost=min(left, used), strategy=how)
            self.stats.tokens_charged_total += used
        except StorageUnavailable:
            # The response is already sent; the tokens go uncounted, and that is recorded.
            logger.debug("token usage of request %s not charged: storage unavailable", state.request_id)
            state["audit_reason"] = state.get("audit_reason") or "ratelimit_unavailable"


def _summary(policy: Policy, window: WindowState) -> dict[str, object]:
    # state["ratelimit"] for audit/metrics: the tightest policy of this request.
    return {"limit": window.limit, "remaining": window.remaining, "reset": window.reset, "policy": policy.name}


def _with_headers(send: Send, extra: list[Header]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return wrapped
