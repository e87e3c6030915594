"""Errors as HTTP answers: every failure becomes ``{"error": message}`` in one place.

:func:`register` installs the app's only error handler. It maps the core's typed
errors (:mod:`lightflow.exceptions`) and the server's own :class:`ApiError` to a status:

============================================  =============================
error                                          status
============================================  =============================
:class:`ApiError`                              its own (400, 401, 403, 415...)
``NotFoundError`` (no run, workflow, key...)  404
``ParameterError``                             422 (``/api/v2``), 400 (1.x)
``NoBrokerError``, ``StateServerError``        503
any other ``LightflowError``                   400
werkzeug's ``HTTPException``                   its own (404, 405, 413)
anything else                                  500, logged with its traceback
============================================  =============================

Bad input therefore never shows as a 500 or a traceback; a 500 is a bug of the server
and says so. Messages are one line (a multi-line message is joined).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lightflow.exceptions import (
    LightflowError,
    NoBrokerError,
    NotFoundError,
    ParameterError,
    StateServerError,
)

if TYPE_CHECKING:
    from flask import Flask, Response

logger = logging.getLogger("lightflow_rest")

#: The blueprint of the 1.x endpoints, whose clients expect 400 for bad arguments.
LEGACY_BLUEPRINT = "legacy"


class ApiError(Exception):
    """A request the server refuses, with the status and the one-line reason.

    Args:
        status: The HTTP status (4xx).
        message: What is wrong and how to fix it.
        headers: Extra response headers (``WWW-Authenticate`` for a 401).
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def status_of(error: LightflowError, legacy: bool = False) -> int:
    """The HTTP status of one of the core's errors (``legacy``: a 1.x endpoint)."""
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ParameterError):
        return 400 if legacy else 422
    if isinstance(error, (NoBrokerError, StateServerError)):
        return 503
    return 400


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}`` with ``status``; the message on one line."""
    from flask import jsonify

    line = " ".join(part.strip() for part in message.strip().splitlines()) or "error"
    response = jsonify({"error": line})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register(app: Flask) -> None:
    """Install the one error handler on ``app``."""
    from flask import request
    from werkzeug.exceptions import HTTPException

    def handle(error: Exception) -> Response:
        if isinstance(error, ApiError):
            return error_response(error.status, error.message, error.headers)
        if isinstance(error, LightflowError):
            legacy = request.blueprint == LEGACY_BLUEPRINT
            return error_response(status_of(error, legacy), str(error))
        if isinstance(error, HTTPException):
            headers = dict(error.get_headers())
            headers.pop("Content-Type", None)
            return error_response(error.code or 500, _http_message(error), headers)
        logger.exception("internal error in %s %s", request.method, request.path)
        return error_response(
            500, f"internal error of the server ({type(error).__name__}); see its log"
        )

    app.register_error_handler(Exception, handle)


def _http_message(error: Exception) -> str:
    """werkzeug's description, made specific for the statuses clients meet."""
    from flask import current_app, request
    from werkzeug.exceptions import MethodNotAllowed, NotFound, RequestEntityTooLarge

    if isinstance(error, RequestEntityTooLarge):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return (
            f"the request body is larger than the server accepts ({limit} bytes, "
            "extensions.rest.max_body_bytes)"
        )
    if isinstance(error, NotFound):
        return f"no such endpoint: {request.path}; the API is described at /api/v2/openapi.json"
    if isinstance(error, MethodNotAllowed):
        allowed = ", ".join(error.valid_methods or [])
        return f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
    return getattr(error, "description", None) or str(error)
