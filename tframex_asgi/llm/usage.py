"""Token usage of the current run, reported by our LLM wrappers through a contextvar.

tframex passes extra keyword arguments straight into the LLM payload, so request metadata
travels in contextvars instead (see :mod:`tframex_asgi.endpoint.runctx`).
"""

from __future__ import annotations

from contextvars import ContextVar

from tframex_asgi.events import Usage

__all__ = ["current_usage", "report_usage"]

current_usage: ContextVar[Usage | None] = ContextVar("tframex_asgi_usage", default=None)


def report_usage(prompt_tokens: int, completion_tokens: int) -> None:
    usage = current_usage.get()
    if usage is not None:
        usage.add(prompt_tokens, completion_tokens)
