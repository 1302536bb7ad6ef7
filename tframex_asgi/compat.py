"""Make any app an ASGI 3 callable: ASGI 3 as is, ASGI 2 via asgiref, WSGI via a2wsgi."""

from __future__ import annotations

import inspect
from typing import Any, Literal

from tframex_asgi.types import ASGIApp

__all__ = ["Interface", "as_asgi3", "detect_interface"]

Interface = Literal["auto", "asgi3", "asgi2", "wsgi"]


def detect_interface(app: Any) -> Literal["asgi3", "asgi2", "wsgi"]:
    from asgiref.compatibility import is_double_callable

    if is_double_callable(app):  # type: ignore[no-untyped-call]
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
    # WSGI is a plain callable taking (environ, start_response).
    return "wsgi" if len(params) == 2 else "asgi3"


def as_asgi3(app: Any, interface: Interface = "auto") -> ASGIApp:
    kind = detect_interface(app) if interface == "auto" else interface
    if kind == "asgi2":
        from asgiref.compatibility import guarantee_single_callable

        return guarantee_single_callable(app)  # type: ignore[no-untyped-call,no-any-return]
    if kind == "wsgi":
        from a2wsgi import WSGIMiddleware

        return WSGIMiddleware(app)  # type: ignore[return-value]
    return app  # type: ignore[no-any-return]
