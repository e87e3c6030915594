"""The Flask app factory: :func:`create_app` builds one server from a configuration.

No global app and no import-time side effects (Flask's factory pattern): the app holds
its :class:`~lightflow_rest.context.ServerState` in ``app.extensions``, the two API
blueprints (:mod:`.v2`, :mod:`.legacy`), the dashboard (:mod:`.dashboard`) and the one
error handler (:mod:`.errors`). Responses carry headers that keep browsers from
loading anything from elsewhere (the pages work offline, with no CDN), and CORS
headers only for the origins ``extensions.rest.cors_origins`` names.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from lightflow.config import Config

from . import errors
from .auth import Authenticator
from .context import ServerState
from .settings import RestSettings, load_settings
from .streams import EventHub

logger = logging.getLogger("lightflow_rest")

#: What pages may load: only what this server serves.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_CORS_HEADERS = "Authorization, Content-Type, Last-Event-ID"


def create_app(config: Config, settings: RestSettings | None = None) -> Flask:
    """Build the REST server for ``config``.

    Args:
        config: The Lightflow configuration: cluster, workflow folders, and the
            ``extensions.rest`` section.
        settings: The server settings, when already read from that section.

    Raises:
        ConfigError: The ``extensions.rest`` section is invalid (see
            :func:`~lightflow_rest.settings.load_settings`).
    """
    from .dashboard import dashboard
    from .legacy import legacy
    from .v2 import v2

    settings = settings or load_settings(config.extensions.get("rest"))
    if not settings.auth:
        logger.warning(
            "extensions.rest.auth is false: anyone who reaches %s:%s can start and stop "
            "workflow runs and stop workers",
            settings.host,
            settings.port,
        )
    app = Flask("lightflow_rest")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["lightflow_rest"] = ServerState(
        config=config,
        settings=settings,
        auth=Authenticator(settings.tokens, enabled=settings.auth),
        hub=EventHub(config),
    )
    app.register_blueprint(v2)
    app.register_blueprint(legacy)
    app.register_blueprint(dashboard)
    errors.register(app)
    allowed = set(settings.cors_origins)

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        origin = request.headers.get("Origin")
        if origin is not None and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Headers"] = _CORS_HEADERS
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE"
            response.headers["Vary"] = "Origin"
        return response

    return app
