"""The public API on a real cluster: filtered and paged run lists, run details,
resumable event streams, waiting for a result, workers (Redis broker only: the API
reads the same state server whatever the broker)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from lightflow import api
from lightflow.config import Config
from lightflow.exceptions import (
    FollowTimeout,
    NoBrokerError,
    NotFoundError,
    ParameterError,
    RunNotFoundError,
)

from tests.cluster import WORKFLOWS, Cluster

pytestmark = pytest.mark.slow


def wait(cluster: Cluster, run_id: str) -> dict[str, Any]:
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda e: None, timeout=60
    )
    assert record is not None
    return record


@pytest.fixture(scope="module")
def runs(redis_cluster: Cluster) -> dict[str, str]:
    """Three finished runs: two of tiny, one of failing (oldest first)."""
    started, config = time.time(), redis_cluster.config
    ids = {
        "tiny1": api.start_workflow(str(WORKFLOWS / "tiny.py"), {"n": "1"}, config=config),
        "failing": api.start_workflow(str(WORKFLOWS / "failing.py"), {}, config=config),
        "tiny2": api.start_workflow(str(WORKFLOWS / "tiny.py"), {"n": "2"}, config=config),
    }
    for run_id in ids.values():
        wait(redis_cluster, run_id)
    ids["since"] = str(started)
    return ids


def test_list_runs_filters_by_state_workflow_and_time(
    redis_cluster: Cluster, runs: dict[str, str]
) -> None:
    config, since = redis_cluster.config, float(runs["since"])
    mine = {runs["tiny1"], runs["failing"], runs["tiny2"]}
    recent = api.list_runs(config=config, since=since)
    assert mine <= {r["id"] for r in recent}
    assert all(r["created"] >= since for r in recent)
    failed = api.list_runs(config=config, state="failed", since=since)
    assert runs["failing"] in {r["id"] for r in failed}
    assert all(r["state"] == "failed" for r in failed)
    tiny = [
        r for r in api.list_runs(config=config, workflow="tiny", since=since) if r["id"] in mine
    ]
    assert [r["id"] for r in tiny] == [runs["tiny2"], runs["tiny1"]]  # newest first
    both = api.list_runs(config=config, state=["failed", "succeeded"], since=since)
    assert mine <= {r["id"] for r in both}


def test_list_runs_pages_through_the_same_order(
    redis_cluster: Cluster, runs: dict[str, str]
) -> None:
    config, since = redis_cluster.config, float(runs["since"])
    everything = [r["id"] for r in api.list_runs(config=config, since=since)]
    pages = [
        [r["id"] for r in api.list_runs(config=config, since=since, limit=2, offset=offset)]
        for offset in range(0, len(everything), 2)
    ]
    assert [run_id for page in pages for run_id in page] == everything
    assert all(len(page) <= 2 for page in pages)
    assert api.list_runs(config=config, since=since, offset=len(everything)) == []


def test_list_runs_refuses_an_unknown_state(redis_cluster: Cluster) -> None:
    with pytest.raises(ParameterError, match=r"unknown run state 'done'.*succeeded"):
        api.list_runs(config=redis_cluster.config, state="done")


def test_run_status_gives_each_task_its_times_worker_and_error(
    redis_cluster: Cluster, runs: dict[str, str]
) -> None:
    status = api.run_status(runs["failing"], config=redis_cluster.config)
    assert status["state"] == "failed" and status["failed_task"] == "broken"
    dag = status["dags"]["main"]
    assert dag["state"] == "failed" and dag["started"] <= dag["ended"]
    ok, broken = dag["tasks"]["ok"], dag["tasks"]["broken"]
    assert ok["state"] == "succeeded" and ok["started"] <= ok["ended"]
    assert ok["worker"] and ok["duration"] >= 0
    assert broken["state"] == "failed"
    assert broken["message"] == "ValueError: calibration file missing for value 1"
    assert "raise ValueError" in broken["traceback"]
    with pytest.raises(RunNotFoundError, match="no workflow run with id 'zzzz'"):
        api.run_status("zzzz", config=redis_cluster.config)


def test_events_of_a_run_resume_after_the_last_id_seen(
    redis_cluster: Cluster, runs: dict[str, str]
) -> None:
    config = redis_cluster.config
    every: list[Any] = []
    api.follow_events(config=config, run_id=runs["tiny1"], on_event=every.append)
    assert [event.id for event in every] == [str(i) for i in range(len(every))]
    assert every[-1].kind.value == "workflow_finished"
    rest: list[Any] = []
    api.follow_events(config=config, run_id=runs["tiny1"], on_event=rest.append, after="1")
    assert [e.to_dict() for e in rest] == [e.to_dict() for e in every[2:]]


def test_the_stream_of_all_runs_resumes_after_an_entry_id(redis_cluster: Cluster) -> None:
    config = redis_cluster.config
    first = api.start_workflow(str(WORKFLOWS / "tiny.py"), {}, config=config)
    wait(redis_cluster, first)
    seen: list[Any] = []
    second = api.start_workflow(str(WORKFLOWS / "tiny.py"), {}, config=config)
    api.follow_events(config=config, on_event=seen.append, timeout=0.5, after="0-0")
    mark = next(
        e.id for e in seen if e.workflow_id == first and e.kind.value == "workflow_finished"
    )
    wait(redis_cluster, second)
    later: list[Any] = []
    api.follow_events(config=config, on_event=later.append, timeout=0.5, after=mark)
    assert later and all(e.id > mark for e in later)  # stream ids order in time
    assert first not in {e.workflow_id for e in later}
    kinds = [e.kind.value for e in later if e.workflow_id == second]
    assert kinds[-1] == "workflow_finished"


def test_wait_for_run_returns_the_result_with_its_tasks(redis_cluster: Cluster) -> None:
    config = redis_cluster.config
    run_id = api.start_workflow(str(WORKFLOWS / "failing.py"), {}, config=config)
    events: list[Any] = []
    result = api.wait_for_run(run_id, config=config, on_event=events.append, timeout=60)
    assert result.workflow_id == run_id and result.outcome == "failed"
    assert (result.failed_dag, result.failed_task) == ("main", "broken")
    assert result.error == "ValueError: calibration file missing for value 1"
    assert "calibration file missing" in (result.traceback or "")
    assert {(t.task, t.state) for t in result.tasks} == {("ok", "succeeded"), ("broken", "failed")}
    assert events[-1].kind.value == "workflow_finished" and result.duration > 0


def test_workers_are_listed_with_their_queues(redis_cluster: Cluster) -> None:
    workers = api.list_workers(config=redis_cluster.config)
    main = next(w for w in workers if w["name"].startswith("main-"))
    assert set(main["queues"]) == {"workflow", "dag", "task"}
    assert main["state"] == "running" and main["concurrency"] == 2
    assert api.stop_workers(["nobody@nowhere"], config=redis_cluster.config) == []


def test_a_worker_lists_the_task_it_runs_with_its_run_dag_and_attempt(
    redis_cluster: Cluster,
) -> None:
    """A task job pulls tasks: the worker shows each task running, not the job."""
    config = redis_cluster.config
    run_id = api.start_workflow(str(WORKFLOWS / "progress.py"), {"seconds": "3"}, config=config)
    deadline = time.monotonic() + 30
    jobs: list[dict] = []
    while not jobs and time.monotonic() < deadline:
        for worker in api.list_workers(config=config):
            jobs += [job for job in worker["running"] or [] if job["job"] == "lightflow.task"]
    assert jobs, "no task was listed as running"
    run, dag, task, attempt = jobs[0]["args"]
    assert (run, dag) == (run_id, "main") and task and attempt
    assert wait(redis_cluster, run_id)["state"] == "succeeded"


def test_the_distributed_functions_refuse_without_a_broker() -> None:
    config = Config.from_dict({})
    for call in (
        lambda: api.start_workflow(str(WORKFLOWS / "tiny.py"), {}, config=config),
        lambda: api.list_runs(config=config),
        lambda: api.list_workers(config=config),
        lambda: api.stop_workflows(config=config),
    ):
        with pytest.raises(NoBrokerError, match=r"no broker configured: set celery\.broker_url"):
            call()


def test_run_data_browses_a_kept_store_read_only(redis_cluster: Cluster) -> None:
    config = redis_cluster.config
    run_id = api.start_workflow(
        str(WORKFLOWS / "stores_values.py"), {}, config=config, keep_data=True
    )
    wait(redis_cluster, run_id)
    top = api.run_data(run_id[:10], config=config)
    assert top == {"run": run_id, "section": "data", "key": None,
                   "keys": ["scan", "raw"], "value": None}  # fmt: skip
    scan = api.run_data(run_id, config=config, key="scan")
    assert scan["keys"] == ["id", "sample", "image"] and scan["value"] is None
    assert api.run_data(run_id, config=config, key="scan.id")["value"] == 42
    assert api.run_data(run_id, config=config, key="scan.sample")["value"] == "lysozyme"
    image = api.run_data(run_id, config=config, key="scan.image")["value"]
    assert image == {"type": "ndarray", "repr": "array([[0, 1, 2],\n       [3, 4, 5]])"}
    assert api.run_data(run_id, config=config, key="raw")["value"]["type"] == "bytes"
    meta = api.run_data(run_id, config=config, section="meta")
    assert "log" in meta["keys"]
    with pytest.raises(NotFoundError, match=r"stores nothing at 'scan\.nope'"):
        api.run_data(run_id, config=config, key="scan.nope")
    with pytest.raises(ParameterError, match="unknown store section 'logs'"):
        api.run_data(run_id, config=config, section="logs")


def test_follow_logs_resumes_after_a_line_and_ends_when_told(redis_cluster: Cluster) -> None:
    config = redis_cluster.config
    finished = api.start_workflow(str(WORKFLOWS / "progress.py"), {"seconds": "0"}, config=config)
    wait(redis_cluster, finished)
    every: list[str] = []
    api.follow_logs(finished, config=config, on_line=every.append)
    assert len(every) == 3
    rest: list[str] = []
    record = api.follow_logs(finished, config=config, on_line=rest.append, after=0)
    assert rest == every[1:] and record is not None and record["state"] == "succeeded"
    assert api.run_logs(finished, config=config, offset=1) == every[1:]
    running = api.start_workflow(str(WORKFLOWS / "progress.py"), {"seconds": "4"}, config=config)
    asked = time.monotonic()
    got: list[str] = []

    def gone() -> bool:  # a client that went away after 1.5 s
        return time.monotonic() - asked > 1.5

    assert api.follow_logs(running, config=config, on_line=got.append, until=gone) is None
    assert time.monotonic() - asked < 5
    with pytest.raises(FollowTimeout, match=r"did not finish within 0\.5 s; it goes on"):
        api.follow_events(config=config, run_id=running, on_event=lambda e: None, timeout=0.5)
    assert wait(redis_cluster, running)["state"] == "succeeded"


def test_api_calls_share_one_handle_per_configuration(redis_cluster: Cluster) -> None:
    import threading

    config = redis_cluster.config
    run_id = api.start_workflow(
        str(WORKFLOWS / "stores_values.py"), {}, config=config, keep_data=True
    )
    wait(redis_cluster, run_id)
    api.run_data(run_id, config=config)
    before = threading.active_count()
    for _ in range(10):
        api.run_data(run_id, config=config, key="scan.id")
    # A handle per call opened a new MongoDB client, with its monitor threads, each time.
    assert threading.active_count() <= before + 1
