"""Make any app an ASGI 3 callable: ASGI 3 as is, ASGI 2 via asgiref, WSGI via a2wsgi."""

from __future__ import annotations

import inspect
from typing import Any, Literal

from tframex_asgi.types import ASGIApp

__all__ = ["Interface", "as_asgi3", "detect_interface"]

Interface = Literal["auto", "asgi3", "asgi2", "wsgi"]


def detect_interface(app: Any) -> Literal["asgi3", "asgi2", "wsgi"]:
    """Guess the interface from the callable's shape (pass ``interface=`` when it is ambiguous).

    asgiref's ``is_double_callable`` calls every sync callable ASGI 2, which would make a WSGI
    function look like one, so the positional parameters decide: ``(scope)`` is ASGI 2,
    ``(environ, start_response)`` is WSGI, anything async or ``(scope, receive, send)`` ASGI 3.
    """
    if inspect.isclass(app):
        return "asgi2"
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", None)  # noqa: B004
    if call is None:
        raise TypeError(f"{app!r} is not callable")
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app):
        return "asgi3"
    try:
        params = [
            p
            for p in inspect.signature(call).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return "asgi3"
    return {1: "asgi2", 2: "wsgi"}.get(len(params), "asgi3")  # type: ignore[return-value]


def as_asgi3(app: Any, interface: Interface = "auto") -> ASGIApp:
    kind = detect_interface(app) if interface == "auto" else interface
    if kind == "asgi2":
        from asgiref.compatibility import guarantee_single_callable

        return guarantee_single_callable(app)  # type: ignore[no-untyped-call,no-any-return]
    if kind == "wsgi":
        from a2wsgi import WSGIMiddleware

        return WSGIMiddleware(app)  # type: ignore[return-value]
    return app  # type: ignore[no-any-return]
