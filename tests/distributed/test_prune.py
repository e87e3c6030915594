"""Workers prune finished runs on their own (``signal.keep_finished_runs``).

A worker of its own on a private database (the session cluster's workers keep the
default of 7 days and must not be the ones doing the pruning seen here), with a short
heartbeat timeout so that it sweeps every second.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.cli.test_cli import assert_one_error_line
from tests.cli.test_prune import keys_of, listed_runs, plant_run
from tests.servers import ServerProcess

from .conftest import Worker

pytestmark = pytest.mark.slow

DATABASE = 8  # the session cluster uses 1 and 2, tests/cli/test_prune.py 7


@pytest.fixture
def client(redis_server: ServerProcess) -> Iterator[redis.Redis]:
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=DATABASE)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def write_config(
    folder: Path, redis_server: ServerProcess, secantus_server: ServerProcess, **signal: Any
) -> Path:
    url = f"redis://{redis_server.address}/{DATABASE}"
    path = folder / "lightflow.cfg"
    path.write_text(
        yaml.safe_dump(
            {
                "celery": {"broker_url": url, "worker_concurrency": 1},
                "signal": {"url": url, "heartbeat_timeout": 3, **signal},
                "store": {"uri": f"mongodb://{secantus_server.address}/"},
            }
        )
    )
    return path


def run_keys(client: redis.Redis) -> set[str]:
    """The runs' keys (the broker keeps its own in the same database)."""
    return {key for key in keys_of(client) if key.startswith("lf:run:")}


def wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_worker_prunes_finished_runs_at_once_and_then_at_most_hourly(
    tmp_path: Path,
    client: redis.Redis,
    redis_server: ServerProcess,
    secantus_server: ServerProcess,
) -> None:
    config = write_config(tmp_path, redis_server, secantus_server, keep_finished_runs="1m")
    old, _ = plant_run(client, "succeeded", created_ago=600, ended_ago=300)
    recent_id, recent = plant_run(client, "failed", created_ago=600, ended_ago=10)
    running_id, running = plant_run(client, "running", created_ago=3600)

    worker = Worker(config, "pruner", queues="pruner-only").start()
    try:
        assert wait_until(lambda: old not in listed_runs(client), 20), worker.log()[-3000:]
        assert run_keys(client) == recent | running
        assert listed_runs(client) == {recent_id, running_id}
        assert "pruned 1 runs that finished more than 60 s ago" in worker.log()

        # The next prune is an hour away: a run that qualifies now stays meanwhile,
        # over several sweeps (one a second).
        later, later_keys = plant_run(client, "stopped", created_ago=600, ended_ago=300)
        time.sleep(5)
        assert later in listed_runs(client)
        assert run_keys(client) == recent | running | later_keys
    finally:
        worker.stop()


def test_a_worker_with_retention_off_prunes_nothing(
    tmp_path: Path,
    client: redis.Redis,
    redis_server: ServerProcess,
    secantus_server: ServerProcess,
) -> None:
    config = write_config(tmp_path, redis_server, secantus_server, keep_finished_runs=0)
    old, keys = plant_run(client, "succeeded", created_ago=30 * 86_400, ended_ago=29 * 86_400)
    worker = Worker(config, "keeper", queues="keeper-only").start()
    try:
        time.sleep(4)  # several sweeps
        assert listed_runs(client) == {old}
        assert run_keys(client) == keys
    finally:
        worker.stop()


def test_a_worker_refuses_an_invalid_retention_in_one_line(
    tmp_path: Path, redis_server: ServerProcess, secantus_server: ServerProcess
) -> None:
    config = write_config(tmp_path, redis_server, secantus_server, keep_finished_runs="a week")
    result = subprocess.run(
        [sys.executable, "-m", "lightflow.cli", "-c", str(config), "worker", "start"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = assert_one_error_line(result, 1)
    assert line.startswith("Error: signal.keep_finished_runs: 'a week' is not a duration")
