"""A direct tool call's arguments checked against the tool's declared parameters.

``POST /tools/{name}/call`` hands the arguments to the tool's Python function. Without a check, a
client's mistake (a missing argument, a string where a number goes) came back as the function's
own Python error (``can only concatenate str (not "int") to str``) with a traceback in the server
log. A 400 naming the argument says what is wrong instead. MCP tools are checked by their server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tframex_asgi.errors import ValidationError

__all__ = ["check_arguments"]

# JSON Schema's types as Python values (bool is an int in Python, never a number in JSON).
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _is(kind: str, value: Any) -> bool:
    if kind == "null":
        return value is None
    types = _TYPES.get(kind)
    if types is None:
        return True  # a type this check does not know: the tool decides
    if isinstance(value, bool) and kind != "boolean":
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, types)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for kind, types in _TYPES.items():
        if kind != "integer" and isinstance(value, types):
            return kind
    return type(value).__name__


def check_arguments(tool: str, parameters: Mapping[str, Any], arguments: Mapping[str, Any]) -> None:
    """Raise a ValidationError (400) naming the first argument that does not fit ``parameters``
    (the tool's JSON Schema object: ``properties``, ``required``, and per property ``type`` and
    ``enum``)."""
    properties: Mapping[str, Any] = parameters.get("properties") or {}
    missing = [key for key in parameters.get("required") or () if key not in arguments]
    if missing:
        names = ", ".join(repr(k) for k in missing)
        raise ValidationError(f"tool {tool!r} needs the argument{'s' if len(missing) > 1 else ''} {names}")
    for key, value in arguments.items():
        spec = properties.get(key)
        if spec is None:
            known = ", ".join(repr(k) for k in properties) or "none"
            raise ValidationError(f"tool {tool!r} has no argument {key!r} (it takes: {known})")
        kinds = spec.get("type")
        kinds = [kinds] if isinstance(kinds, str) else list(kinds or ())
        if kinds and not any(_is(kind, value) for kind in kinds):
            raise ValidationError(
                f"tool {tool!r}: argument {key!r} must be {' or '.join(kinds)}, got {_json_type(value)}"
            )
        enum = spec.get("enum")
        if enum is not None and value not in enum:
            raise ValidationError(f"tool {tool!r}: argument {key!r} must be one of {enum!r}")
