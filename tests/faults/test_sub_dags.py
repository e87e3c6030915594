"""Tasks that start sub-DAGs and join them, on real workers: joins and re-runs.

* A task waiting in ``join_dags`` does the work of the DAGs it waits for, on the
  queues its worker consumes: a join finishes on a worker of one process (nested joins
  too), leaves work routed elsewhere to the workers of its queue, and a warm shutdown
  of such a worker ends.
* A task re-run after its worker died finds the DAGs its earlier attempt started and
  joins them (the n-th ``start_dag`` call of a task names the same instance in every
  attempt): no copies, every effect once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from lightflow import api

from tests.cluster import Cluster

pytestmark = pytest.mark.slow

WORKFLOWS = Path(__file__).parent / "workflows"
NESTED = str(WORKFLOWS / "nested_joins.py")


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.05)


def task_pids(status: dict[str, Any], prefix: str) -> set[int]:
    """The processes that ran the tasks of the DAGs whose names start with ``prefix``."""
    return {
        int(task["worker"].rpartition("/")[2])
        for name, dag in status["dags"].items()
        if name.startswith(prefix)
        for task in dag["tasks"].values()
    }


def parent(pid: int) -> int:
    """The parent of a live process (a pool process's is its worker's main process)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def test_a_join_finishes_on_a_worker_of_one_process(redis_cluster: Cluster) -> None:
    one = redis_cluster.worker("join-one", queues="join_one", concurrency=1)
    try:
        started = time.monotonic()
        record, _ = redis_cluster.run(NESTED, {"where": "here"}, timeout=30)
        took = time.monotonic() - started
        status = api.run_status(record["id"], config=redis_cluster.config)
    finally:
        one.stop()
    assert record["state"] == "succeeded", record  # the task checked every result
    assert sorted(status["dags"]) == ["leaf_here", "main", "sub_here", "sub_here:2", "sub_here:3"]
    assert len(task_pids(status, "")) == 1  # all in the one process, the nested join too
    logs = api.run_logs(record["id"], config=redis_cluster.config)
    # The lines of a task that waited are its own, before and after the tasks it ran.
    assert any(line.endswith("sub_here:2/middle: joined leaf_here") for line in logs), logs
    assert any(
        line.endswith("main/fan_out: joined sub_here sub_here:2 sub_here:3") for line in logs
    )
    assert took < 15, took


def test_a_join_leaves_work_on_other_queues_to_their_workers(redis_cluster: Cluster) -> None:
    one = redis_cluster.worker("join-one", queues="join_one", concurrency=1)
    other = redis_cluster.worker("join-other", queues="join_other", concurrency=1)
    try:
        record, _ = redis_cluster.run(NESTED, {"where": "elsewhere"}, timeout=30)
        status = api.run_status(record["id"], config=redis_cluster.config)
        elsewhere = {parent(pid) for pid in task_pids(status, "sub_") | task_pids(status, "leaf_")}
        here = {parent(pid) for pid in task_pids(status, "main")}
    finally:
        one.stop()
        other.stop()
    assert record["state"] == "succeeded", record
    assert len(status["dags"]) == 5
    assert elsewhere == {other.pid} and here == {one.pid}


def start_joining(cluster: Cluster, pause: int) -> str:
    """Start the nested joins here, each sub-DAG task pausing ``pause`` s; return the run id
    once the task waits in its join (its sub-DAGs started)."""
    arguments = {"where": "here", "pause": str(pause)}
    run_id = api.start_workflow(NESTED, arguments, config=cluster.config)
    wait_for(
        lambda: "sub_here" in api.run_status(run_id, config=cluster.config)["dags"],
        "the task's sub-DAGs started",
    )
    return run_id


def test_a_worker_whose_task_waits_in_a_join_stops_warm(redis_cluster: Cluster) -> None:
    one = redis_cluster.worker("join-stop", queues="join_one", concurrency=1)
    try:
        run_id = start_joining(redis_cluster, pause=1)
        started = time.monotonic()
        assert api.stop_workers([one.node], config=redis_cluster.config) == [one.node]
        joining = api.run_status(run_id, config=redis_cluster.config)["state"] == "running"
        wait_for(lambda: one.process.poll() is not None, "the worker stopped", timeout=20)
        took = time.monotonic() - started
        result = api.wait_for_run(run_id, config=redis_cluster.config, timeout=10)
    finally:
        one.stop()
    assert result.outcome == "succeeded", result  # the join's work was done first
    assert joining  # the worker was told to stop while its task waited in the join
    assert one.process.returncode == 0 and took < 20, took


def test_a_stop_ends_a_join_whose_process_runs_a_sub_dag(redis_cluster: Cluster) -> None:
    one = redis_cluster.worker("join-halt", queues="join_one", concurrency=1)
    try:
        run_id = start_joining(redis_cluster, pause=60)
        api.stop_workflows([run_id], config=redis_cluster.config)
        result = api.wait_for_run(run_id, config=redis_cluster.config, timeout=10)
    finally:
        one.stop()
    assert result.outcome == "stopped", result


def test_a_rerun_task_joins_the_sub_dags_of_its_first_attempt(
    redis_cluster: Cluster, tmp_path: Path
) -> None:
    record, marker = tmp_path / "record", tmp_path / "marker"
    victim = redis_cluster.worker("rerun-victim", queues="rerun_victim", concurrency=1)
    subs = redis_cluster.worker("rerun-sub", queues="rerun_sub", concurrency=2)
    heir = None
    try:
        run_id = api.start_workflow(
            str(WORKFLOWS / "rerun_sub_dags.py"),
            {"record": str(record), "marker": str(marker)},
            config=redis_cluster.config,
        )
        wait_for(marker.exists, "the task started its sub-DAGs")
        victim.kill()  # while the task waits in its join
        heir = redis_cluster.worker("rerun-heir", queues="rerun_victim", concurrency=1)
        result = api.wait_for_run(run_id, config=redis_cluster.config, timeout=60)
        status = api.run_status(run_id, config=redis_cluster.config)
    finally:
        for worker in (victim, subs, heir):
            if worker is not None:
                worker.stop()
    assert result.outcome == "succeeded", result
    first, second = marker.read_text().splitlines()  # the task ran twice...
    assert first == second  # ...and its re-run got back the same DAGs
    names = first.split()
    assert sorted(status["dags"]) == sorted(["main", *names])
    assert len(names) == 5 and all(status["dags"][name]["state"] == "succeeded" for name in names)
    lines = record.read_text().splitlines()
    assert sorted(lines) == sorted(f"{name} {n}" for n, name in enumerate(names))
