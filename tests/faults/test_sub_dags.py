"""Tasks that start sub-DAGs and join them, on real workers: re-runs and joins.

* A task re-run after its worker died finds the DAGs its earlier attempt started and
  joins them (the n-th ``start_dag`` call of a task names the same instance in every
  attempt): no copies, every effect once.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lightflow import api

from tests.cluster import Cluster

pytestmark = pytest.mark.slow

WORKFLOWS = Path(__file__).parent / "workflows"


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.05)


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
