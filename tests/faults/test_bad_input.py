"""A new user's bad input: one ``Error:`` line that says what is wrong, and exit 1.

Every test runs the real ``lightflow`` script in a folder of its own, against real
servers where the input names one.
"""

from __future__ import annotations

import pytest

from tests.servers import redis

from .conftest import Site, one_error_line

pytestmark = pytest.mark.slow

WORKFLOW = '''\
"""Counts frames."""
from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("frames", default=DEFAULT, type=int)])


def count(data, store, signal, context):
    print("frames:", store.get("frames"))


d = Dag("frames")
d.define({PythonTask("count", count): None})
'''


def test_a_workflows_folder_that_does_not_exist_is_refused_naming_it(site: Site) -> None:
    missing = site.root / "no-such-folder"
    site.write_config(workflows=[str(missing)])
    for args in (["workflow", "list"], ["run", "frames"]):
        error = one_error_line(site.lightflow(*args))
        assert f"workflow folder {missing} does not exist" in error, args


def test_a_workflows_entry_that_is_a_file_is_refused(site: Site) -> None:
    (site.root / "flows").write_text("not a folder")
    site.write_config(workflows=["flows"])
    error = one_error_line(site.lightflow("workflow", "list"))
    assert f"workflow folder {site.root / 'flows'} is not a folder" in error


def test_a_wrong_type_default_is_the_workflows_fault_not_the_users(site: Site) -> None:
    (site.root / "frames.py").write_text(WORKFLOW.replace("DEFAULT", "'ten'"))
    error = one_error_line(site.lightflow("run", "frames.py"))
    assert "the workflow's default of parameter 'frames' ('ten') is not a valid int" in error
    given = site.lightflow("run", "frames.py", "frames=12")
    assert given.returncode == 0 and "frames: 12" in given.stdout
    typed = one_error_line(site.lightflow("run", "frames.py", "frames=x"))
    assert typed == "Error: parameter 'frames' expects int, got 'x'"


@pytest.mark.parametrize("url", ["redis//127.0.0.1:6379/0", "127.0.0.1:6379", "amqp:/host"])
def test_a_malformed_broker_url_is_called_malformed(site: Site, url: str) -> None:
    path = site.write_config("beamline.cfg", celery={"broker_url": url})
    for args in (["worker", "status"], ["workflow", "status"], ["config", "list"]):
        error = one_error_line(site.lightflow("-c", str(path), *args))
        assert f"celery.broker_url '{url}' is a malformed URL" in error, error
        assert f"(in {path})" in error and "not Redis" not in error
    site.env["LIGHTFLOW_CELERY__BROKER_URL"] = url
    error = one_error_line(site.lightflow("workflow", "status"))
    assert "malformed URL" in error and "LIGHTFLOW_CELERY__BROKER_URL" in error


def test_a_password_in_a_url_query_is_masked_everywhere(site: Site) -> None:
    secret = "s3cr3t-query-pw"
    with redis(password="right") as server:
        url = f"redis://{server.address}/1?password={secret}"
        broker = f"redis://:{secret}@{server.address}/0"
        path = site.write_config(celery={"broker_url": broker}, signal={"url": url})
        listing = site.lightflow("-c", str(path), "config", "list")
        assert listing.returncode == 0 and secret not in listing.stdout
        assert "password=********" in listing.stdout
        for args in (["workflow", "status"], ["worker", "start"]):
            result = site.lightflow("-c", str(path), *args)
            error = one_error_line(result)
            assert secret not in result.stdout + result.stderr, args
            assert "password=********" in error, error


def test_a_broker_url_with_a_password_in_its_query_is_refused(site: Site) -> None:
    """kombu cannot parse it (a TypeError traceback): say where the password goes."""
    url = "redis://127.0.0.1:6379/0?password=s3cr3t"
    path = site.write_config(celery={"broker_url": url}, signal={"url": url})
    result = site.lightflow("-c", str(path), "worker", "status")
    error = one_error_line(result)
    assert "cannot give 'password' in its query" in error and "s3cr3t" not in error


def test_config_help_names_every_file_looked_up(site: Site) -> None:
    result = site.lightflow("--help")
    assert "~/.config/lightflow/lightflow.cfg, ~/lightflow.cfg" in " ".join(result.stdout.split())


def test_advice_names_the_file_given_with_c(site: Site) -> None:
    path = site.write_config("beamline.cfg", workflows=[])
    result = site.lightflow("-c", str(path), "workflow", "list")
    assert f"add them to 'workflows' in {path}" in result.stdout
    error = one_error_line(site.lightflow("-c", str(path), "run", "no_such_flow"))
    assert f"add its folder to 'workflows' in {path}" in error, error
    amqp = site.write_config("amqp.cfg", celery={"broker_url": "amqp://guest@127.0.0.1//"})
    error = one_error_line(site.lightflow("-c", str(amqp), "workflow", "status"))
    assert f"signal.url (or signal.host/port) in {amqp}" in error, error
    store = site.write_config(
        "store.cfg", celery={"broker_url": "redis://127.0.0.1:1/0"}, store={"hots": "x"}
    )
    error = one_error_line(site.lightflow("-c", str(store), "workflow", "start", "x.py"))
    assert f"unknown store setting 'hots' in {store}" in error, error


def test_config_list_hides_every_secret_setting(site: Site) -> None:
    path = site.write_config(
        extensions={"rest": {"tokens": [{"token": "tok-123456789abc", "token_env": "LF_T"}]}},
        store={"client_secret": "sec-987", "password": "pw-555"},
    )
    listing = site.lightflow("-c", str(path), "config", "list")
    assert listing.returncode == 0
    for secret in ("tok-123456789abc", "sec-987", "pw-555"):
        assert secret not in listing.stdout, secret
    assert "token_env: LF_T" in listing.stdout  # where a secret is kept stays visible


def test_the_default_file_describes_what_runs_without_a_broker(site: Site) -> None:
    assert site.lightflow("config", "default", str(site.root)).returncode == 0
    text = (site.root / "lightflow.cfg").read_text()
    assert "and friends" not in text and "else redis://localhost" not in text
    assert "refuse to" in text
