"""Build frozen config dataclasses from plain mappings, naming the dotted path of any bad key.

A section is a frozen dataclass with type hints deriving from :class:`Section`, so it validates
itself on construction: built from YAML, from the seed's keyword names or directly in Python
(``JWTConfig(enabled=True, secret="short")``), the same checks run, in ``__post_init__``; there is
no way around them. Supported field types: ``bool``, ``int``, ``float``, ``str``, ``X | None``,
``Literal[...]``, ``tuple[X, ...]``, ``dict[str, X]``, nested sections and ``Any``. A section
defines ``_path: ClassVar[str]``, the dotted path its errors name when it is built directly
(``enterprise.security.auth_providers.jwt``), and may define:

* ``_aliases: ClassVar[dict[str, str]]``: other accepted key names (e.g. the seed's spellings);
* ``_shorthand(cls, value, path) -> Mapping``: turn a non-mapping value (``True``, a list of
  backend names) into the mapping form;
* ``_prepare(cls, mapping, path) -> Mapping``: adjust the mapping form before parsing;
* ``_check(self, path) -> None``: cross-field validation raising :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from tframex_asgi.errors import ConfigError

__all__ = ["Section", "coerce", "enabled_shorthand", "join", "parse_section", "to_plain"]

T = TypeVar("T")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
# (class, dotted path) of the section parse_section is constructing: its __post_init__ names
# that path in errors (sections built by default factories meanwhile use their own _path).
_BUILDING: ContextVar[tuple[type, str] | None] = ContextVar("tframex_config_building", default=None)
_HINTS: dict[type, dict[str, Any]] = {}


def _field_hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        every = get_type_hints(cls)
        hints = _HINTS[cls] = {f.name: every[f.name] for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    return hints


class Section:
    """Base of every config section: type checks, normalisation (lists to tuples, mappings to
    read-only mappings) and ``_check`` run on construction, whoever constructs it."""

    _path: ClassVar[str] = ""

    def __post_init__(self) -> None:
        building = _BUILDING.get()
        path = building[1] if building is not None and building[0] is type(self) else self._path
        for name, tp in _field_hints(type(self)).items():
            value = getattr(self, name)
            coerced = coerce(tp, value, join(path, name))
            if coerced is not value:
                object.__setattr__(self, name, coerced)  # frozen: normalised once, here
        check = getattr(self, "_check", None)
        if check is not None:
            check(path)


def enabled_shorthand(value: Any, path: str) -> Mapping[str, Any]:
    """A ``_shorthand`` for on/off sections: ``rbac: false`` or ``prometheus: true`` means ``enabled``."""
    if isinstance(value, bool):
        return {"enabled": value}
    raise ConfigError(path, f"expected a mapping or true/false, got {value!r}")


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_section(cls: type[T], value: Any, path: str) -> T:
    """Parse ``value`` into the dataclass ``cls``; ``path`` names it in errors."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        shorthand = getattr(cls, "_shorthand", None)
        if shorthand is None:
            raise ConfigError(path, f"expected a mapping, got {_describe(value)}")
        value = shorthand(value, path)
    prepare = getattr(cls, "_prepare", None)
    if prepare is not None:
        value = prepare(value, path)
    aliases: dict[str, str] = getattr(cls, "_aliases", {})
    hints = _field_hints(cls)
    fields = hints
    kwargs: dict[str, Any] = {}
    for raw_key, raw in value.items():
        if not isinstance(raw_key, str):
            raise ConfigError(path, f"keys must be strings, got {_describe(raw_key)}")
        name = aliases.get(raw_key, raw_key)
        key_path = join(path, raw_key)
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(key_path, f"unknown key (known keys: {known})")
        if name in kwargs:
            raise ConfigError(key_path, f"given twice (also as {name!r})")
        kwargs[name] = coerce(hints[name], raw, key_path)
    token = _BUILDING.set((cls, path))
    try:
        return cls(**kwargs)  # Section.__post_init__ validates, naming ``path``
    finally:
        _BUILDING.reset(token)


def coerce(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(option, value, path)
            except ConfigError as exc:
                errors.append(exc.reason)
        raise ConfigError(path, "; ".join(errors))
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            choices = ", ".join(repr(a) for a in allowed)
            raise ConfigError(path, f"must be one of {choices}, got {_describe(value)}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value  # a section instance validated itself when it was built
        return parse_section(tp, value, path)
    if origin is tuple:
        item_type = get_args(tp)[0]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(path, f"expected a list, got {_describe(value)}")
        return tuple(coerce(item_type, item, join(path, i)) for i, item in enumerate(value))
    if origin in (dict, Mapping):
        _, item_type = get_args(tp)
        if not isinstance(value, Mapping):
            raise ConfigError(path, f"expected a mapping, got {_describe(value)}")
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(path, f"keys must be strings, got {_describe(key)}")
            out[key] = coerce(item_type, item, join(path, key))
        return types.MappingProxyType(out)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(path, f"expected true or false, got {_describe(value)}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(path, f"expected an integer, got {_describe(value)}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(path, f"expected an integer, got {_describe(value)}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(path, f"expected a number, got {_describe(value)}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(path, f"expected a number, got {_describe(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, f"expected a string, got {_describe(value)}")
    raise TypeError(f"{path}: unsupported config field type {tp!r}")  # programming error


def to_plain(section: Any) -> Any:
    """The section as plain dicts/lists (for printing and round-tripping)."""
    if dataclasses.is_dataclass(section) and not isinstance(section, type):
        return {f.name: to_plain(getattr(section, f.name)) for f in dataclasses.fields(section)}
    if isinstance(section, Mapping):
        return {k: to_plain(v) for k, v in section.items()}
    if isinstance(section, tuple):
        return [to_plain(v) for v in section]
    return section
