"""``pip install lightflow lightflow-rest`` from two wheels serves the API and dashboard.

Only that venv's ``lightflow rest serve`` runs (``rest_install``, see ``wheels.py``),
on a free port, for the session's Redis cluster with the REST suite's workflows and
tokens: flask and gunicorn come with the wheel, the API answers with a token and
refuses without one, the dashboard's static files are in the wheel, and SIGTERM ends
the server.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster
from tests.rest.conftest import (
    OPERATE_TOKEN,
    READ_TOKEN,
    WORKFLOWS,
    Http,
    rest_section,
    write_config,
)
from tests.servers import ServerProcess, free_port

from .wheels import Install, Wheel, assert_extensions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


class VenvRestServer(ServerProcess):
    """The venv's ``lightflow -c CONFIG rest serve`` on a free port, in the venv's
    environment alone (plus the operate token the REST suite's config reads)."""

    def __init__(self, install: Install, config: Path) -> None:
        port = free_port()
        env = {**install.env, "REST_SUITE_OPERATE_TOKEN": OPERATE_TOKEN, "PYTHONUNBUFFERED": "1"}
        super().__init__(
            ["env", "-i", "-C", str(install.folder), *(f"{k}={v}" for k, v in env.items()),
             install.lightflow, "-c", str(config), "rest", "serve", "--port", str(port)],
            port, "the venv's lightflow rest serve", startup_timeout=60,
        )  # fmt: skip
        self.url = f"http://{self.address}"

    def terminate(self, timeout: float) -> int:
        """SIGTERM the server and wait for it to exit; return its exit status."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        return self._process.wait(timeout)


@pytest.fixture(scope="module")
def server(
    rest_install: Install, redis_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VenvRestServer]:
    folder = tmp_path_factory.mktemp("rest-serve")
    config = write_config(redis_cluster, folder / "lightflow.cfg", rest_section(folder))
    with VenvRestServer(rest_install, config) as started:
        yield started


def test_ext_list_shows_the_rest_extension_only(
    rest_install: Install, wheels: dict[str, Wheel]
) -> None:
    assert_extensions(rest_install, [wheels["lightflow-rest"]])


@pytest.mark.parametrize("path", ["/api/v2/workflows", "/api/v2/runs", "/workflow/available"])
def test_the_api_answers_with_a_token_only(server: VenvRestServer, path: str) -> None:
    http = Http(server.url)
    answered = http.get(path, token=READ_TOKEN)
    assert answered.status_code == 200, answered.text + server.output()[-3000:]
    assert http.get(path, token=None).status_code == 401


def test_it_serves_the_suites_workflows(server: VenvRestServer) -> None:
    listed = Http(server.url).get("/api/v2/workflows").json()["workflows"]
    assert {workflow["name"] for workflow in listed} == {p.stem for p in WORKFLOWS.glob("*.py")}


def test_the_dashboard_is_served(server: VenvRestServer) -> None:
    http = Http(server.url, token=None)
    page = http.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "dashboard.js" in page.text, page.text[:2000]
    script = http.get("/static/dashboard.js")
    assert script.status_code == 200 and script.text.strip(), script.status_code


def test_sigterm_ends_the_server_within_seconds(
    rest_install: Install, redis_cluster: Cluster, tmp_path: Path
) -> None:
    config = write_config(redis_cluster, tmp_path / "lightflow.cfg", rest_section(tmp_path))
    with VenvRestServer(rest_install, config) as server:
        assert Http(server.url).get("/api/v2/runs").status_code == 200, server.output()
        started = time.monotonic()
        status = server.terminate(timeout=30)
        took = time.monotonic() - started
        assert status == 0 and took < 5, (status, took, server.output()[-3000:])
