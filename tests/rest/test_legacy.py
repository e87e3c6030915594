"""The 1.x endpoints, called as a 1.x client does: form-encoded arguments, 1.x keys.

The client here is plain ``requests`` with form data, like the experiment management
systems that start workflows with one HTTP call.
"""

from __future__ import annotations

import pytest

from tests.cluster import Cluster
from tests.rest.conftest import READ_TOKEN, Http
from tests.rest.test_runs import wait_for_task


def start_1x(http: Http, name: str, form: dict[str, str], query: str = "") -> str:
    response = http.post(f"/workflow/{name}{query}", data=form)
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["id"]
    return response.json()["id"]


def test_start_with_form_fields_and_keep_data(http: Http) -> None:
    run_id = start_1x(http, "greet", {"name": "Ada", "count": "2"}, "?keep_data=1")
    run = http.wait_for_run(run_id)
    assert run["state"] == "succeeded" and run["keep_data"] is True
    assert run["arguments"] == {"name": "Ada", "count": 2, "loud": False}
    plain = http.wait_for_run(start_1x(http, "greet", {"name": "Bo"}))
    assert plain["keep_data"] is False


@pytest.mark.parametrize(
    ("path", "form", "status", "expected"),
    [
        ("/workflow/greet", {}, 400, "name"),
        ("/workflow/greet", {"name": "Ada", "count": "lots"}, 400, "count"),
        ("/workflow/greet?keep_data=yes", {"name": "Ada"}, 400, "must be one of: 0, 1"),
        ("/workflow/missing_flow", {"a": "1"}, 404, "no workflow named 'missing_flow'"),
        ("/workflow/greet.py", {"name": "Ada"}, 400, "not a workflow name"),
    ],
)
def test_start_errors_are_json_4xx(
    http: Http, path: str, form: dict, status: int, expected: str
) -> None:
    response = http.post(path, data=form)
    assert response.status_code == status, response.text
    assert expected in response.json()["error"]


def test_stop_by_id_and_by_name(http: Http) -> None:
    by_id = start_1x(http, "endless", {})
    wait_for_task(http, by_id, "wait")
    assert http.delete(f"/workflow/{by_id}").json() == {"success": True}
    assert http.wait_for_run(by_id)["state"] == "stopped"
    assert http.delete(f"/workflow/{by_id}").json() == {"success": False}
    first, second = start_1x(http, "endless", {}), start_1x(http, "endless", {})
    wait_for_task(http, first, "wait")
    assert http.delete("/workflow/endless").json() == {"success": True}
    assert {http.wait_for_run(r)["state"] for r in (first, second)} == {"stopped"}
    assert http.delete("/workflow/endless").json() == {"success": False}
    unknown = http.delete("/workflow/nothing_of_that_name")
    assert unknown.status_code == 404 and "error" in unknown.json()


def test_active_registered_and_reserved(http: Http) -> None:
    run_id = start_1x(http, "endless", {})
    wait_for_task(http, run_id, "wait")
    try:
        for path in ("/workflow/", "/workflow/active"):
            [job] = [w for w in http.get(path).json()["workflows"] if w["id"] == run_id]
            assert job["name"] == "endless" and job["type"] == "workflow"
            assert job["workflow_id"] == run_id and job["routing_key"] == "workflow"
            assert [d["name"] for d in job["dags"]] == ["main"]
            [task] = job["tasks"]
            assert task["name"] == "wait" and task["type"] == "task" and task["worker_name"]
        registered = http.get("/workflow/registered").json()["workflows"]
        assert run_id in [w["id"] for w in registered]
        reserved = http.get("/workflow/reserved").json()["workflows"]
        assert run_id not in [w["id"] for w in reserved]  # a worker took it
    finally:
        http.delete(f"/workflow/{run_id}")
    http.wait_for_run(run_id)
    assert run_id not in [w["id"] for w in http.get("/workflow/active").json()["workflows"]]


def test_a_queued_run_is_reserved(http: Http) -> None:
    # A queue no worker consumes keeps the run queued.
    response = http.post("/api/v2/runs", json={"workflow": "endless", "queue": "rest-suite-nobody"})
    run_id = response.json()["id"]
    try:
        reserved = http.get("/workflow/reserved").json()["workflows"]
        [job] = [w for w in reserved if w["id"] == run_id]
        assert job["state"] == "queued" and job["routing_key"] == "rest-suite-nobody"
        assert run_id in [w["id"] for w in http.get("/workflow/registered").json()["workflows"]]
    finally:
        assert http.delete(f"/workflow/{run_id}").json() == {"success": True}


def test_available_lists_arguments_and_docs(http: Http) -> None:
    workflows = {w["name"]: w for w in http.get("/workflow/available").json()["workflows"]}
    greet = workflows["greet"]
    assert (
        greet["docs"]
        == "Greet someone a number of times: the REST suite's workflow with parameters."
    )
    assert greet["arguments"] == [
        {"name": "name", "type": "str", "docs": "Who is greeted", "default": None},
        {"name": "count", "type": "int", "docs": "How many greetings", "default": 1},
        {"name": "loud", "type": "bool", "docs": "Shout the greetings", "default": False},
    ]


def test_workers_with_queues_and_details(http: Http, redis_cluster: Cluster) -> None:
    run_id = start_1x(http, "endless", {})
    wait_for_task(http, run_id, "wait")
    try:
        workers = http.get("/worker/", params={"details": "1"}).json()["workers"]
        main = next(w for w in workers if w["name"].startswith("main-"))
        assert {"name": "task", "routing_key": "task"} in main["queues"]
        assert main["pid"] > 0 and main["concurrency"] == 2
        assert any(job["workflow_id"] == run_id for job in main["jobs"])
        none = http.get("/worker/", params={"queue": "rest-suite-nobody"}).json()
        assert none == {"workers": []}
        plain = http.get("/worker/").json()["workers"]
        assert all("jobs" not in w for w in plain)
    finally:
        http.delete(f"/workflow/{run_id}")
    assert http.get("/worker/", params={"details": "2"}).status_code == 400


def test_stop_a_worker(http: Http, redis_cluster: Cluster) -> None:
    worker = redis_cluster.worker("rest-1x", queues="rest-1x-only", concurrency=1)
    assert http.delete("/worker/nobody@nowhere").json() == {"success": False}
    assert http.delete(f"/worker/{worker.node}").json() == {"success": True}
    worker.process.wait(60)


def test_config_masks_secrets(http: Http) -> None:
    config = http.get("/config/").json()
    assert config["celery"]["broker_url"].startswith("redis://")
    tokens = config["extensions"]["rest"]["tokens"]
    assert tokens[0]["token_env"] == "REST_SUITE_OPERATE_TOKEN"
    reader = Http(http.url, token=READ_TOKEN)
    assert reader.get("/config/").status_code == 200


def test_1x_endpoints_need_tokens_and_roles(http: Http) -> None:
    anonymous = Http(http.url, token=None)
    reader = Http(http.url, token=READ_TOKEN)
    for method, path in [("GET", "/workflow/"), ("GET", "/worker/"), ("GET", "/config/")]:
        assert anonymous.request(method, path).status_code == 401
        assert reader.request(method, path).status_code == 200
    for method, path in [
        ("POST", "/workflow/greet"),
        ("DELETE", "/workflow/greet"),
        ("DELETE", "/worker/x"),
    ]:
        assert anonymous.request(method, path).status_code == 401
        assert reader.request(method, path).status_code == 403


def test_literal_tokens_never_show_in_config(tmp_path, redis_cluster: Cluster) -> None:
    from tests.rest.conftest import RestServer, write_config

    literal = "literal-token-that-must-stay-secret"
    config = write_config(
        redis_cluster, tmp_path / "lightflow.cfg", {"tokens": [{"token": literal, "role": "read"}]}
    )
    with RestServer(config) as server:
        shown = Http(server.url, token=literal).get("/config/")
        assert shown.status_code == 200
        assert literal not in shown.text
        assert shown.json()["extensions"]["rest"]["tokens"][0]["token"] == "********"
