"""Layer a config file over a base block (the ``serve`` defaults), key by key.

The rule (documented in docs/configuration.md):

* a section or key the file does not mention keeps the base value;
* mappings merge key by key, recursively (alias spellings such as ``url`` for
  ``connection_string`` replace the base key they stand for);
* a scalar or list replaces the base value, except the ``true``/``false`` and level shorthands
  of a section (``rate_limiting: true``, ``audit: full``), which set that one key of it;
* ``auth_providers`` given as a list names exactly the providers to use; given as a mapping
  without ``order``, the base's providers keep their places and the ones it adds follow, in its order.

Merging follows the config dataclasses, so only real sections merge; what comes out is parsed
as usual, and errors still name the file's dotted keys.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, get_type_hints

from tframex_asgi.config.model import EnterpriseConfig

__all__ = ["layer_over"]


def _section_type(cls: type, key: str) -> type | None:
    hints = get_type_hints(cls)
    tp = hints.get(key)
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _as_mapping(cls: type, value: Any, path: str) -> Mapping[str, Any] | None:
    """The mapping form of a section value, or None when it replaces the base outright."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, list | tuple):  # a list of names (auth providers, backends): exactly those
        return None
    shorthand = getattr(cls, "_shorthand", None)
    if shorthand is None:
        return None
    result: Mapping[str, Any] = shorthand(value, path)
    return result


def layer_over(
    base: Mapping[str, Any], override: Mapping[str, Any], cls: type = EnterpriseConfig, path: str = "enterprise"
) -> dict[str, Any]:
    """``override`` merged over ``base`` (both mapping forms of section ``cls``)."""
    aliases: dict[str, str] = getattr(cls, "_aliases", {})
    out: dict[str, Any] = {}
    canonical: dict[str, str] = {}
    for key, value in base.items():
        out[key] = value
        canonical[aliases.get(key, key)] = key
    for key, value in override.items():
        name = aliases.get(key, key) if isinstance(key, str) else key
        previous = canonical.pop(name, None)
        old = out.pop(previous) if previous is not None else None
        sub = _section_type(cls, name) if isinstance(name, str) else None
        if sub is not None and old is not None:
            old_map = _as_mapping(sub, old, f"{path}.{key}")
            new_map = _as_mapping(sub, value, f"{path}.{key}")
            if old_map is not None and new_map is not None:
                value = layer_over(old_map, new_map, sub, f"{path}.{key}")
        out[key] = value
        canonical[name] = key
    if "order" not in override and getattr(cls, "__name__", "") == "AuthProvidersConfig":
        # The order is recomputed from the merged providers as listed: the base's in their place
        # (configuring one, its header or realm, never reorders them), then the file's new ones.
        out.pop("order", None)
        place = {aliases.get(key, key): i for i, key in enumerate(base)}
        out = dict(sorted(out.items(), key=lambda item: place.get(aliases.get(item[0], item[0]), len(place))))
    return out
