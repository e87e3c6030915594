"""Workers and the state server: a worker that cannot record a job must not lose it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lightflow import api

from tests.servers import free_port, redis

from .conftest import WORKFLOWS, Cluster, Worker
from .test_cli import lightflow

pytestmark = pytest.mark.slow


def config_with_state_server(cluster: Cluster, folder: Path, url: str) -> Path:
    """The cluster's config file with another Redis state server (``signal.url``)."""
    values = yaml.safe_load(cluster.config_path.read_text())
    values["signal"]["url"] = url
    path = folder / "lightflow.cfg"
    path.write_text(yaml.safe_dump(values))
    return path


def test_a_worker_that_cannot_reach_the_state_server_refuses_to_start(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    config = config_with_state_server(cluster, tmp_path, url)
    result = subprocess.run(
        [sys.executable, "-m", "lightflow.cli", "-c", str(config), "worker", "start"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot reach the Redis state server at {url}")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_job_a_worker_cannot_record_goes_back_to_its_queue(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The state server goes away under a running worker: its jobs wait, none is lost."""
    with redis() as doomed:  # reachable while the worker starts, then gone
        config = config_with_state_server(cluster, tmp_path, f"redis://{doomed.address}/0")
        cut_off = Worker(config, "cut-off", queues="outage").start()
    try:
        run_id = api.start_workflow(
            str(WORKFLOWS / "tiny.py"), {"n": "5"}, config=cluster.config, queue="outage"
        )
        cut_off.wait_for_log("the job goes back to its queue")
        cut_off.wait_for_log("reject requeue=True")  # Celery's line for it, no traceback
        assert "Traceback" not in cut_off.log()
        assert api.run_status(run_id, config=cluster.config)["state"] == "queued"
    finally:
        cut_off.stop()
    cluster.worker("outage", queues="outage")
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda _event: None, timeout=60
    )
    assert record is not None and record["state"] == "succeeded"


def test_a_task_interrupted_by_a_cold_shutdown_is_handed_back(cluster: Cluster) -> None:
    """SIGQUIT (Celery's cold shutdown) ends the task's process: it is not the task's
    failure, so the task is queued again at once and runs on the next worker."""
    doomed = cluster.worker("cold", queues="coldq", concurrency=1)
    run_id = api.start_workflow(
        str(WORKFLOWS / "cold_shutdown.py"), {}, config=cluster.config, keep_data=True
    )
    doomed.wait_for_log("exposing")
    os.kill(doomed.pid, signal.SIGQUIT)
    doomed.process.wait(30)
    assert "worker shutting down: task main/slow queued again" in doomed.log()
    assert api.run_status(run_id, config=cluster.config)["state"] == "running"
    cluster.worker("warm", queues="coldq", concurrency=1)
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda _event: None, timeout=60
    )
    assert record is not None and record["state"] == "succeeded", record
    document = cluster.store().get(run_id)
    assert len(document.get("attempts")) == 2  # ran again after the shutdown
    cluster.store().remove(run_id)


def test_a_busy_worker_told_to_stop_is_listed_as_stopping_until_it_exits(
    cluster: Cluster,
) -> None:
    busy = cluster.worker("busy", queues="busyq", concurrency=1)
    run_id = api.start_workflow(str(WORKFLOWS / "busy.py"), {}, config=cluster.config)
    busy.wait_for_log("busy now")
    stopped = lightflow(cluster.config_path, "worker", "stop", busy.node)
    assert stopped.returncode == 0 and busy.node in stopped.stdout, stopped.stderr
    listing = lightflow(cluster.config_path, "worker", "status").stdout.splitlines()
    row = next(line for line in listing if line.startswith(busy.node))
    assert re.fullmatch(rf"{re.escape(busy.node)}\s+{busy.pid}\s+busyq\s+1\s+\?\s+stopping", row)
    assert busy.process is not None
    busy.process.wait(30)
    assert busy.node not in lightflow(cluster.config_path, "worker", "status").stdout
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda _event: None, timeout=30
    )
    assert record is not None and record["state"] == "succeeded"  # the job was finished
