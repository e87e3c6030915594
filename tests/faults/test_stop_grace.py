"""A stop terminates the tasks that ignore it once its grace period is over.

A real worker (prefork pool, two processes) on a queue of its own, on the session's
Redis cluster, runs a PythonTask that sleeps through a stop and a BashTask beside it.
Without a grace period the run stayed ``running`` until the sleep ended (a minute).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightflow import api
from lightflow.exceptions import FollowTimeout

from tests.cluster import Cluster, Worker
from tests.faults.conftest import Site, one_error_line
from tests.tasks.test_bash_task import alive, gone_within

pytestmark = pytest.mark.slow

WORKFLOW = Path(__file__).parent / "workflows" / "outlives_stop.py"
TERMINATED = "its process was terminated"


@pytest.fixture(scope="module")
def worker(redis_cluster: Cluster) -> Iterator[Worker]:
    worker = redis_cluster.worker("outlives", queues="outlives_stop", concurrency=2)
    yield worker
    worker.stop()


def start(cluster: Cluster, folder: Path, **arguments: Any) -> tuple[str, int, int]:
    """Start the two lanes; their run id, the PythonTask's process and the command's shell."""
    folder.mkdir()
    values = {"pids": str(folder), **{key: str(value) for key, value in arguments.items()}}
    run_id = api.start_workflow(str(WORKFLOW), values, config=cluster.config)
    deadline = time.monotonic() + 30
    while not ((folder / "python").exists() and (folder / "bash").exists()):
        assert time.monotonic() < deadline, "the lanes did not start"
        time.sleep(0.05)
    return run_id, int((folder / "python").read_text()), int((folder / "bash").read_text())


def follow(cluster: Cluster, run_id: str, since: float) -> tuple[dict[str, Any], float]:
    """Follow the stopped run to its end: its tasks (from its status), and the seconds
    from ``since`` (a ``time.monotonic()``) to the end."""
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda _event: None, timeout=15
    )
    took = time.monotonic() - since
    assert record is not None and record["state"] == "stopped", record
    return api.run_status(run_id, config=cluster.config)["dags"]["main"]["tasks"], took


def still_serves(cluster: Cluster, worker: Worker, folder: Path) -> None:
    """The worker lives and runs a new run on the same queue to its end."""
    assert worker.process is not None and worker.process.poll() is None
    folder.mkdir()
    run_id = api.start_workflow(
        str(WORKFLOW), {"pids": str(folder), "seconds": "0"}, config=cluster.config
    )
    try:
        record = api.follow_events(
            config=cluster.config, run_id=run_id, on_event=lambda _event: None, timeout=30
        )
    except FollowTimeout:
        record = None
    assert record is not None and record["state"] == "succeeded", worker.log()[-4000:]


def test_a_task_that_ignores_a_stop_is_terminated_after_the_grace_period(
    redis_cluster: Cluster, worker: Worker, tmp_path: Path, site: Site
) -> None:
    run_id, python, shell = start(redis_cluster, tmp_path / "run")
    began = time.monotonic()
    config = str(redis_cluster.config_path)
    stopped = site.lightflow("-c", config, "workflow", "stop", run_id, "--grace", "2", "--wait")
    returned = time.monotonic() - began
    assert stopped.returncode == 0 and stopped.stdout.split() == [run_id], stopped.stderr
    assert api.run_status(run_id, config=redis_cluster.config)["state"] == "stopped"
    assert 1.0 < returned < 5.0, f"--wait returned {returned:.1f} s after the stop"
    tasks, _took = follow(redis_cluster, run_id, began)
    assert tasks["python"]["state"] == "stopped"
    assert tasks["python"]["message"] == (
        "still running 2 s after the run was stopped; its process was terminated"
    )
    assert tasks["bash"]["state"] == "stopped"  # its command ended at once, as asked
    assert TERMINATED not in (tasks["bash"].get("message") or "")
    assert gone_within([python, shell], 5.0), "the task's process or command lives on"
    still_serves(redis_cluster, worker, tmp_path / "after")


def test_force_terminates_at_once(redis_cluster: Cluster, worker: Worker, tmp_path: Path) -> None:
    run_id, python, shell = start(redis_cluster, tmp_path / "run")
    began = time.monotonic()
    assert api.stop_workflows([run_id], config=redis_cluster.config, force=True) == [run_id]
    tasks, took = follow(redis_cluster, run_id, began)
    assert took < 2.0, f"recorded stopped {took:.1f} s after the stop"
    assert tasks["python"]["message"] == (
        "still running when the run was stopped without a grace period; its process was terminated"
    )
    assert gone_within([python, shell], 3.0), "the task's process or command lives on"
    still_serves(redis_cluster, worker, tmp_path / "after")


def test_signal_stop_grace_sets_the_grace_period(
    redis_cluster: Cluster, worker: Worker, tmp_path: Path
) -> None:
    config = redis_cluster.write_config(
        tmp_path / "grace.cfg", signal={**redis_cluster.settings()["signal"], "stop_grace": 1}
    )
    run_id, python, _shell = start(redis_cluster, tmp_path / "run")
    began = time.monotonic()
    api.stop_workflows([run_id], config=config)
    tasks, took = follow(redis_cluster, run_id, began)
    assert 0.5 < took < 4.0, f"recorded stopped {took:.1f} s after the stop"
    assert tasks["python"]["message"] == (
        "still running 1 s after the run was stopped; its process was terminated"
    )
    assert gone_within([python], 3.0)


def test_a_task_that_honours_the_stop_is_not_terminated(
    redis_cluster: Cluster, worker: Worker, tmp_path: Path
) -> None:
    run_id, python, shell = start(redis_cluster, tmp_path / "run", honour=1)
    began = time.monotonic()
    api.stop_workflows([run_id], config=redis_cluster.config)  # the default grace: 10 s
    tasks, took = follow(redis_cluster, run_id, began)
    assert took < 3.0, f"recorded stopped {took:.1f} s after the stop"
    assert tasks["python"]["state"] == "succeeded"  # it returned once it saw the stop
    assert gone_within([shell], 3.0)
    assert alive(python), "the process of a task that ended by itself was terminated"


def test_a_task_that_outlives_its_sigterm_is_killed(
    redis_cluster: Cluster, worker: Worker, tmp_path: Path
) -> None:
    run_id, python, _shell = start(redis_cluster, tmp_path / "run", stubborn=1)
    began = time.monotonic()
    api.stop_workflows([run_id], config=redis_cluster.config, force=True)
    assert gone_within([python], 5.0), "the process outlived its SIGKILL"  # 2 s after
    # Its task never reached its hand-back: the sweeper finds it lost (a dead process,
    # the cluster's heartbeat timeout of 6 s) and cancels it in its halted DAG.
    tasks, took = follow(redis_cluster, run_id, began)
    assert took < 15.0, f"recorded stopped {took:.1f} s after the stop"
    assert tasks["python"]["state"] == "cancelled"
    still_serves(redis_cluster, worker, tmp_path / "after")


def test_a_bad_stop_grace_is_one_line(redis_cluster: Cluster, site: Site) -> None:
    signal = {**redis_cluster.settings()["signal"], "stop_grace": "soon"}
    path = site.write_config("bad.cfg", **{**redis_cluster.settings(), "signal": signal})
    result = site.lightflow("-c", str(path), "workflow", "stop", "-y")
    assert one_error_line(result).startswith(
        "Error: signal.stop_grace must be a number of seconds, 0 or more (default 10), got"
    )
