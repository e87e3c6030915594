"""What every view needs: the server's state, and the checks both APIs share.

:class:`ServerState` is created once per app by :func:`lightflow_rest.create_app` and
kept in ``app.extensions["lightflow_rest"]``; views reach it with :func:`state` (its
configuration with :func:`config`).
:func:`workflow_name` is the one gate a workflow name passes before the core sees it:
a request names a workflow, and the server starts only workflows found in its
configured folders, never a file path or code the request brings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import Response, current_app, stream_with_context

from .errors import ApiError
from .schemas import WORKFLOW_NAME

if TYPE_CHECKING:
    from collections.abc import Iterator

    from lightflow.config import Config

    from .auth import Authenticator
    from .settings import RestSettings
    from .streams import EventHub

_WORKFLOW_NAME = re.compile(WORKFLOW_NAME)


@dataclass
class ServerState:
    """One app's configuration, settings, token check and event hub.

    Attributes:
        config: The Lightflow configuration (cluster, workflow folders).
        settings: The checked ``extensions.rest`` section.
        auth: The token check.
        hub: The process's follower of every run's events.
        alive: Whether the server process still serves (the WSGI server sets it, so
            event streams end when it shuts down instead of holding it up).
    """

    config: Config
    settings: RestSettings
    auth: Authenticator
    hub: EventHub
    alive: Callable[[], bool] = field(default=lambda: True)


def state() -> ServerState:
    """The state of the app serving the current request."""
    return current_app.extensions["lightflow_rest"]


def config() -> Config:
    """The Lightflow configuration of the app serving the current request."""
    return state().config


def workflow_name(name: str) -> str:
    """``name`` if it can only name a workflow in the configured folders.

    Raises:
        ApiError: 400: it is a path (``/``, ``~``, ``.py``) or holds other characters.
    """
    if not _WORKFLOW_NAME.match(name) or name.endswith(".py"):
        raise ApiError(
            400,
            f"{name!r} is not a workflow name: name a workflow of the server's workflow "
            "folders (letters, digits, _ and -, dots for subfolders; no path, no .py)",
        )
    return name


def event_stream(messages: Iterator[str]) -> Response:
    """A streaming ``text/event-stream`` response of SSE ``messages``."""
    response = Response(stream_with_context(messages), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event at once
    return response
