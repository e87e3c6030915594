"""Serving the app: gunicorn's threaded workers, made for long-lived event streams.

:func:`serve` runs gunicorn in this process (the ``lightflow rest serve`` command) with
the ``gthread`` worker: each open event stream holds one of a process's ``threads``
while the rest keep answering, and a stream notices within about a second that the
process is shutting down (the worker's ``alive`` flag, handed to the app once the
worker has started), so a stop is not held up by open dashboards. Flask's development
server is never used.
"""

from __future__ import annotations

import socket
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from lightflow.exceptions import LightflowError

from .settings import RestSettings

#: Seconds a stopping worker gives requests to finish (streams end within about 1 s).
GRACEFUL_TIMEOUT = 10


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """gunicorn serving an app built beforehand."""

    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def bind_address(host: str, port: int) -> str:
    """``host:port`` as gunicorn binds it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_port(host: str, port: int) -> None:
    """Make sure ``host:port`` can be listened on, before gunicorn retries it for 5 s.

    Raises:
        LightflowError: It cannot (in use, or not an address of this host).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise LightflowError(
            f"cannot listen on {bind_address(host, port)}: {error.strerror or error}; "
            "choose another --port or --host"
        ) from None


def serve(app: Flask, settings: RestSettings) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (blocking).

    Raises:
        LightflowError: The address cannot be listened on.
    """
    check_port(settings.host, settings.port)
    state = app.extensions["lightflow_rest"]

    def post_worker_init(worker: Any) -> None:
        state.alive = lambda: worker.alive

    options = {
        "bind": [bind_address(settings.host, settings.port)],
        "workers": settings.workers,
        "worker_class": "gthread",
        "threads": settings.threads,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "keepalive": 5,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "lightflow-rest",
        "post_worker_init": post_worker_init,
    }
    _Gunicorn(app, options).run()
