"""One contract suite over every metrics backend, and custom backends named by import path."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.asgi_harness import request
from tests.metrics.helpers import make_stack
from tframex_asgi.config import EnterpriseConfig
from tframex_asgi.config.metrics import CustomBackendConfig, PrometheusConfig, StatsDConfig
from tframex_asgi.errors import ConfigError
from tframex_asgi.events import AgentFinished, FlowFinished, FlowStepFinished, RunInfo, ToolCalled
from tframex_asgi.metrics import MetricsCollector
from tframex_asgi.metrics.backend import load_custom_backend
from tframex_asgi.metrics.prometheus import PrometheusBackend
from tframex_asgi.metrics.spec import CATALOGUE
from tframex_asgi.metrics.statsd import StatsDBackend


class ListBackend:
    """A custom backend: records (name, labels, op, value) tuples."""

    def __init__(self, sink: str = "default") -> None:
        self.sink = sink
        self.declared: list[str] = []
        self.records: list[tuple] = []
        self.started = self.stopped = False
        RECENT.append(self)

    def declare(self, spec):
        self.declared.append(spec.name)

    def bind(self, spec, labels):
        backend = self

        class Series:
            def inc(self, amount=1.0):
                backend.records.append((spec.name, labels, "inc", amount))

            def observe(self, value, exemplar=None):
                backend.records.append((spec.name, labels, "observe", value))

            def set(self, value):
                backend.records.append((spec.name, labels, "set", value))

        return Series()

    async def start(self):
        self.started = True

    async def stop(self):
        self.stopped = True


class BrokenBackend(ListBackend):
    def bind(self, spec, labels):
        class Series:
            def inc(self, amount=1.0):
                raise RuntimeError("backend down")

            observe = set = inc

        return Series()


class NotABackend:
    def __init__(self, **options):
        pass


RECENT: list[ListBackend] = []
DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def doc_block(lang: str, after: str = "") -> str:
    """The first ``lang`` code block of docs/metrics.md after the heading ``after``."""
    text = DOC.read_text()
    text = text[text.index(after) :] if after else text
    return re.search(rf"```{lang}\n(.*?)```", text, re.S).group(1)


def _backend(kind: str, port: int):
    if kind == "prometheus":
        return PrometheusBackend(PrometheusConfig(enabled=True))
    if kind == "statsd":
        return StatsDBackend(StatsDConfig(enabled=True, host="127.0.0.1", port=port))
    return load_custom_backend(CustomBackendConfig(class_path=f"tests.metrics.test_backends:{kind}"), "x")


def _events():
    info = RunInfo()
    yield AgentFinished("r", "a", None, info, "in", "out", "success", None, 1.0, 2.0, 1000.0, 0, False)
    yield AgentFinished("r2", "a", None, info, "in", "o", "cancelled", "cancelled: ...", 1.0, 2.0, 1000.0, 0, True)
    yield ToolCalled("c", "r", "t", "mcp", {}, "ok", "error", "boom", 1.0, 1.5, 500.0, info)
    yield FlowStepFinished("e", "f", "s", "agent", 0, "in", "out", "success", None, 1.0, 2.0, 1000.0, info)
    yield FlowFinished("e", "f", info, "in", "out", "weird", None, 1.0, 2.0, 1000.0, 1)


@pytest.mark.parametrize("kind", ["prometheus", "statsd", "ListBackend", "BrokenBackend"])
async def test_backend_contract(kind: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        backend = _backend(kind, udp.getsockname()[1])
        guarded = ["b"] if kind.endswith("Backend") else []
        collector = MetricsCollector([("b", backend)], guarded=guarded, max_series=10)
        collector.observe_with("audit_queue_depth", lambda: [((), 4.0)])
        collector.observe_with("audit_spilled_total", lambda: [((), 2.0)])
        await collector.start()
        for event in _events():
            collector.on_event(event)
        # Every declared metric records without raising, whatever the backend does.
        for spec in CATALOGUE.values():
            for i in range(15):  # past the series cap
                child = collector.child(spec.name, tuple(f"v{i}" for _ in spec.labels))
                child.inc(1.0) if spec.kind != "histogram" else child.observe(0.5, {"trace_id": "ab" * 16})
                if spec.kind == "gauge":
                    child.set(3.0)
            assert collector.series_count(spec.name) <= 11
        collector.sample()
        await collector.stop()
    if kind == "ListBackend":
        backend = RECENT[-1]
        assert backend.started and backend.stopped and set(backend.declared) == set(CATALOGUE)
        assert ("tool_calls_total", ("t", "mcp", "error"), "inc", 1.0) in backend.records
        assert ("flow_executions_total", ("f", "<other>"), "inc", 1.0) in backend.records
        assert ("agent_executions_total", ("a", "cancelled"), "inc", 1.0) in backend.records
        assert ("agent_duration_seconds", ("a",), "observe", 1.0) in backend.records
        assert ("audit_queue_depth", (), "set", 4.0) in backend.records
        # Observed running totals reach push backends as deltas: 2.0 once, then nothing new.
        assert [r for r in backend.records if r[0] == "audit_spilled_total" and r[3] != 1.0] == [
            ("audit_spilled_total", (), "inc", 2.0)
        ]


async def test_custom_backend_from_config_and_a_broken_one_never_breaks_requests() -> None:
    RECENT.clear()
    stack = make_stack(
        custom=[
            {"class": "tests.metrics.test_backends:ListBackend", "options": {"sink": "s1"}},
            {"class": "tests.metrics.test_backends.BrokenBackend"},
        ]
    )
    assert [b.sink for b in RECENT] == ["s1", "default"]
    async with stack:
        assert (await request(stack, "GET", "/healthz")).status == 200
        assert (await request(stack, "POST", "/tools/add/call", {"arguments": {"a": 1, "b": 2}})).status == 200
    good = RECENT[0]
    assert ("http_requests_total", ("GET", "/healthz", "2xx"), "inc", 1.0) in good.records
    assert ("tool_calls_total", ("add", "native", "success"), "inc", 1.0) in good.records


@pytest.mark.parametrize(
    ("custom", "path", "message"),
    [
        ({"class": "no_such_module_x:B"}, "enterprise.metrics.backends.custom[0].class", "cannot import"),
        ({"class": "tests.metrics.test_backends:Nope"}, "enterprise.metrics.backends.custom[0].class", "cannot import"),
        (
            {"class": "tests.metrics.test_backends:NotABackend"},
            "enterprise.metrics.backends.custom[0].class",
            "does not implement",
        ),
        (
            {"class": "tests.metrics.test_backends:ListBackend", "options": {"bad": 1}},
            "enterprise.metrics.backends.custom[0].options",
            "refused",
        ),
    ],
)
def test_custom_backend_errors_name_the_config_path(custom: dict, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_stack(custom=[custom])
    assert info.value.path == path and message in info.value.reason


def test_config_validation() -> None:
    with pytest.raises(ConfigError) as info:
        EnterpriseConfig.from_mapping({"metrics": {"enabled": True, "max_series": 0}})
    assert info.value.path == "enterprise.metrics.max_series"
    cfg = EnterpriseConfig.from_mapping(
        {"metrics": {"enabled": True, "backends": {"statsd": {"enabled": True, "tags": {"env": "prod"}}}}}
    )
    assert dict(cfg.metrics.backends.statsd.tags) == {"env": "prod"}


async def test_the_documented_custom_backend_works() -> None:
    import sys
    import types

    code = doc_block("python", "## Custom backends")
    module = types.ModuleType("docs_metrics_example")
    sys.modules[module.__name__] = module
    try:
        exec(compile(code, "docs/metrics.md", "exec"), module.__dict__)
        stack = make_stack(custom=[{"class": "docs_metrics_example:CountingBackend", "options": {"name": "doc"}}])
        async with stack:
            assert (await request(stack, "GET", "/healthz")).status == 200
        (_, backend), *_ = stack.services.metrics.backends
        assert backend.name == "doc"
        assert backend.totals[("http_requests_total", ("GET", "/healthz", "2xx"))] == 1
    finally:
        del sys.modules[module.__name__]


def test_the_documented_config_parses_and_the_seed_keywords_work() -> None:
    import re
    from pathlib import Path

    from tests.metrics.helpers import endpoint
    from tframex_asgi import build_stack
    from tframex_asgi.config import loads_config

    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    cfg = loads_config(re.search(r"```yaml\n(.*?)```", doc, re.S).group(1)).metrics
    assert cfg.enabled and cfg.backends.statsd.tags["env"] == "prod" and cfg.backends.custom[0].class_path
    stack = build_stack(
        endpoint(), enable_security=False, enable_metrics=True, metrics_config={"backends": ["prometheus", "statsd"]}
    )
    assert [name for name, _ in stack.services.metrics.backends] == ["prometheus", "statsd"]


def test_prometheus_fast_recorders_match_prometheus_client() -> None:
    """Bound counters and histograms skip prometheus-client's per-call checks: the exposition
    must be exactly what its own ``inc``/``observe`` would give, bucket edges included."""
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.exposition import generate_latest

    from tframex_asgi.metrics.prometheus import _CounterRecorder, _HistogramRecorder

    spec_c = CATALOGUE["http_requests_total"]
    spec_h = CATALOGUE["http_request_duration_seconds"]
    labels = ("GET", "/x", "2xx")
    ours = PrometheusBackend(PrometheusConfig(enabled=True))
    for spec in (spec_c, spec_h):
        ours.declare(spec)
    counter = ours.bind(spec_c, labels)
    histogram = ours.bind(spec_h, labels)
    assert isinstance(counter, _CounterRecorder) and isinstance(histogram, _HistogramRecorder)
    theirs_registry = CollectorRegistry()
    theirs_c = Counter(ours.full_name(spec_c), spec_c.help, spec_c.labels, registry=theirs_registry).labels(*labels)
    theirs_h = Histogram(
        ours.full_name(spec_h), spec_h.help, spec_h.labels, registry=theirs_registry, buckets=spec_h.buckets
    ).labels(*labels)
    # Every bound exactly, just below and above it, zero, negative, tiny, huge and infinite.
    values = [0.0, -1.0, 1e-9, 1e9, float("inf")]
    for bound in spec_h.buckets:
        values += [bound, bound * (1 - 1e-12), bound * (1 + 1e-12)]
    for v in values:
        histogram.observe(v)
        theirs_h.observe(v)
    for amount in (1.0, 2.0, 0.5):
        counter.inc(amount)
        theirs_c.inc(amount)
    with pytest.raises(ValueError):
        counter.inc(-1)

    def samples(registry: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")]

    def without_created(lines: list[str]) -> list[str]:
        return [line for line in lines if "_created" not in line]

    assert without_created(samples(ours.registry)) == without_created(samples(theirs_registry))
    # NaN and exemplars take prometheus-client's own path.
    histogram.observe(float("nan"))
    histogram.observe(0.2, {"trace_id": "abc"})
    assert (
        ours.registry.get_sample_value(
            "tframex_http_request_duration_seconds_count", dict(zip(spec_h.labels, labels, strict=True))
        )
        == len(values) + 1
    )
