"""Run logs on the cluster: lines arrive while a task runs, follow ends with the run."""

from __future__ import annotations

import time

import pytest
import redis as redis_py
from lightflow import api
from lightflow.config import Config
from lightflow.queue import driver, task_log
from lightflow.queue import state as rs

from tests.servers import redis

from .conftest import WORKFLOWS, Cluster
from .test_cli import lightflow

pytestmark = pytest.mark.slow


def start(cluster: Cluster, seconds: float) -> str:
    return api.start_workflow(
        str(WORKFLOWS / "progress.py"), {"seconds": str(seconds)}, config=cluster.config
    )


def test_a_running_tasks_lines_are_followed_before_it_ends(cluster: Cluster) -> None:
    run_id = start(cluster, 3.0)
    received: list[tuple[float, str]] = []
    record = api.follow_logs(
        run_id,
        config=cluster.config,
        on_line=lambda line: received.append((time.time(), line)),
        timeout=60,
    )
    assert record["state"] == "succeeded"
    lines = [line for _when, line in received]
    assert [line.split(": ", 1)[1] for line in lines] == [
        "scan started",
        "scan done",
        "report written",
    ]
    assert "main/scan" in lines[0] and "main/report" in lines[2]
    events: list = []
    api.follow_events(config=cluster.config, run_id=run_id, on_event=events.append, timeout=10)
    scan_end = next(e.time for e in events if e.task == "scan" and e.kind.value == "task_succeeded")
    # "scan started" came while the task still had seconds to sleep, not at its end.
    assert received[0][0] < scan_end - 1.5
    # The same lines, in the same order, for a reader after the run.
    assert api.run_logs(run_id, config=cluster.config) == lines


def test_follow_of_a_finished_run_prints_its_lines_and_returns(cluster: Cluster) -> None:
    record, _ = cluster.run("progress", {"seconds": "0"})
    got: list[str] = []
    final = api.follow_logs(record["id"][:12], config=cluster.config, on_line=got.append)
    assert final["state"] == "succeeded" and len(got) == 3


def test_cli_logs_follow_ends_with_the_run(cluster: Cluster) -> None:
    run_id = start(cluster, 2.0)
    began = time.monotonic()
    result = lightflow(cluster.config_path, "workflow", "logs", "--follow", run_id[:10])
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began >= 1.0  # it waited for the run
    printed = [line.split(": ", 1)[1] for line in result.stdout.splitlines()]
    assert printed == ["scan started", "scan done", "report written"]
    assert api.run_status(run_id, config=cluster.config)["state"] == "succeeded"


def test_one_printed_line_is_one_tagged_line_from_any_thread_of_the_task(
    cluster: Cluster,
) -> None:
    """print() writes in pieces (and Celery logged each piece); helper threads and a
    BashTask's output callback print outside the task's own thread."""
    record, _ = cluster.run("printing")
    assert record["state"] == "succeeded", record
    kept = [line.split(" ", 2)[2] for line in api.run_logs(record["id"], config=cluster.config)]
    assert kept == [
        "main/pieces: a b 3",
        "main/pieces: no newline continued",
        "main/pieces: from a helper thread",
        "main/pieces: unfinished line at the end",
        "main/frames: on_line: frame_00001.cbf",
    ]
    tag = f"[{record['id'][:8]}/main/frames] on_line: frame_00001.cbf"
    cluster.workers[0].wait_for_log(tag, timeout=10)


def test_a_thread_left_running_by_a_task_is_not_the_next_tasks(cluster: Cluster) -> None:
    """Its lines must never land in the log of a later task (of any run)."""
    record, _ = cluster.run("orphan_thread")
    assert record["state"] == "succeeded", record
    kept = api.run_logs(record["id"], config=cluster.config)
    assert any("main/later: later done" in line for line in kept)
    assert not [line for line in kept if "main/later" in line and "left behind" in line]


def test_lines_are_kept_while_the_state_server_is_down_and_written_after() -> None:
    """A failed write keeps its lines, ahead of newer ones: nothing lost, order kept."""
    shipper = task_log.LogShipper()
    with redis() as server:
        port = server.port
        cluster = driver.Cluster(
            Config.from_dict({"signal": {"url": f"redis://{server.address}/0"}})
        )
        shipper.add(cluster, "run1", "line 1")
        shipper.flush()
    shipper.add(cluster, "run1", "line 2")
    shipper.add(cluster, "run2", "other run")
    with pytest.raises(redis_py.ConnectionError):
        shipper.flush()
    shipper.add(cluster, "run1", "line 3")
    with redis(port):
        shipper.flush()
        assert rs.read_log(cluster.redis, "run1")[0] == ["line 2", "line 3"]
        assert rs.read_log(cluster.redis, "run2")[0] == ["other run"]
