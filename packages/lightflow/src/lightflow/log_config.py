"""Applying the ``logging`` section of the configuration to this process.

The section is a :func:`logging.config.dictConfig` dict. It is applied by the commands
that run or follow work (``lightflow run``, ``worker start``, ``workflow start --wait``,
``monitor``) before the work starts, and by :func:`lightflow.queue.worker.start_worker`
before Celery sets up its own logging; library functions never touch logging.

``disable_existing_loggers`` is false unless the section says otherwise: the loggers
that Lightflow, Celery and the tasks' libraries created at import time keep working.
An empty section configures nothing. A section that ``dictConfig`` refuses (no
``version``, an unknown handler class, a log file that cannot be opened) is a
:class:`~lightflow.exceptions.ConfigError` naming the file and the section.

``logging.config`` is imported here only when a section is applied: it costs more than
``lightflow --help`` may.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigError

if TYPE_CHECKING:
    from .config import Config

# The section applied last in this process: the CLI applies it before `worker start`
# calls start_worker, which applies it again; dictConfig would close and reopen every
# handler for nothing.
_applied: dict[str, Any] | None = None


def apply_logging(config: Config) -> None:
    """Configure Python logging from ``config``'s ``logging`` section.

    Applying the same section twice in a process does nothing the second time.

    Raises:
        ConfigError: ``dictConfig`` refuses the section; the message is one line.
    """
    global _applied
    section = config.logging
    if not section or section == _applied:
        return
    where = (
        f"{config.source}: section 'logging'"
        if config.source
        else "the 'logging' section of the configuration"
    )
    if "version" not in section:
        raise ConfigError(
            f"{where} has no 'version': it is a logging.config.dictConfig dict and "
            "starts with 'version: 1'"
        )
    settings = copy.deepcopy(section)
    settings.setdefault("disable_existing_loggers", False)
    import logging.config

    try:
        logging.config.dictConfig(settings)
    except Exception as error:  # the section may name any class; whatever fails is its fault
        raise ConfigError(f"{where} cannot be applied: {_reason(error)}") from None
    _applied = copy.deepcopy(section)


def _reason(error: BaseException) -> str:
    """``dictConfig``'s message and its causes on one line, without repeats.

    dictConfig says which part failed (``Unable to configure handler 'file'``) and
    chains the reason with ``raise ... from`` (``[Errno 2] No such file or directory:
    '/var/log/x.log'``); what happened to be handled meanwhile is left out.
    """
    parts: list[str] = []
    cause: BaseException | None = error
    while cause is not None and len(parts) < 5:
        text = " ".join(str(cause).split()) or type(cause).__name__
        if not any(text in part for part in parts):
            parts.append(text)
        cause = cause.__cause__
    return ": ".join(parts)
