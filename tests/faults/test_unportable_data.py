"""Data that cannot go to a worker fails under ``lightflow run`` as on a cluster.

On a cluster a task's output and the data given to ``start_dag`` travel pickled; a
lock or a generator in them cannot. The embedded engine passes data in memory, where
they would work, so it checks them the same way (without copying a large array) and
fails the task with one line naming the value and its type.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from lightflow.models.task_data import MultiTaskData, TaskData
from lightflow.portable import unportable

from tests.cluster import Cluster

from .conftest import Site

WORKFLOW = Path(__file__).parent / "workflows" / "unportable_output.py"
KINDS = "(locks, generators, open files and sockets cannot be pickled)"
CHECKED = "lightflow run checks this so the workflow also runs on a cluster"


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(("what", "kind"), [("lock", "_thread.lock"), ("generator", "generator")])
def test_a_task_output_that_cannot_be_pickled_fails_the_task(
    site: Site, what: str, kind: str
) -> None:
    result = site.lightflow("run", str(WORKFLOW), f"what={what}")
    assert result.returncode == 1, result.stderr
    assert error_line(result.stderr) == (
        "Error: task main/produce failed: the data it returned cannot go to a worker: "
        f"'guard' is a {kind} {KINDS}; {CHECKED}"
    )
    assert "consumed" not in result.stdout and "Traceback" not in result.stderr


def test_data_given_to_start_dag_that_cannot_be_pickled_fails_the_task(site: Site) -> None:
    result = site.lightflow("run", str(WORKFLOW), "what=lock", "start=yes")
    assert result.returncode == 1, result.stderr
    assert error_line(result.stderr) == (
        "Error: task main/produce failed: SignalError: the data given to "
        "start_dag('analysis') cannot go to a worker: 'results[1].guard' is a "
        f"_thread.lock {KINDS}; {CHECKED}"
    )
    assert "analysed" not in result.stdout


@pytest.mark.parametrize("start", ["no", "yes"])
def test_a_100_mb_array_passes(site: Site, start: str) -> None:
    result = site.lightflow("run", str(WORKFLOW), "what=array", f"start={start}")
    assert result.returncode == 0, result.stderr
    assert ("analysed ndarray" if start == "yes" else "consumed ndarray") in result.stdout


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["what=generator"], "the data it returned cannot go to a worker: 'guard' is a generator"),
        (
            ["what=lock", "start=yes"],
            "SignalError: the data given to start_dag('analysis') cannot go to a worker: "
            "'results[1].guard' is a _thread.lock",
        ),
    ],
)
def test_a_worker_says_the_same(redis_cluster: Cluster, arguments: list[str], error: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lightflow.cli", "-c", str(redis_cluster.config_path),
         "workflow", "start", "--wait", str(WORKFLOW), *arguments],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert error_line(result.stderr) == f"Error: task main/produce failed: {error} {KINDS}"


def test_checking_a_100_mb_array_copies_nothing() -> None:
    """Its buffer is handed to the pickler out of band and dropped: no 100 MB copy."""
    data = MultiTaskData(dataset=TaskData({"frame": np.ones(100 * 1024 * 1024 // 8)}))
    started = time.perf_counter()
    assert unportable(data) is None
    assert time.perf_counter() - started < 0.02  # copying 100 MB takes 0.05 to 0.3 s


def test_the_culprit_is_found_however_deep() -> None:
    class Holder:
        def __init__(self) -> None:
            self.guard = threading.Lock()

    data = MultiTaskData(dataset=TaskData({"runs": [{"ok": 1}, (2, Holder())]}))
    assert unportable(data) == "'runs[1][1].guard' is a _thread.lock"
    assert unportable(MultiTaskData(dataset=TaskData({"f": lambda x: x}))) is None
