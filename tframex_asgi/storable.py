"""The one rule for text the databases cannot store: NUL (U+0000) and lone surrogates.

PostgreSQL refuses both (``text`` and ``jsonb`` cannot hold U+0000; a lone surrogate is not
UTF-8), and the storage layer refuses them on every backend so all behave alike. Text that
reaches storage comes from two places, and each gets one treatment:

* **What the client sent** (run ``input``, tool ``arguments``, chat ``messages``, admin fields):
  refused before anything runs, with a 400 ``invalid_request`` naming the field
  (:func:`check_client_value`, applied by the shared JSON body parser). Accepting it would mean
  either losing the record the run should leave or storing something other than what was sent.
* **What the run produced** (model output, tool results, the arguments a model chose, error
  texts): the request is already answered, so it is stored with each such character replaced by
  U+FFFD (:func:`storable_text`, :func:`storable_json`) rather than dropped by the writer.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from tframex_asgi.errors import ValidationError

__all__ = ["check_client_value", "may_hold_unstorable", "problem", "storable_json", "storable_text"]

# In JSON text these characters can only arrive escaped (a raw NUL is an invalid control
# character, a raw surrogate invalid UTF-8), so this finds every body that may hold one.
_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
# In a Python str a valid astral character is one code point, so any of these stands alone.
_SURROGATE = re.compile("[\ud800-\udfff]")


def may_hold_unstorable(raw: bytes) -> bool:
    """Cheap test on a JSON body: False means no decoded string can hold NUL or a lone surrogate."""
    return b"\\u" in raw and _ESCAPE.search(raw) is not None


def problem(text: str) -> str | None:
    """What makes ``text`` unstorable, or None."""
    if "\x00" in text:
        return "a NUL character (U+0000)"
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found is not None:
            return f"a lone surrogate (U+{ord(found.group()):04X})"
    return None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str, bool]]:
    """``(path, text, is_key)`` for every string in a JSON value (iterative: no recursion)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            yield where, node, False
        elif isinstance(node, Mapping):
            for k, v in node.items():
                key = str(k)
                yield where or "the body", key, True
                stack.append((v, f"{where}.{key}" if where else key))
        elif isinstance(node, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))


def check_client_value(value: Any, path: str = "") -> None:
    """Raise a 400 naming the first field of ``value`` that holds unstorable text."""
    for where, text, is_key in _strings(value, path):
        found = problem(text)
        if found is not None:
            what = f"a key of {where!r}" if is_key else repr(where)
            raise ValidationError(f"{what} contains {found}, which cannot be stored: remove it")


def storable_text(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD (for produced text only)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        text = _SURROGATE.sub("\ufffd", text)
    return text


def storable_json(value: Any) -> Any:
    """A copy of a JSON value with :func:`storable_text` applied to every key and string."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, Mapping):
        return {storable_text(str(k)): storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value
