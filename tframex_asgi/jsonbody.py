"""The one JSON request-body parser every JSON route uses (endpoint, OpenAI routes, admin API).

Why not ``json.loads`` at each route: the standard parser recurses once per nesting level, so a
body of 100,000 ``[`` raises ``RecursionError`` (a 500) and a body nested a few hundred levels
deep parses but then recurses again in every later step (redaction, audit, storage encoding).
It also accepts ``NaN`` and ``Infinity``, which are not JSON and which PostgreSQL's ``jsonb``
refuses later, after the request was accepted. Here each of these is a 400 ``invalid_request``
naming what was wrong, before any handler runs:

* not UTF-8, not JSON (with the parser's message and position), ``NaN``/``Infinity``;
* nested deeper than :data:`MAX_DEPTH` objects/arrays;
* a top level that is not an object (every route here takes an object);
* a string (value or key) holding NUL or a lone surrogate, which no database here can store
  (:mod:`tframex_asgi.storable`: the message names the field, e.g. ``arguments.text``).

Cost: a valid body pays one ``json.loads`` plus a few ``bytes`` scans; the exact depth walk runs
only when the body holds more than :data:`MAX_DEPTH` brackets, the string walk only when it holds
a ``\\u0000`` or ``\\uD800``-``\\uDFFF`` escape (the only way such characters can be in JSON).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from starlette.requests import Request

from tframex_asgi.errors import ValidationError
from tframex_asgi.storable import check_client_value, may_hold_unstorable

__all__ = ["MAX_DEPTH", "parse_json_object", "read_json_object"]

# Deeper than any real request (tool arguments, chat messages); far below the interpreter's
# recursion limit, so nothing downstream that walks the value recursively can overflow.
MAX_DEPTH = 64


def _no_constant(name: str) -> NoReturn:
    raise ValidationError(f"the body is not valid JSON: {name} is not a JSON value")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` containers (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def parse_json_object(raw: bytes, *, what: str = "the body") -> dict[str, Any]:
    """``raw`` as a JSON object, or :class:`ValidationError` (400) saying what is wrong.

    An empty body is ``{}`` (every field of every route is optional or checked by the route)."""
    if not raw:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{what} is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise ValidationError(f"{what} nests deeper than {MAX_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a JSON object, not {_kind(value)}")
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth_exceeds(value, MAX_DEPTH):
        raise ValidationError(f"{what} nests deeper than {MAX_DEPTH} levels")
    if may_hold_unstorable(raw):
        check_client_value(value)
    return value


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object (see :func:`parse_json_object`)."""
    return parse_json_object(await request.body())


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
