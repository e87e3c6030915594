"""Work on a queue no live worker consumes is said, not waited on in silence.

A task routed to a queue no worker consumes, a DAG whose queue none consumes: with
only the default queues served, ``workflow start --wait`` says so once per queue on
stderr (naming the queue, the task or DAG and the fix), ``workflow status`` shows
them queued on their queues, and a worker started on those queues ends the run.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from lightflow import api

from tests.cluster import Cluster

pytestmark = pytest.mark.slow

WORKFLOW = '''
"""A task on the gpu queue; a DAG on the calibration queue."""
from lightflow.models import Dag
from lightflow.tasks import PythonTask

def step(data, store, signal, context):
    data["steps"] = data.get("steps", 0) + 1

main = Dag("main")
main.define({{
    PythonTask("prepare", step): PythonTask("train", step, queue="{gpu}"),
}})
calibrate = Dag("calibrate", queue="{calibration}")
calibrate.define({{PythonTask("measure", step): None}})
'''


def note(run_id: str, what: str, queue: str) -> str:
    return (
        f"Note: run {run_id[:8]} has {what} queued on queue '{queue}' and no live worker "
        f"consumes it; start one with `lightflow worker start -q {queue}` (still waiting)."
    )


def test_wait_names_work_no_worker_takes_and_ends_once_a_worker_does(
    redis_cluster: Cluster, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    gpu, calibration = f"gpu-{suffix}", f"calibration-{suffix}"
    path = tmp_path / "routed.py"
    path.write_text(WORKFLOW.format(gpu=gpu, calibration=calibration))
    command = [sys.executable, "-m", "lightflow.cli", "-c", str(redis_cluster.config_path)]
    follower = subprocess.Popen(
        [*command, "workflow", "start", "--wait", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    notes: list[str] = []
    stderr: list[str] = []

    def read_stderr() -> None:
        assert follower.stderr is not None
        for line in follower.stderr:
            stderr.append(line)
            if line.startswith("Note:"):
                notes.append(line.rstrip("\n"))

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    worker = None
    try:
        assert follower.stdout is not None
        run_id = follower.stdout.readline().strip()
        started = time.monotonic()
        while len(notes) < 2:
            assert time.monotonic() - started < 15, f"no notes in 15 s: {''.join(stderr)}"
            time.sleep(0.1)
        assert sorted(notes) == sorted([
            note(run_id, "task main/train", gpu),
            note(run_id, "DAG calibrate", calibration),
        ]), notes  # fmt: skip

        dags = api.run_status(run_id, config=redis_cluster.config)["dags"]
        assert dags["main"]["tasks"]["train"] == {"state": "queued", "queue": gpu}
        assert dags["main"]["tasks"]["prepare"]["state"] == "succeeded"
        assert (dags["calibrate"]["state"], dags["calibrate"]["queue"]) == ("queued", calibration)
        status = subprocess.run(
            [*command, "workflow", "status", run_id], capture_output=True, text=True, timeout=30
        )
        assert status.returncode == 0, status.stderr
        assert f"DAG calibrate  queued  on queue {calibration}" in status.stdout
        train = next(line for line in status.stdout.splitlines() if "train" in line)
        assert train.split() == ["train", "queued", "on", "queue", gpu], status.stdout

        worker = redis_cluster.worker("gpu", queues=f"{gpu},{calibration}", concurrency=1)
        assert follower.wait(timeout=60) == 0, "".join(stderr)
        reader.join(5)
        assert len(notes) == 2, notes  # once per queue, however long it waited
    finally:
        if follower.poll() is None:
            follower.kill()
            api.stop_workflows([run_id], config=redis_cluster.config)
        if worker is not None:
            worker.stop()
