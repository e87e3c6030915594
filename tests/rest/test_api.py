"""Workflows, workers, triggers, health, the OpenAPI document, and tokens on every endpoint."""

from __future__ import annotations

import pytest

from tests.cluster import Cluster
from tests.rest.conftest import READ_TOKEN, Http

_EXAMPLE_VALUES = {"run_id": "0123456789abcdef", "name": "greet", "target": "greet"}


def operations(http: Http) -> list[tuple[str, str, dict]]:
    document = http.get("/api/v2/openapi.json").json()
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            concrete = path
            for name, value in _EXAMPLE_VALUES.items():
                concrete = concrete.replace("{" + name + "}", value)
            found.append((method.upper(), concrete, operation))
    return found


def test_health_needs_no_token(http: Http) -> None:
    response = Http(http.url, token=None).get("/api/v2/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["state_server"] == "ok"


def test_every_other_endpoint_needs_a_token_and_operate_for_changes(http: Http) -> None:
    anonymous = Http(http.url, token=None)
    wrong = Http(http.url, token="not-a-token-the-server-knows-at-all")
    reader = Http(http.url, token=READ_TOKEN)
    checked = 0
    for method, path, operation in operations(http):
        if path == "/api/v2/health":
            assert operation["security"] == []
            continue
        for client in (anonymous, wrong):
            response = client.request(method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert "error" in response.json()
        if method in ("POST", "DELETE"):
            response = reader.request(method, path, json={})
            assert response.status_code == 403, (method, path, response.text)
            assert "operate" in operation["description"]
        checked += 1
    assert checked >= 20


def test_openapi_document_describes_the_api(http: Http) -> None:
    document = http.get("/api/v2/openapi.json").json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in ("/api/v2/runs", "/api/v2/runs/{run_id}", "/api/v2/events", "/workflow/{name}"):
        assert path in paths
    start = paths["/api/v2/runs"]["post"]
    body = start["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["workflow"] and body["additionalProperties"] is False
    assert {"201", "400", "401", "403", "404", "413", "415", "422", "503"} <= set(
        start["responses"]
    )
    legacy = paths["/workflow/{name}"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in legacy
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_workflows_with_parameters_and_graph(http: Http) -> None:
    workflows = {w["name"]: w for w in http.get("/api/v2/workflows").json()["workflows"]}
    greet = workflows["greet"]
    assert greet["summary"].startswith("Greet someone")
    assert greet["parameters"][0] == {
        "name": "name",
        "type": "str",
        "default": None,
        "required": True,
        "help": "Who is greeted",
    }
    assert http.get("/api/v2/workflows/greet").json() == greet
    graph = http.get("/api/v2/workflows/steps/graph").json()
    [main] = graph["dags"]
    assert [t["name"] for t in main["tasks"]] == ["first", "second", "side", "third"]
    edges = {(e["from"], e["to"]) for e in main["edges"]}
    assert edges == {("first", "second"), ("first", "side"), ("second", "third")}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v2/workflows/unknown_flow", 404),
        ("/api/v2/workflows/unknown_flow/graph", 404),
        ("/api/v2/workflows/a..b", 400),
        ("/api/v2/workflows/~root", 400),
        ("/api/v2/workflows/greet.py/graph", 400),
    ],
)
def test_workflow_errors(http: Http, path: str, status: int) -> None:
    response = http.get(path)
    assert response.status_code == status, response.text
    assert "error" in response.json()


def test_workers_and_stopping_one(http: Http, redis_cluster: Cluster) -> None:
    worker = redis_cluster.worker("rest-v2", queues="rest-v2-only", concurrency=1)
    listed = {w["name"]: w for w in http.get("/api/v2/workers").json()["workers"]}
    assert listed[worker.node]["queues"] == ["rest-v2-only"]
    assert listed[worker.node]["state"] == "running" and listed[worker.node]["running"] == []
    missing = http.post("/api/v2/workers/nobody@nowhere/stop")
    assert missing.status_code == 404
    stopped = http.post(f"/api/v2/workers/{worker.node}/stop")
    assert stopped.json() == {"name": worker.node, "stopped": True}
    worker.process.wait(60)


def test_triggers_and_their_kinds(http: Http, redis_cluster: Cluster) -> None:
    # A trigger publishing its state where cluster triggers do; the cluster is shared
    # with other suites, whose triggers may be listed too.
    import time
    import uuid

    from lightflow.queue.driver import state_url
    from lightflow.queue.state import connect
    from lightflow.triggers.status import RedisStatusBoard

    name = f"rest-{uuid.uuid4().hex[:8]}"
    state = {"name": name, "kind": "folder", "workflow": "compress", "state": "running",
             "updated": time.time(), "runs": 2, "last_run": "abc"}  # fmt: skip
    RedisStatusBoard(connect(state_url(redis_cluster.config))).publish(name, state)
    triggers = http.get("/api/v2/triggers").json()
    listed = {trigger["name"]: trigger for trigger in triggers["triggers"]}
    assert listed[name]["state"] == "running" and listed[name]["runs"] == 2
    assert listed[name]["kind"] == "folder" and listed[name]["last_run"] == "abc"
    assert {"folder", "pv"} <= set(triggers["kinds"])


def test_unknown_paths_and_methods_are_json(http: Http) -> None:
    missing = http.get("/api/v2/nothing")
    assert missing.status_code == 404 and "openapi.json" in missing.json()["error"]
    wrong = http.request("PUT", "/api/v2/runs")
    assert wrong.status_code == 405 and "allowed: " in wrong.json()["error"]
