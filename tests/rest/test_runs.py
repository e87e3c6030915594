"""``/api/v2/runs``: start, list, inspect, stop, logs and store of real runs.

Every run here is executed by the session cluster's real worker; the server is the
suite's ``lightflow rest serve`` process.
"""

from __future__ import annotations

import threading
import time

import pytest
from lightflow import api

from tests.cluster import Cluster
from tests.rest.conftest import READ_TOKEN, WORKER_ONLY, Http


def start(http: Http, workflow: str, **body: object) -> str:
    response = http.post("/api/v2/runs", json={"workflow": workflow, **body})
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    assert response.json()["url"] == f"/api/v2/runs/{run_id}"
    return run_id


def wait_for_task(http: Http, run_id: str, task: str, state: str = "started") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = http.get(f"/api/v2/runs/{run_id}").json()
        if any(t["name"] == task and t["state"] == state for d in run["dags"] for t in d["tasks"]):
            return
        time.sleep(0.1)
    raise AssertionError(f"task {task} of run {run_id} never reached {state}")


def test_start_a_run_with_arguments_converted_by_its_parameters(http: Http) -> None:
    run_id = start(http, "greet", arguments={"name": "Ada", "count": "3", "loud": "yes"})
    run = http.wait_for_run(run_id)
    assert run["state"] == "succeeded"
    assert run["arguments"] == {"name": "Ada", "count": 3, "loud": True}
    assert run["workflow"] == "greet" and run["keep_data"] is False
    assert run["duration"] > 0 and run["ended"] >= run["started"] >= run["created"]
    [main] = run["dags"]
    assert [t["name"] for t in main["tasks"]] == ["greet", "finish"]
    for task in main["tasks"]:
        assert task["state"] == "succeeded"
        assert task["worker"] and task["duration"] >= 0
        assert task["ended"] >= task["started"]
        assert task["message"] is None and task["traceback"] is None


def test_json_arguments_reach_the_tasks_as_they_are(http: Http) -> None:
    run_id = start(http, "greet", arguments={"name": "Bo", "count": 2}, keep_data=True)
    assert http.wait_for_run(run_id)["state"] == "succeeded"
    greetings = http.get(f"/api/v2/runs/{run_id}/data", params={"key": "greetings"})
    assert greetings.json()["value"] == ["hello Bo #0", "hello Bo #1"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "name"),
        ({"name": "Ada", "count": "many"}, "count"),
        ({"name": "Ada", "colour": "red"}, "colour"),
        ({"name": "Ada", "loud": "perhaps"}, "loud"),
    ],
)
def test_arguments_the_parameters_refuse_are_422(
    http: Http, arguments: dict[str, str], expected: str
) -> None:
    before = len(
        http.get("/api/v2/runs", params={"workflow": "greet", "limit": 1000}).json()["runs"]
    )
    response = http.post("/api/v2/runs", json={"workflow": "greet", "arguments": arguments})
    assert response.status_code == 422, response.text
    assert expected in response.json()["error"]
    after = len(
        http.get("/api/v2/runs", params={"workflow": "greet", "limit": 1000}).json()["runs"]
    )
    assert after == before  # nothing was queued


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"workflow": "no_such_flow"}, 404, "no workflow named 'no_such_flow'"),
        ({"workflow": "../greet"}, 400, "is malformed"),
        ({"workflow": "greet.py"}, 400, "not a workflow name"),
        ({"workflow": "/etc/passwd"}, 400, "is malformed"),
        ({}, 400, "needs the field 'workflow'"),
        ({"workflow": "greet", "code": "import os"}, 400, "unknown field 'code'"),
        ({"workflow": "greet", "arguments": ["name=Ada"]}, 400, "must be an object"),
        ({"workflow": "greet", "keep_data": "yes"}, 400, "must be a boolean"),
        ({"workflow": "greet", "queue": ""}, 400, "must not be empty"),
    ],
)
def test_bad_start_requests(http: Http, body: dict, status: int, expected: str) -> None:
    response = http.post("/api/v2/runs", json=body)
    assert response.status_code == status, response.text
    assert expected in response.json()["error"]


def test_malformed_json_wrong_type_and_oversized_bodies(http: Http) -> None:
    malformed = http.post(
        "/api/v2/runs", data='{"workflow": "greet",', headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert "not valid JSON" in malformed.json()["error"]
    as_form = http.post("/api/v2/runs", data={"workflow": "greet"})
    assert as_form.status_code == 415
    assert "application/json" in as_form.json()["error"]
    huge = http.post(
        "/api/v2/runs", json={"workflow": "greet", "arguments": {"name": "x" * 2_000_000}}
    )
    assert huge.status_code == 413
    assert "max_body_bytes" in huge.json()["error"]


def test_a_failed_run_shows_the_error_and_the_traceback(http: Http) -> None:
    run = http.wait_for_run(start(http, "broken"))
    assert run["state"] == "failed"
    assert run["failed_task"] == "divide" and run["failed_dag"] == "main"
    assert "ZeroDivisionError" in run["error"]
    tasks = {t["name"]: t for t in run["dags"][0]["tasks"]}
    assert tasks["prepare"]["state"] == "succeeded"
    assert tasks["divide"]["state"] == "failed"
    assert "division by zero" in tasks["divide"]["message"]
    assert "return 1 / data" in tasks["divide"]["traceback"]


def test_list_runs_filtered_and_paged(http: Http) -> None:
    since = time.time()
    ids = [start(http, "greet", arguments={"name": f"n{i}"}) for i in range(3)]
    failed = start(http, "broken")
    for run_id in [*ids, failed]:
        http.wait_for_run(run_id)
    recent = http.get("/api/v2/runs", params={"since": since}).json()
    assert [r["id"] for r in recent["runs"]] == [failed, *reversed(ids)]
    greet = http.get("/api/v2/runs", params={"since": since, "workflow": "greet"}).json()["runs"]
    assert [r["id"] for r in greet] == list(reversed(ids))
    failures = http.get("/api/v2/runs", params={"since": since, "state": "failed"}).json()["runs"]
    assert [r["id"] for r in failures] == [failed]
    page = http.get("/api/v2/runs", params={"since": since, "limit": 2, "offset": 1}).json()
    assert [r["id"] for r in page["runs"]] == [ids[2], ids[1]]
    assert (page["limit"], page["offset"]) == (2, 1)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"state": "done"}, "must be one of"),
        ({"limit": "0"}, "at least 1"),
        ({"limit": "ten"}, "must be an integer"),
        ({"offset": "-1"}, "at least 0"),
        ({"since": "yesterday"}, "must be a number"),
        ({"since": "nan"}, "finite number"),
    ],
)
def test_bad_list_queries_are_400(http: Http, query: dict[str, str], expected: str) -> None:
    response = http.get("/api/v2/runs", params=query)
    assert response.status_code == 400
    assert expected in response.json()["error"]


def test_a_query_parameter_given_twice_is_400(http: Http) -> None:
    response = http.get("/api/v2/runs?limit=1&limit=2")
    assert response.status_code == 400
    assert "given 2 times" in response.json()["error"]


def test_an_unknown_run_is_404_everywhere(http: Http) -> None:
    for method, path in [
        ("GET", "/api/v2/runs/ffffffffffffffff"),
        ("POST", "/api/v2/runs/ffffffffffffffff/stop"),
        ("GET", "/api/v2/runs/ffffffffffffffff/logs"),
        ("GET", "/api/v2/runs/ffffffffffffffff/logs/stream"),
        ("GET", "/api/v2/runs/ffffffffffffffff/events"),
        ("GET", "/api/v2/runs/ffffffffffffffff/data"),
    ]:
        response = http.request(method, path)
        assert response.status_code == 404, (path, response.text)
        assert "no workflow run with id 'ffffffffffffffff'" in response.json()["error"]


def test_a_run_is_found_by_a_unique_prefix(http: Http) -> None:
    run_id = start(http, "greet", arguments={"name": "Cy"})
    run = http.get(f"/api/v2/runs/{run_id[:12]}").json()
    assert run["id"] == run_id


def test_a_queued_task_shows_the_queue_it_waits_on(http: Http) -> None:
    run_id = start(http, "routed")
    try:
        wait_for_task(http, run_id, "train", state="queued")
        [main] = http.get(f"/api/v2/runs/{run_id}").json()["dags"]
        tasks = {task["name"]: task for task in main["tasks"]}
        assert tasks["train"]["queue"] == "rest-suite-gpu" and tasks["train"]["worker"] is None
        assert tasks["prepare"]["state"] == "succeeded" and tasks["prepare"]["queue"] is None
    finally:
        http.post(f"/api/v2/runs/{run_id}/stop")


def test_stop_a_running_run(http: Http) -> None:
    run_id = start(http, "endless")
    wait_for_task(http, run_id, "wait")
    response = http.post(f"/api/v2/runs/{run_id}/stop")
    assert response.status_code == 200
    assert response.json() == {"id": run_id, "stopped": True}
    run = http.wait_for_run(run_id)
    assert run["state"] == "stopped"
    again = http.post(f"/api/v2/runs/{run_id}/stop")
    assert again.json() == {"id": run_id, "stopped": False}


def test_stop_with_force_terminates_a_task_that_ignores_the_stop(http: Http) -> None:
    run_id = start(http, "deaf")
    wait_for_task(http, run_id, "sleep")
    both = http.post(f"/api/v2/runs/{run_id}/stop", params={"force": "true", "grace": "5"})
    assert both.status_code == 400 and "not both" in both.json()["error"]
    response = http.post(f"/api/v2/runs/{run_id}/stop", params={"force": "true"})
    assert response.json() == {"id": run_id, "stopped": True}
    run = http.wait_for_run(run_id, timeout=5)  # the task would sleep for two minutes
    [main] = run["dags"]
    [task] = main["tasks"]
    assert run["state"] == task["state"] == "stopped"
    assert task["message"].endswith("its process was terminated")


def test_the_server_stops_a_run_whose_code_it_cannot_load(
    http: Http, redis_cluster: Cluster
) -> None:
    # Started from elsewhere (a file the server's folders do not hold, importing a
    # module only the workers' library path has); the server still stops it.
    run_id = api.start_workflow(str(WORKER_ONLY / "needs_library.py"), config=redis_cluster.config)
    wait_for_task(http, run_id, "wait")
    assert http.post(f"/api/v2/runs/{run_id}/stop").json()["stopped"] is True
    assert http.wait_for_run(run_id)["state"] == "stopped"
    assert http.get("/api/v2/workflows/needs_library").status_code == 404


def test_logs_are_paged(http: Http) -> None:
    run_id = start(http, "greet", arguments={"name": "Di", "count": 5})
    http.wait_for_run(run_id)
    everything = http.get(f"/api/v2/runs/{run_id}/logs").json()
    texts = [line.split(": ", 1)[1] for line in everything["lines"]]
    assert texts == [f"hello Di #{n}" for n in range(5)] + ["done"]
    page = http.get(f"/api/v2/runs/{run_id}/logs", params={"offset": 2, "limit": 2}).json()
    assert page["lines"] == everything["lines"][2:4]
    assert (page["offset"], page["next_offset"]) == (2, 4)
    past = http.get(f"/api/v2/runs/{run_id}/logs", params={"offset": 100}).json()
    assert past["lines"] == [] and past["next_offset"] == 100


def test_the_log_is_followed_live_and_resumed(http: Http) -> None:
    run_id = start(http, "steps", arguments={"pause": 0.5})
    messages = http.events(f"/api/v2/runs/{run_id}/logs/stream", until="end")
    lines = [m for m in messages if m["event"] is None]
    assert [m["data"].split(": ", 1)[1] for m in lines][-1] == "third done"
    assert [m["id"] for m in lines] == [str(n) for n in range(len(lines))]
    assert messages[-1] == {"id": None, "event": "end", "data": {"state": "succeeded"}}
    resumed = http.events(
        f"/api/v2/runs/{run_id}/logs/stream", until="end", headers={"Last-Event-ID": "1"}
    )
    assert [m["data"] for m in resumed if m["event"] is None] == [m["data"] for m in lines[2:]]


def test_a_run_s_events_stream_live_and_resume_by_position(http: Http) -> None:
    run_id = start(http, "steps", arguments={"pause": 0.3})
    received: list[dict] = []
    reader = threading.Thread(
        target=lambda: received.extend(http.events(f"/api/v2/runs/{run_id}/events", until="end"))
    )
    reader.start()
    reader.join(60)
    kinds = [m["data"]["kind"] for m in received if m["event"] is None]
    assert kinds[0] == "workflow_started" and kinds[-1] == "workflow_finished"
    assert kinds.count("task_succeeded") == 4
    assert [m["id"] for m in received if m["event"] is None] == [str(n) for n in range(len(kinds))]
    assert received[-1]["event"] == "end"
    resumed = http.events(
        f"/api/v2/runs/{run_id}/events", until="end", headers={"Last-Event-ID": "3"}
    )
    assert [m["id"] for m in resumed if m["event"] is None] == [
        str(n) for n in range(4, len(kinds))
    ]


def test_the_store_is_read_key_by_key(http: Http) -> None:
    run_id = start(http, "greet", arguments={"name": "Eve", "count": 2}, keep_data=True)
    http.wait_for_run(run_id)
    top = http.get(f"/api/v2/runs/{run_id}/data").json()
    assert {"name", "count", "greetings", "scan"} <= set(top["keys"])
    assert (top["run"], top["section"], top["key"], top["value"]) == (run_id, "data", None, None)
    scan = http.get(f"/api/v2/runs/{run_id}/data", params={"key": "scan"}).json()
    assert scan["keys"] == ["energy"] and scan["value"] is None
    nested = http.get(f"/api/v2/runs/{run_id}/data", params={"key": "scan.energy"}).json()
    assert nested == {
        "run": run_id,
        "section": "data",
        "key": "scan.energy",
        "keys": [],
        "value": 12.4,
    }
    meta = http.get(
        f"/api/v2/runs/{run_id}/data",
        params={"section": "meta", "key": "log.main.tasks.greet.status"},
    )
    assert meta.json()["value"] == "succeeded"
    missing = http.get(f"/api/v2/runs/{run_id}/data", params={"key": "scan.motor"})
    assert missing.status_code == 404
    assert "stores nothing at 'scan.motor'" in missing.json()["error"]


def test_the_store_of_a_run_that_kept_no_data_says_how_to_keep_it(http: Http) -> None:
    run_id = start(http, "greet", arguments={"name": "Flo"})
    http.wait_for_run(run_id)
    response = http.get(f"/api/v2/runs/{run_id}/data", params={"key": "greetings"})
    assert response.status_code == 400
    assert "keep-data" in response.json()["error"]


def test_the_read_role_sees_runs_but_cannot_start_or_stop(http: Http) -> None:
    run_id = start(http, "endless")
    reader = Http(http.url, token=READ_TOKEN)
    assert reader.get(f"/api/v2/runs/{run_id}").status_code == 200
    refused = reader.post(f"/api/v2/runs/{run_id}/stop")
    assert refused.status_code == 403
    assert "operate role" in refused.json()["error"]
    assert reader.post("/api/v2/runs", json={"workflow": "greet"}).status_code == 403
    assert http.post(f"/api/v2/runs/{run_id}/stop").json()["stopped"] is True
    http.wait_for_run(run_id)
