"""Logging for ``tframex-asgi serve``: the chosen level for every logger, no credential in any line.

uvicorn's access line carries the full query string (``?api_key=tfx_...``,
``?access_token=<JWT>``) and other libraries log what they like (TFrameX logs system prompts at
DEBUG from a logger it pins to DEBUG itself). So every handler, ours and uvicorn's, gets
:class:`RedactingFilter` and the chosen level: a record is filtered where it is written,
whichever logger produced it and whatever level that logger was given.
"""

from __future__ import annotations

import copy
import logging
import logging.config
from typing import Any

from tframex_asgi.audit.redact import Redactor, scrub

__all__ = ["RedactingFilter", "apply_levels", "configure", "logging_config"]

# Libraries whose INFO chatter (one line per agent step) is only shown at --log-level debug.
QUIET_NAMESPACES = ("tframex",)
_ACCESS = "uvicorn.access"


class RedactingFilter(logging.Filter):
    """Rewrites a record so no credential-shaped text survives: values of sensitive query
    parameters (by name) and credential shapes anywhere (:func:`~tframex_asgi.audit.redact.scrub`),
    in the message, its arguments and the formatted traceback."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.redactor = Redactor()

    def _target(self, target: str) -> str:
        """A request target: path scrubbed, query values redacted by name and by shape."""
        path, sep, query = target.partition("?")
        return scrub(path) + (sep + self.redactor.query(query) if sep else "")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == _ACCESS and isinstance(args, tuple) and len(args) >= 3:
            # uvicorn's AccessFormatter unpacks (client, method, target, http_version, status).
            record.args = tuple(
                self._target(a) if i == 2 and isinstance(a, str) else scrub(a) if isinstance(a, str) else a
                for i, a in enumerate(args)
            )
        else:
            try:
                message = record.getMessage()
            except Exception:  # a broken format string: leave it to the handler's error path
                return True
            clean = scrub(message)
            if clean != message:
                record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def logging_config(level: str) -> dict[str, Any]:
    """uvicorn's logging config with our root handler, the filter on every handler and
    ``level`` on every handler (so no logger, whatever its own level, writes below it).
    Plain JSON data: ``uvicorn --log-config`` takes it saved as a ``.json`` file."""
    from uvicorn.config import LOGGING_CONFIG

    name = level.upper()
    config = copy.deepcopy(LOGGING_CONFIG)
    # By name, so the config can be saved as JSON for ``uvicorn --log-config`` (docs/deployment.md).
    config["filters"] = {"redact": {"()": f"{__name__}.RedactingFilter"}}
    config["formatters"]["plain"] = {"format": "%(levelname)s %(name)s: %(message)s"}
    config["handlers"]["plain"] = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
        handler["level"] = name
    for logger in config["loggers"].values():
        logger["level"] = name
    config["root"] = {"handlers": ["plain"], "level": name}
    return config


def apply_levels(level: str) -> None:
    """Loggers that set their own level (``tframex.agent_internal_debug`` pins DEBUG at import)
    follow the chosen one: below it they would build every record only for the handler to drop it.
    Called before the app is imported and again after (its modules set levels when imported)."""
    chosen = logging.getLevelName(level.upper())
    quiet = chosen if chosen <= logging.DEBUG else max(chosen, logging.WARNING)
    for namespace in QUIET_NAMESPACES:
        logging.getLogger(namespace).setLevel(quiet)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or name in QUIET_NAMESPACES:
            continue
        if name.split(".", 1)[0] in QUIET_NAMESPACES or logger.level < chosen:
            logger.setLevel(logging.NOTSET)  # inherit: the namespace's level or the root's


def configure(level: str) -> dict[str, Any]:
    """Apply :func:`logging_config` now (lines logged while the app is built are covered too)
    and return it for ``uvicorn.run(log_config=...)``."""
    logging.config.dictConfig(logging_config(level))
    apply_levels(level)
    return logging_config(level)  # a fresh copy: dictConfig consumes parts of the one it is given
