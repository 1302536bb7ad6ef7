"""The declared metrics: every series tframex-asgi records, fixed at build time.

Backends see each :class:`MetricSpec` once (``declare``) and never a name they were not told
about, so exposition is stable and label sets are known up front. Names carry no namespace or
prefix: each backend adds its own (``tframex_`` for Prometheus, ``tframex.`` for StatsD).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AGENT_BUCKETS",
    "CATALOGUE",
    "HTTP_BUCKETS",
    "OBSERVED",
    "OTHER",
    "TOOL_BUCKETS",
    "UNMATCHED",
    "MetricSpec",
    "spec",
    "status_class",
]

Kind = Literal["counter", "histogram", "gauge"]

# Label value for every path the app has no template for: raw paths never become labels.
UNMATCHED = "<unmatched>"
# Label value once an instrument reached its series cap, and for unknown enum-like values.
OTHER = "<other>"

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Agent runs and flows wait on LLMs: seconds to minutes.
AGENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
TOOL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    # Observed metrics are read from a callback at collection time (queue depth, process
    # resources) instead of being recorded as things happen.
    observed: bool = False
    # Multiprocess Prometheus: True keeps one series per worker (pid label) instead of a sum.
    per_process: bool = False

    @property
    def unit_seconds(self) -> bool:
        return self.name.endswith("_seconds")


def spec(
    name: str,
    kind: Kind,
    help: str,
    *labels: str,
    buckets: tuple[float, ...] = (),
    observed: bool = False,
    per_process: bool = False,
) -> MetricSpec:
    return MetricSpec(name, kind, help, labels, buckets, observed, per_process)


_HTTP = ("method", "route", "status_class")

CATALOGUE: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        spec("http_requests_total", "counter", "HTTP requests by method, route template and status class", *_HTTP),
        spec(
            "http_request_duration_seconds",
            "histogram",
            "HTTP request duration to the last byte of the response (streams included)",
            *_HTTP,
            buckets=HTTP_BUCKETS,
        ),
        spec("http_requests_in_flight", "gauge", "HTTP requests being served now", observed=True),
        spec("agent_executions_total", "counter", "Agent runs by agent and outcome", "agent", "status"),
        spec("agent_duration_seconds", "histogram", "Agent run duration", "agent", buckets=AGENT_BUCKETS),
        spec("tool_calls_total", "counter", "Tool calls by tool, type and outcome", "tool", "type", "status"),
        spec("tool_duration_seconds", "histogram", "Tool call latency", "tool", "type", buckets=TOOL_BUCKETS),
        # Each worker holds its own connection: one series per worker (pid) in multiprocess mode.
        spec(
            "mcp_server_up",
            "gauge",
            "1 while the MCP server is connected, else 0",
            "server",
            observed=True,
            per_process=True,
        ),
        spec("mcp_reconnects_total", "counter", "MCP server reconnection attempts", "server", observed=True),
        spec(
            "mcp_tool_calls_total",
            "counter",
            "MCP tool calls by server, tool and outcome (success/error/unavailable/timeout)",
            "server",
            "tool",
            "status",
        ),
        spec("mcp_tool_duration_seconds", "histogram", "MCP tool call latency", "server", "tool", buckets=TOOL_BUCKETS),
        spec("flow_executions_total", "counter", "Flow runs by flow and outcome", "flow", "status"),
        spec("flow_duration_seconds", "histogram", "Flow run duration", "flow", buckets=AGENT_BUCKETS),
        spec(
            "flow_step_duration_seconds",
            "histogram",
            "Flow step duration by flow, step and outcome",
            "flow",
            "step",
            "status",
            buckets=AGENT_BUCKETS,
        ),
        spec("llm_tokens_total", "counter", "LLM tokens reported by the model, by route and type", "route", "type"),
        spec("ratelimit_rejections_total", "counter", "Requests refused by the rate limiter", "route", "reason"),
        spec("auth_failures_total", "counter", "Authentication failures by reason", "reason"),
        spec("authz_denials_total", "counter", "Authorization denials by reason", "reason"),
        spec("request_rejections_total", "counter", "Requests rejected before routing, by reason", "reason"),
        spec("audit_queue_depth", "gauge", "Rows waiting in the audit/execution write queue", observed=True),
        spec("audit_spilled_total", "counter", "Rows spilled to the local file during an outage", observed=True),
        spec("audit_dropped_total", "counter", "Rows the write queue lost (alert if above 0)", observed=True),
        spec("process_cpu_seconds_total", "counter", "User and system CPU time", observed=True, per_process=True),
        spec("process_resident_memory_bytes", "gauge", "Resident memory size", observed=True, per_process=True),
        spec("process_open_fds", "gauge", "Open file descriptors", observed=True, per_process=True),
    )
}
OBSERVED = tuple(s for s in CATALOGUE.values() if s.observed)

_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def status_class(status: int) -> str:
    """``"2xx"`` etc.; ``"none"`` when no response was started (client went away)."""
    if 100 <= status < 600:
        return _STATUS_CLASSES[status // 100 - 1]
    return "none"
