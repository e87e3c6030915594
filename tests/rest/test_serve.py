"""``lightflow rest serve``: closed by default, one-line refusals, a warning without auth.

Each server here is a real ``lightflow rest serve`` process on a free port; the
refusals are checked as users meet them: exit status 1 and one ``Error:`` line.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.cluster import Cluster
from tests.rest.conftest import (
    OPERATE_TOKEN,
    WORKFLOWS,
    Http,
    RestServer,
    lightflow,
    rest_section,
    write_config,
)
from tests.servers import free_port


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed (exit 1) with exactly one ``Error:`` line and no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_help_lists_the_rest_group_without_loading_flask() -> None:
    result = lightflow("--help")
    assert result.returncode == 0, result.stderr
    assert "rest" in result.stdout
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, lightflow_rest.plugin as p; p.lightflow_cli_commands(); "
            "p.lightflow_config_defaults(); "
            "heavy = ('flask', 'gunicorn', 'werkzeug', 'lightflow.api'); "
            "print([m for m in heavy if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.stdout.strip() == "[]", check.stdout + check.stderr


def test_serve_help_names_the_options() -> None:
    result = lightflow("rest", "serve", "--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--workers", "--threads"):
        assert option in result.stdout


def test_the_defaults_are_closed(tmp_path: Path) -> None:
    result = lightflow("config", "default", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load((tmp_path / "lightflow.cfg").read_text())
    rest = written["extensions"]["rest"]
    assert rest["host"] == "127.0.0.1"
    assert rest["auth"] is True
    assert rest["tokens"] == []
    assert rest["cors_origins"] == []


def test_serve_without_a_token_refuses(tmp_path: Path, redis_cluster: Cluster) -> None:
    config = write_config(redis_cluster, tmp_path / "lightflow.cfg", {})
    line = one_error_line(lightflow("rest", "serve", "--port", str(free_port()), config=config))
    assert "at least one token" in line and "auth: false" in line


def test_serve_without_a_broker_refuses(tmp_path: Path) -> None:
    config = tmp_path / "lightflow.cfg"
    config.write_text(yaml.safe_dump({"extensions": {"rest": rest_section(tmp_path)}}))
    line = one_error_line(lightflow("rest", "serve", config=config))
    assert "no broker configured" in line


@pytest.mark.parametrize(
    ("rest", "env", "expected"),
    [
        ({"port": "http"}, {}, "extensions.rest.port must be a whole number"),
        ({"prot": 5000}, {}, "extensions.rest.prot is not a setting"),
        ({"auth": "no"}, {}, "extensions.rest.auth must be true or false"),
        ({"tokens": [{"token": "short", "role": "operate"}]}, {}, "at least 16 characters"),
        ({"tokens": [{"token": "x" * 20, "role": "admin"}]}, {}, "role must be read or operate"),
        (
            {"tokens": [{"token_env": "REST_SUITE_UNSET", "role": "read"}]},
            {},
            "REST_SUITE_UNSET is not set",
        ),
        (
            {"tokens": [{"token_file": "/nonexistent/token", "role": "read"}]},
            {},
            "cannot read the token file",
        ),
        (
            {"tokens": [{"token": "x" * 20, "token_env": "HOME", "role": "read"}]},
            {},
            "exactly one of token, token_env or token_file",
        ),
        (
            {"tokens": [{"token": "x" * 20, "role": "read", "expires": 1}]},
            {},
            "tokens[0].expires is not",
        ),
        ({"cors_origins": "*"}, {}, "cors_origins must be a list"),
    ],
)
def test_bad_settings_are_one_line(
    tmp_path: Path, redis_cluster: Cluster, rest: dict, env: dict, expected: str
) -> None:
    config = write_config(redis_cluster, tmp_path / "lightflow.cfg", rest)
    line = one_error_line(lightflow("rest", "serve", config=config, env=env))
    assert expected in line


def test_a_port_in_use_is_one_line(tmp_path: Path, redis_cluster: Cluster) -> None:
    config = write_config(redis_cluster, tmp_path / "lightflow.cfg", rest_section(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = lightflow(
            "rest",
            "serve",
            "--port",
            str(port),
            config=config,
            env={"REST_SUITE_OPERATE_TOKEN": OPERATE_TOKEN},
        )
    line = one_error_line(result)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "choose another --port" in line


def test_serves_on_127_0_0_1_by_default(rest_server: RestServer) -> None:
    assert f"Listening at: http://127.0.0.1:{rest_server.port}" in rest_server.output()
    assert "gthread" in rest_server.output()
    outside = _outside_address()
    if outside is not None:
        with pytest.raises(OSError):
            socket.create_connection((outside, rest_server.port), timeout=2).close()


def _outside_address() -> str | None:
    """An address of this host other than loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_without_auth_every_start_warns_and_cors_only_for_listed_origins(
    tmp_path: Path, redis_cluster: Cluster
) -> None:
    config = write_config(
        redis_cluster,
        tmp_path / "lightflow.cfg",
        {"auth": False, "cors_origins": ["http://beamline.example"]},
    )
    for _start in range(2):
        with RestServer(config) as server:
            http = Http(server.url, token=None)
            assert http.get("/api/v2/runs").status_code == 200
            allowed = http.get("/api/v2/runs", headers={"Origin": "http://beamline.example"})
            assert allowed.headers["Access-Control-Allow-Origin"] == "http://beamline.example"
            assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
            other = http.get("/api/v2/runs", headers={"Origin": "http://elsewhere.example"})
            assert "Access-Control-Allow-Origin" not in other.headers
            preflight = requests.options(
                server.url + "/api/v2/runs",
                headers={
                    "Origin": "http://beamline.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
                timeout=30,
            )
            assert preflight.status_code == 200
            assert preflight.headers["Access-Control-Allow-Origin"] == "http://beamline.example"
            output = server.output()
        assert output.count("extensions.rest.auth is false") == 1, output


def test_no_cors_headers_unless_configured(http: Http) -> None:
    response = http.get("/api/v2/runs", headers={"Origin": "http://beamline.example"})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.lower().startswith("access-control")]


def test_sigterm_stops_the_server_with_an_event_stream_open(
    tmp_path: Path, redis_cluster: Cluster
) -> None:
    config = write_config(redis_cluster, tmp_path / "lightflow.cfg", rest_section(tmp_path))
    server = RestServer(config).start()
    try:
        stream = requests.get(
            server.url + "/api/v2/events",
            headers={"Authorization": f"Bearer {OPERATE_TOKEN}"},
            stream=True,
            timeout=30,
        )
        assert stream.status_code == 200
        next(stream.iter_lines())  # the stream is open and served
        started = time.monotonic()
        status = server.terminate()
        # Streams end within about a second of the shutdown, not at the 10 s grace.
        assert time.monotonic() - started < 8, server.output()
        assert status == 0, server.output()
    finally:
        server.stop()


def test_the_workflow_folder_is_the_only_source_of_workflows(http: Http) -> None:
    # Sanity of the suite's config: the served workflows are this folder's.
    names = {w["name"] for w in http.get("/api/v2/workflows").json()["workflows"]}
    assert names == {path.stem for path in WORKFLOWS.glob("*.py")}
