"""PerformanceMonitor: the HTTP metrics layer (a pure ASGI middleware).

It sees the response by wrapping ``send`` (status, and the time of the last body message, so a
streamed response is measured to its end) and reads ``scope["tframex"]`` once the app returns:
``route`` (the template; never the raw path), ``audit_reason`` (auth failures, rate-limit
rejections) and ``usage`` (LLM tokens). Per request it touches only locals and series bound once
per (method, route, status class).
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any, Protocol

from tframex_asgi.metrics.backend import Exemplar, Recorder, Sample
from tframex_asgi.metrics.collector import MetricsCollector
from tframex_asgi.metrics.spec import OTHER, UNMATCHED, status_class
from tframex_asgi.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PerformanceMonitor", "TraceHook"]

logger = logging.getLogger("tframex_asgi.metrics")


class TraceHook(Protocol):
    """Tracing seen from the metrics layer, called inside the request's trace context."""

    def name_span(self, method: str, route: str) -> None:
        """Name the server span after the route (called at response start: the server span
        ends with the last body message)."""

    def exemplar(self) -> Exemplar | None:
        """The exemplar linking a duration sample to its trace (None when not sampled)."""


_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"))
_AUTH_REASONS = frozenset(
    (
        "missing_credentials",
        "invalid_credentials",
        "multiple_credentials",
        "invalid_token",
        "expired_token",
        "revoked_key",
        "expired_key",
        "disabled_user",
        "auth_failures_blocked",
        "idp_unavailable",
    )
)
_AUTHZ_REASONS = frozenset(("forbidden", "unmapped_route"))
_RATELIMIT_REASONS = frozenset(("rate_limited", "ratelimit_unavailable"))
_REJECT_REASONS = frozenset(("bad_path", "payload_too_large"))


def route_of(scope: Scope, state: Any) -> str:
    """The route template: ours (endpoint/authorization), else Starlette's, else <unmatched>."""
    route = state.get("route") if state is not None else None
    if isinstance(route, str) and route:
        return route
    starlette_route = scope.get("route")
    path = getattr(starlette_route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def _method(scope: Scope) -> str:
    method: str = scope["method"]
    return method if method in _METHODS else "OTHER"


class PerformanceMonitor:
    def __init__(self, app: ASGIApp, collector: MetricsCollector, *, trace_hook: TraceHook | None = None) -> None:
        self.app = app
        self.collector = collector
        self.trace_hook = trace_hook
        # Requests in flight: a plain int read at collection time (an observed gauge), which
        # spares two locked gauge updates per request. Aggregate state, not per-request state.
        self.in_flight = 0
        collector.observe_with("http_requests_in_flight", self._in_flight_sample)
        # Multiprocess Prometheus: the gauge is also written at each change (see live_gauges).
        self._live = collector.live_recorder("http_requests_in_flight")
        # (method, route, status code) -> (requests counter, duration histogram) of its status
        # class: a shared cache of bound series, bounded like the collector's (keyed by the
        # code itself, so the hot path needs no status-class computation).
        self._series: dict[tuple[str, str, int], tuple[Recorder, Recorder]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace_hook = self.trace_hook
        live = self._live
        self.in_flight += 1
        if live is not None:
            live.set(self.in_flight)
        started = perf_counter()
        status = 0
        ended = 0.0

        async def send_and_watch(message: Message) -> None:
            nonlocal status, ended
            kind = message["type"]
            if kind == "http.response.body":
                if not message.get("more_body", False):
                    ended = perf_counter()
            elif kind == "http.response.start":
                status = message["status"]
                if trace_hook is not None:
                    trace_hook.name_span(_method(scope), route_of(scope, scope.get("tframex")))
            await send(message)

        failed = False
        try:
            await self.app(scope, receive, send_and_watch)
        except Exception:
            failed = True
            raise
        finally:
            self.in_flight -= 1
            if live is not None:
                live.set(self.in_flight)
            elapsed = (ended or perf_counter()) - started
            try:
                self._record(scope, 500 if failed else status, elapsed)
            except Exception:
                logger.exception("recording request metrics failed")

    def _in_flight_sample(self) -> list[Sample]:
        return [((), float(self.in_flight))]

    def _bind(self, key: tuple[str, str, int]) -> tuple[Recorder, Recorder]:
        labels = (key[0], key[1], status_class(key[2]))
        pair = (
            self.collector.child("http_requests_total", labels),
            self.collector.child("http_request_duration_seconds", labels),
        )
        if len(self._series) < self.collector.max_series:
            self._series[key] = pair
        return pair

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        state = scope.get("tframex")
        route = state.get("route") if state else None
        if type(route) is not str or not route:
            route = route_of(scope, state)
        method: str = scope["method"]
        if method not in _METHODS:
            method = "OTHER"
        key = (method, route, status)
        pair = self._series.get(key) or self._bind(key)
        pair[0].inc()
        if self.trace_hook is not None:
            pair[1].observe(elapsed, self.trace_hook.exemplar())
        else:
            pair[1].observe(elapsed)
        if state:
            reason = state.get("audit_reason")
            if reason:
                self._rejection(route, reason)
            usage = state.get("usage")
            if usage is not None:
                self._tokens(route, usage)

    def _rejection(self, route: str, reason: str) -> None:
        child = self.collector.child
        if reason in _AUTH_REASONS:
            child("auth_failures_total", (reason,)).inc()
            if reason == "auth_failures_blocked":
                child("ratelimit_rejections_total", (route, reason)).inc()
        elif reason in _RATELIMIT_REASONS:
            child("ratelimit_rejections_total", (route, reason)).inc()
        elif reason in _AUTHZ_REASONS:
            child("authz_denials_total", (reason,)).inc()
        elif reason in _REJECT_REASONS:
            child("request_rejections_total", (reason,)).inc()
        else:
            child("request_rejections_total", (OTHER,)).inc()

    def _tokens(self, route: str, usage: Any) -> None:
        prompt = getattr(usage, "prompt_tokens", 0)
        completion = getattr(usage, "completion_tokens", 0)
        if prompt:
            self.collector.child("llm_tokens_total", (route, "prompt")).inc(prompt)
        if completion:
            self.collector.child("llm_tokens_total", (route, "completion")).inc(completion)
