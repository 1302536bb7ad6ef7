"""Keys and token builders for the JWT and OAuth2 tests (keys made once per session)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ISSUER = "https://idp.example.com"
AUDIENCE = "tframex-api"
NOW = 1_700_000_000  # ManualClock's start


@functools.cache
def rsa(kid: str = "k1") -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})


@functools.cache
def ec(kid: str = "e1") -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**over: Any) -> dict[str, Any]:
    base = {
        "sub": "ext-user-1",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": NOW + 300,
        "iat": NOW,
        "nbf": NOW,
        "preferred_username": "erin",
        "roles": ["developer"],
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, alg: str = "RS256", header: dict[str, Any] | None = None, **over: Any) -> str:
    head = {"alg": alg, **({"kid": key.kid} if getattr(key, "kid", None) else {}), **(header or {})}
    return jwt.encode(head, claims(**over), key, algorithms=[alg])


def forge(header: dict[str, Any], body: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}.{b64(signature)}"


def hs256_with(secret: bytes, header: dict[str, Any], body: dict[str, Any]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def public_pem(key: Any) -> str:
    return key.as_pem(private=False).decode()
