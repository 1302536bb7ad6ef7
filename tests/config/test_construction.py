"""Every config section validates itself on construction: built in Python it is refused exactly
like the same settings through YAML or the seed's keyword names, naming the dotted path; and
``config check`` refuses what ``serve`` would refuse at start, naming the key."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from tframex_asgi.cli import main
from tframex_asgi.config import EnterpriseConfig, loads_config
from tframex_asgi.config._parse import Section
from tframex_asgi.config.ratelimit import RateLimitConfig
from tframex_asgi.config.security import (
    APIKeyConfig,
    AuthProvidersConfig,
    JWTConfig,
    RBACConfig,
    SecurityConfig,
)
from tframex_asgi.errors import ConfigError
from tframex_asgi.stack import build_stack

SECRET = "0123456789abcdef0123456789abcdef"
RBAC = "enterprise.security.rbac"


def test_the_python_built_short_secret_is_refused_with_its_dotted_path() -> None:
    with pytest.raises(ConfigError) as python:
        EnterpriseConfig(
            security=SecurityConfig(
                auth_providers=AuthProvidersConfig(jwt=JWTConfig(enabled=True, algorithms=("HS256",), secret="short"))
            )
        )
    assert python.value.path == "enterprise.security.auth_providers.jwt.secret"
    yaml = "enterprise: {security: {auth_providers: {jwt: {enabled: true, algorithms: [HS256], secret: short}}}}"
    with pytest.raises(ConfigError) as from_yaml:
        loads_config(yaml)
    with pytest.raises(ConfigError) as from_kwargs:
        EnterpriseConfig.from_kwargs(
            security_config={"auth_providers": {"jwt": {"enabled": True, "algorithms": ["HS256"], "secret": "short"}}}
        )
    assert from_yaml.value.path == "enterprise.security.auth_providers.jwt.secret"
    assert from_kwargs.value.path == "security_config.auth_providers.jwt.secret"
    assert python.value.reason == from_yaml.value.reason == from_kwargs.value.reason


@pytest.mark.parametrize(
    ("build", "path"),
    [
        (lambda: RateLimitConfig(enabled=True, default="lots"), "enterprise.security.rate_limiting.default"),
        (lambda: RateLimitConfig(default=100), "enterprise.security.rate_limiting.default"),  # wrong type
        (lambda: APIKeyConfig(cache_ttl="soon"), "enterprise.security.auth_providers.api_key.cache_ttl"),
        (lambda: JWTConfig(algorithms=("none",)), "enterprise.security.auth_providers.jwt.algorithms[0]"),
        (lambda: RBACConfig(routes={"GET /reports/{id": "agent.view"}), f"{RBAC}.routes.GET /reports/{{id"),
        (lambda: SecurityConfig(max_body_bytes=0), "enterprise.security.max_body_bytes"),
        (lambda: dataclasses.replace(JWTConfig(), enabled=True, secret="x" * 5, algorithms=("HS256",)),
         "enterprise.security.auth_providers.jwt.secret"),
    ],
)  # fmt: skip
def test_sections_built_in_python_are_checked(build, path: str) -> None:
    with pytest.raises(ConfigError) as err:
        build()
    assert err.value.path == path


def test_python_values_are_normalised_like_yaml_values() -> None:
    jwt = JWTConfig(enabled=True, algorithms=["HS256"], secret=SECRET, leeway=5)  # type: ignore[arg-type]
    assert jwt.algorithms == ("HS256",) and isinstance(jwt.leeway, float)
    rbac = RBACConfig(routes={"GET /reports/{id}": "agent.view"})
    with pytest.raises(TypeError):
        rbac.routes["GET /x"] = "public"  # type: ignore[index]  # frozen all the way down
    # A valid Python-built config is accepted and equal to the YAML one.
    built = EnterpriseConfig(security=SecurityConfig(auth_providers=AuthProvidersConfig(jwt=jwt)))
    jwt_yaml = f"{{enabled: true, algorithms: [HS256], secret: {SECRET}, leeway: 5}}"
    yaml = f"enterprise: {{security: {{auth_providers: {{jwt: {jwt_yaml}}}}}}}"
    assert built.security.auth_providers.jwt == loads_config(yaml).security.auth_providers.jwt


def test_every_config_section_is_a_section() -> None:
    for name in ("audit", "metrics", "model", "persistence", "ratelimit", "security"):
        module = importlib.import_module(f"tframex_asgi.config.{name}")
        for cls in vars(module).values():
            if inspect.isclass(cls) and dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__:
                assert issubclass(cls, Section), cls
                assert cls._path.startswith("enterprise"), cls


BAD_CONFIGS = {
    # Each one passed `config check` and then crashed `serve` at start with a traceback.
    "rbac.routes": ('rbac: {routes: {"GET /reports/{id": agent.view}}', f"{RBAC}.routes.GET /reports/{{id"),
    "clash": ('rbac: {routes: {"POST /agents/{agent}/run": agent.view}}',
              "enterprise.security.rbac.routes.POST /agents/{agent}/run"),
    "public_key": ("auth_providers: {jwt: {enabled: true, public_key: not-a-key}}",
                   "enterprise.security.auth_providers.jwt.public_key"),
}  # fmt: skip


def _write(tmp_path: Path, security: str) -> Path:
    file = tmp_path / "enterprise.yaml"
    file.write_text(f"enterprise:\n  security:\n    {security}\n")
    return file


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_config_check_refuses_what_serve_refuses(tmp_path: Path, capsys, case: str) -> None:
    security, key = BAD_CONFIGS[case]
    file = _write(tmp_path, security)
    assert main(["config", "check", str(file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {key}: ") and "Traceback" not in err


def test_config_check_builds_the_layers_serve_builds(tmp_path: Path, capsys) -> None:
    """A custom metrics backend that cannot be imported is found when the layers are built."""
    file = tmp_path / "enterprise.yaml"
    file.write_text("enterprise:\n  metrics: {enabled: true, backends: {custom: [{class: 'no_such_mod:B'}]}}\n")
    assert main(["config", "check", str(file)]) == 2
    assert "error: enterprise.metrics.backends.custom[0]" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        build_stack(lambda *a: None, str(file))  # what serve does with it


def test_serve_names_the_key_too_instead_of_a_traceback(tmp_path: Path) -> None:
    security, key = BAD_CONFIGS["rbac.routes"]
    file = _write(tmp_path, security)
    proc = subprocess.run(
        [sys.executable, "-m", "tframex_asgi", "serve", "--config", str(file), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"error: {key}: " in proc.stderr and "Traceback" not in proc.stderr
