"""``lightflow rest``: the REST extension's commands.

``lightflow rest serve`` reads the ``extensions.rest`` section, lets the options
override its address and sizes, builds the app and serves it (:mod:`.server`). Every
problem found before serving (a bad setting, no token, no broker, a port in use) is
one line and exit status 1. Flask and gunicorn are imported only when the command
runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from lightflow.cli.main import CliState


@click.group("rest")
def rest_group() -> None:
    """The REST API, event stream and dashboard over HTTP."""


@rest_group.command("serve")
@click.option(
    "--host", default=None, help="Address to bind (default: extensions.rest.host, 127.0.0.1)."
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port (default: extensions.rest.port, 5000).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Server processes (default: extensions.rest.workers, 1).",
)
@click.option(
    "--threads",
    type=click.IntRange(2, 4096),
    default=None,
    help="Request threads per process; each open event stream holds one "
    "(default: extensions.rest.threads, 128).",
)
@click.pass_obj
def serve_command(
    state: CliState, host: str | None, port: int | None, workers: int | None, threads: int | None
) -> None:
    """Serve the API and the dashboard until Ctrl-C (SIGINT) or SIGTERM.

    Binds 127.0.0.1 unless told otherwise, and needs a token for every request but
    the health check (extensions.rest.tokens; `auth: false` turns that off, with a
    warning at every start).
    """
    from dataclasses import replace

    from lightflow import api

    from .app import create_app
    from .server import serve
    from .settings import load_settings

    config = state.config
    api.require_broker(config)
    settings = load_settings(config.extensions.get("rest"))
    overrides = {"host": host, "port": port, "workers": workers, "threads": threads}
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    state.apply_logging()
    serve(create_app(config, settings), settings)
