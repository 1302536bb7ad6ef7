"""Our memory engines and Lua scripts mirror ``limits`` internals: the installed ``limits`` is one
they were checked against, and the scripts they copy are unchanged.

The behaviour itself is compared hit for hit in ``test_memory_engine.py`` (memory) and
``test_redis_window.py`` (Redis); this test fails without Redis, and names what to re-check.
"""

from __future__ import annotations

import hashlib
import tomllib
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"

# The limits scripts that ratelimit/redis_window.py combines into one round trip. When one changes,
# re-read it against redis_window.py's _FIXED / _MOVING, then update the digest and the pin.
MIRRORED = {
    "acquire_moving_window.lua": "573d07908fdb4852d6ebaf25115c3ca5a2a54cb12e5388d99357e9752bb3df38",
    "moving_window.lua": "ce589e4307c44f4042eecc697e23aeccf6b5c309abc162f2ec817c2f135afcbc",
    "incr_expire.lua": "52af4d72badc0c8f85f3b4c30097b1a12267d920e0797214118a330a9f52de80",
}


def test_installed_limits_is_within_the_pinned_range() -> None:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (pin,) = [Requirement(d) for d in deps if Requirement(d).name == "limits"]
    assert pin.specifier.contains(version("limits")), (version("limits"), str(pin.specifier))
    assert any(s.operator == "<" for s in pin.specifier), "the limits pin needs an upper bound"


def test_the_mirrored_lua_scripts_are_unchanged() -> None:
    scripts = files("limits").joinpath("resources", "redis", "lua_scripts")
    found = {name: hashlib.sha256(scripts.joinpath(name).read_bytes()).hexdigest() for name in MIRRORED}
    assert found == MIRRORED
