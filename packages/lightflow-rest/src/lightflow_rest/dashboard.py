"""The dashboard and the API explorer: static pages, served by the server itself.

No build step and no internet: plain HTML, CSS and JavaScript in ``static/``, which
the package ships. The pages hold no data, so they are served without a token; they
ask for one and send it with every API call they make (``Authorization: Bearer``), the
event streams included (read with ``fetch``, since ``EventSource`` cannot send
headers). ``/`` is the dashboard, ``/api/v2/docs`` the explorer of the OpenAPI
document.
"""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory

dashboard = Blueprint("dashboard", __name__, static_folder="static", static_url_path="/static")


@dashboard.get("/")
def index() -> Response:
    """The dashboard: runs, a run's DAG and log, the start form, the workers."""
    return _page("dashboard.html")


@dashboard.get("/api/v2/docs")
def explorer() -> Response:
    """The interactive page of the OpenAPI document."""
    return _page("explorer.html")


def _page(name: str) -> Response:
    response = send_from_directory(dashboard.static_folder or "static", name, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response
