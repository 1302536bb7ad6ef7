"""Reading a configured verification key (a JWK or a PEM public key, or an HMAC secret).

Here rather than in :mod:`tframex_asgi.auth` so ``JWTConfig`` can refuse a key it cannot read
when it is constructed; the JWT provider loads its keys with the same function.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from joserfc.jwk import Key

__all__ = ["load_static_key"]


def load_static_key(data: str, key_type: str | None = None) -> Key:
    """A configured key: a JWK (JSON) or a PEM public key; ``key_type="oct"`` for a secret."""
    # Imported on use: only a config with a JWT key needs joserfc loaded.
    from joserfc.errors import JoseError
    from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey, import_key

    if key_type == "oct":
        return OctKey.import_key(data.encode())
    text = data.strip()
    if text.startswith("{"):
        return import_key(json.loads(text))
    for cls in (RSAKey, ECKey, OKPKey):
        try:
            return cls.import_key(text)
        except (JoseError, ValueError, TypeError):
            continue
    raise ValueError("public_key is neither a JWK nor a PEM public key")
