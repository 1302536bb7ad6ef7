"""The HTTP endpoint serving a TFrameX app, and its instrumentation hooks."""

from tframex_asgi.endpoint.app import TFrameXEndpoint, create_app
from tframex_asgi.endpoint.engine import InstrumentedEngine
from tframex_asgi.endpoint.memory import TailMemory
from tframex_asgi.endpoint.runner import AgentRunner

__all__ = ["AgentRunner", "InstrumentedEngine", "TFrameXEndpoint", "TailMemory", "create_app"]
