"""Shared helpers of the metrics tests."""

from __future__ import annotations

from typing import Any

from tframex_asgi import build_stack
from tframex_asgi.demo import build_demo_app
from tframex_asgi.endpoint import TFrameXEndpoint
from tframex_asgi.llm import OfflineLLM
from tframex_asgi.metrics.prometheus import PrometheusBackend
from tframex_asgi.services import Services
from tframex_asgi.stack import EnterpriseStack


def endpoint() -> TFrameXEndpoint:
    return TFrameXEndpoint(build_demo_app(OfflineLLM(fail_on="BOOM")))


def metrics_config(**backends: Any) -> dict[str, Any]:
    return {"metrics": {"enabled": True, "backends": backends or {"prometheus": True}}, "security": {"enabled": False}}


def make_stack(app: Any = None, **backends: Any) -> EnterpriseStack:
    return build_stack(app if app is not None else endpoint(), metrics_config(**backends))


def prom(stack: EnterpriseStack | Services) -> PrometheusBackend:
    services = stack if isinstance(stack, Services) else stack.services
    for _, backend in services.metrics.backends:
        if isinstance(backend, PrometheusBackend):
            return backend
    raise AssertionError("no prometheus backend")


def value(stack: EnterpriseStack, name: str, **labels: str) -> float:
    """A sample's value (0.0 when the series does not exist)."""
    got = prom(stack).registry.get_sample_value(f"tframex_{name}", labels)
    return 0.0 if got is None else got


def series(stack: EnterpriseStack, family: str) -> set[tuple[tuple[str, str], ...]]:
    """Label sets of ``family``'s samples (suffixes like _count/_bucket excluded)."""
    out = set()
    for metric in prom(stack).registry.collect():
        if metric.name == f"tframex_{family}":
            for s in metric.samples:
                if s.name in (f"tframex_{family}", f"tframex_{family}_total", f"tframex_{family}_count"):
                    out.add(tuple(sorted(s.labels.items())))
    return out
