"""A worker killed while a BashTask's command runs takes the command with it.

A real worker and its prefork pool on the session's Redis cluster: the whole worker
SIGKILLed, or only the pool process that runs the task. Without a guard the command
runs on, reparented to PID 1, and the re-run of the task starts a second copy.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from lightflow import api

from tests.cluster import Cluster
from tests.tasks.test_bash_task import alive, gone_within

pytestmark = pytest.mark.slow

WORKFLOW = Path(__file__).parent / "workflows" / "long_command.py"


def start_command(cluster: Cluster, tmp_path: Path) -> tuple[str, list[int]]:
    """Start the long command on a worker of its own; its run id and the pids it wrote."""
    pids = tmp_path / "pids"
    run_id = api.start_workflow(str(WORKFLOW), {"pids": str(pids)}, config=cluster.config)
    deadline = time.monotonic() + 60
    while not pids.exists():
        assert time.monotonic() < deadline, "the command did not start"
        time.sleep(0.1)
    worker_process, shell, child = (int(pid) for pid in pids.read_text().split())
    return run_id, [worker_process, shell, child]


@pytest.mark.parametrize("killed", ["the whole worker", "the pool process"])
def test_a_killed_worker_takes_its_bash_command_with_it(
    redis_cluster: Cluster, tmp_path: Path, killed: str
) -> None:
    worker = redis_cluster.worker("bashkill", queues="bash_victim", concurrency=1)
    run_id, (pool_process, shell, child) = start_command(redis_cluster, tmp_path)
    try:
        assert alive(shell) and alive(child)
        if killed == "the whole worker":
            worker.kill()
        else:
            os.kill(pool_process, signal.SIGKILL)
        assert gone_within([shell, child], 10.0), f"the command outlived {killed}"
    finally:
        for pid in (shell, child):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        api.stop_workflows([run_id], config=redis_cluster.config)
        worker.stop()


def test_a_worker_loads_the_store_before_its_pool_forks(redis_cluster: Cluster) -> None:
    """The main process's threads (sweeper, pruner) use the store; their first import of
    pymongo must not happen while the pool forks a process (it would inherit the import
    lock and hang), so the worker imports it at start, before any job."""
    worker = redis_cluster.worker("preload", queues="preload_idle", concurrency=1)
    try:
        assert worker.process is not None
        maps = Path(f"/proc/{worker.process.pid}/maps").read_text()
        assert "/bson/_cbson" in maps and "/pymongo/" in maps
    finally:
        worker.stop()
