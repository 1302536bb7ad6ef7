"""The S3 client of the archive paths (``audit export --to s3://``, scheduled backups, ``audit
verify --from s3://``), with botocore's failures as :class:`~tframex_asgi.errors.StorageError`.

:class:`~tframex_asgi.storage.s3.S3Storage` translates each call itself; these paths call S3
directly, so the client's context translates whatever its body raises instead: no credentials,
an endpoint that does not answer, access denied or a missing bucket reach the CLI and the logs as
one line ("S3: ..."), like a database that does not answer.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from tframex_asgi.errors import ConfigError, StorageError

__all__ = ["s3_client"]


@contextlib.asynccontextmanager
async def s3_client(setting: str, endpoint_url: str | None = None) -> AsyncIterator[Any]:
    """``async with s3_client("--to") as s3:`` an aiobotocore S3 client on ``endpoint_url`` (else
    ``$AWS_ENDPOINT_URL``, else AWS). ``setting`` names what asked for S3 when the extra is missing."""
    try:
        from aiobotocore.session import get_session
        from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigError(setting, "S3 needs pip install 'tframex-asgi[s3]'") from exc
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    try:
        async with get_session().create_client("s3", endpoint_url=endpoint) as s3:
            yield s3
    except (BotoCoreError, ClientError) as exc:
        raise StorageError(f"S3: {exc}") from exc
