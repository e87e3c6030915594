"""The REST suite's server: one real ``lightflow rest serve`` process for the session.

It serves the session's Redis cluster (``redis_cluster``: Redis, SecantusDB, a real
worker) on a free port, with the workflows of ``tests/rest/workflows`` and no
libraries (so a run whose workflow needs the workers' library is still stopped by
it). Two tokens: :data:`OPERATE_TOKEN` (read from an environment variable) and
:data:`READ_TOKEN` (read from a file). :class:`Http` is a small client that sends
either token, or none.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.cluster import Cluster
from tests.servers import ServerProcess, free_port

WORKFLOWS = Path(__file__).resolve().parent / "workflows"
WORKER_ONLY = Path(__file__).resolve().parent / "worker_only"
#: Screenshots and page sources of the browser tests (git-ignored).
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

OPERATE_TOKEN = "operate-token-for-the-rest-suite-0123456789"
READ_TOKEN = "read-token-for-the-rest-suite-9876543210"


def lightflow(
    *args: str, config: Path | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``lightflow [-c config] args...`` to its end; return its output."""
    options = ["-c", str(config)] if config else []
    return subprocess.run(
        [sys.executable, "-m", "lightflow.cli", *options, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def rest_section(folder: Path, **more: Any) -> dict[str, Any]:
    """An ``extensions.rest`` section with the suite's two tokens (the read one in a file)."""
    token_file = folder / "read.token"
    token_file.write_text(READ_TOKEN + "\n")
    return {
        "tokens": [
            {"token_env": "REST_SUITE_OPERATE_TOKEN", "role": "operate", "name": "suite operator"},
            {"token_file": str(token_file), "role": "read"},
        ],
        "heartbeat": 1,
        **more,
    }


class RestServer(ServerProcess):
    """A ``lightflow rest serve`` process on a free port, for ``config``.

    Its environment holds the operate token (``REST_SUITE_OPERATE_TOKEN``) and ``env``.
    """

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        port = free_port()
        variables = {
            "REST_SUITE_OPERATE_TOKEN": OPERATE_TOKEN,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        super().__init__(
            [
                "env",
                *(f"{name}={value}" for name, value in variables.items()),
                sys.executable,
                "-m",
                "lightflow.cli",
                "-c",
                str(config),
                "rest",
                "serve",
                "--port",
                str(port),
                *args,
            ],
            port,
            "lightflow rest serve",
            startup_timeout=60,
        )
        self.url = f"http://{self.address}"

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM the server and wait for it to exit; return its exit status."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        return self._process.wait(timeout)


@dataclass
class Http:
    """Requests to the server with a token (``token=None``: without one)."""

    url: str
    token: str | None = OPERATE_TOKEN

    def headers(self, token: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def request(
        self, method: str, path: str, *, token: str | bool | None = True, **kwargs: Any
    ) -> requests.Response:
        chosen = self.token if token is True else token or None
        headers = self.headers(chosen, kwargs.pop("headers", None))
        kwargs.setdefault("timeout", 60)
        return requests.request(method, self.url + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def wait_for_run(self, run_id: str, timeout: float = 60) -> dict[str, Any]:
        """Poll the run until it has ended; return its record."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(f"/api/v2/runs/{run_id}").json()
            if run["state"] not in ("queued", "running"):
                return run
            assert time.monotonic() < deadline, f"run {run_id} did not end: {run}"
            time.sleep(0.2)

    def events(
        self,
        path: str,
        *,
        count: int | None = None,
        until: str | None = None,
        timeout: float = 60,
        headers: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Read an SSE stream until ``count`` messages or an event of type ``until``.

        Each message is ``{"id", "event", "data"}`` (data parsed as JSON when it is).
        """
        messages = []
        with self.request("GET", path, stream=True, headers=headers, timeout=timeout) as response:
            assert response.status_code == 200, response.text
            for message in parse_sse(response.iter_lines(decode_unicode=True)):
                messages.append(message)
                if (count is not None and len(messages) >= count) or message["event"] == until:
                    break
        return messages


def parse_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """SSE messages from the lines of a stream (comments skipped)."""
    message: dict[str, Any] = {"id": None, "event": None, "data": []}
    for line in lines:
        if line == "":
            if message["data"]:
                text = "\n".join(message["data"])
                try:
                    message["data"] = json.loads(text)
                except ValueError:
                    message["data"] = text
                yield message
            message = {"id": None, "event": None, "data": []}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                message["data"].append(value)
            elif field in ("id", "event"):
                message[field] = value


@pytest.fixture(scope="session")
def rest_config(tmp_path_factory: pytest.TempPathFactory, redis_cluster: Cluster) -> Path:
    """The REST suite's lightflow.cfg: the session cluster, its own workflows, no libraries."""
    folder = tmp_path_factory.mktemp("rest")
    return write_config(redis_cluster, folder / "lightflow.cfg", rest_section(folder))


def write_config(cluster: Cluster, path: Path, rest: dict[str, Any], **sections: Any) -> Path:
    """A config for the cluster's servers with only the suite's workflows, no libraries."""
    settings = cluster.settings()
    settings.update(workflows=[str(WORKFLOWS)], libraries=[], extensions={"rest": rest}, **sections)
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="session")
def rest_server(rest_config: Path) -> Iterator[RestServer]:
    """The suite's server process."""
    server = RestServer(rest_config)
    with server:
        yield server


@pytest.fixture
def http(rest_server: RestServer) -> Http:
    """A client of the suite's server, with the operate token by default."""
    return Http(rest_server.url)
