"""Errors of the OpenAI-compatible routes, in OpenAI's shape (see :mod:`tframex_asgi.openai_shape`)."""

from __future__ import annotations

from starlette.responses import JSONResponse

from tframex_asgi.errors import NotFoundError, TFrameXASGIError, ValidationError
from tframex_asgi.openai_shape import OPENAI_PREFIX, openai_error

__all__ = ["OPENAI_PREFIX", "ModelNotFound", "ParamError", "openai_error", "openai_error_response"]


class ParamError(ValidationError):
    """A bad request parameter; ``param`` names it as OpenAI does (``messages[2].content``)."""

    def __init__(self, param: str, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.param = param


class ModelNotFound(NotFoundError):
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"the model {model!r} does not exist (models are agent names: GET /v1/models)")
        self.param = "model"


def openai_error_response(exc: TFrameXASGIError) -> JSONResponse:
    param = getattr(exc, "param", None)
    return JSONResponse(openai_error(exc.status, exc.code, exc.message, param), status_code=exc.status)
