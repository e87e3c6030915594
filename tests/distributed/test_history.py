"""A finished run's history: small in Redis, all of it in the store, shown as before.

A run's events and log lines move to the store's run archive when it ends
(:mod:`lightflow.queue.history`): the state server keeps a kilobyte or so per run
whatever its width, while ``run_status``, ``follow_events`` (ids unchanged),
``run_logs`` and ``follow_logs`` read on from the archive, and a prune removes it.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from lightflow import api
from lightflow.queue import driver, history
from lightflow.queue import state as rs

from .conftest import WORKFLOWS, Cluster

pytestmark = pytest.mark.slow

#: What the issue asks of a finished run in Redis, whatever its width.
FINISHED_RUN_BYTES = 20 * 1024


def archived(cluster: Cluster, run_id: str) -> None:
    """Wait until the worker that closed the run has moved its history to the store.

    It does so right after publishing the run's end, which the follower already saw.
    """
    client = driver.Cluster(cluster.config).redis
    deadline = time.monotonic() + 30
    while not client.hexists(rs.run_key(run_id), "archived_events"):
        assert time.monotonic() < deadline, "the run's history was not archived"
        time.sleep(0.05)


def redis_bytes(cluster: Cluster, run_id: str) -> int:
    client = driver.Cluster(cluster.config).redis
    keys = list(client.scan_iter(match=rs.run_key(run_id, "*"), count=1000))
    return sum(client.memory_usage(key) or 0 for key in [rs.run_key(run_id), *keys])


def test_a_wide_finished_run_keeps_little_in_redis_and_shows_all_of_it(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIGHTFLOW_TEST_FAN_WIDTH", "500")
    live: list[Any] = []
    record, _ = cluster.run("wide_fan", timeout=180)
    assert record["state"] == "succeeded", record
    run_id = record["id"]
    archived(cluster, run_id)
    assert redis_bytes(cluster, run_id) <= FINISHED_RUN_BYTES
    assert "archived_events" not in record  # bookkeeping, not a fact of the run

    status = api.run_status(run_id, config=cluster.config)
    tasks = status["dags"]["main"]["tasks"]
    assert len(tasks) == 502
    for name, task in tasks.items():
        assert task["state"] == "succeeded", (name, task)
        assert task["worker"] and task["duration"] >= 0, (name, task)
        assert task["ended"] >= task["started"], (name, task)

    # Replayed from the archive with the ids they had; resumed from any id.
    api.follow_events(config=cluster.config, run_id=run_id, on_event=live.append, timeout=30)
    assert [event.id for event in live] == [str(i) for i in range(len(live))]
    assert len(live) == 2 + 2 + 2 * 502  # run and DAG start and end, every task's two
    resumed: list[Any] = []
    api.follow_events(
        config=cluster.config, run_id=run_id, on_event=resumed.append, after="700", timeout=30
    )
    assert [event.to_dict() for event in resumed] == [event.to_dict() for event in live[701:]]


def test_log_lines_of_a_finished_run_are_read_from_the_store_in_order(cluster: Cluster) -> None:
    record, _ = cluster.run(str(WORKFLOWS / "printing.py"), timeout=60)
    assert record["state"] == "succeeded", record
    archived(cluster, record["id"])
    lines = api.run_logs(record["id"], config=cluster.config)
    assert lines and not driver.Cluster(cluster.config).redis.exists(
        rs.run_key(record["id"], "logs")
    )
    followed: list[str] = []
    api.follow_logs(record["id"], config=cluster.config, on_line=followed.append, timeout=10)
    assert followed == lines
    assert api.run_logs(record["id"], config=cluster.config, offset=1, limit=1) == lines[1:2]


def test_a_prune_removes_the_archived_history(cluster: Cluster) -> None:
    record, _ = cluster.run("tiny", timeout=60)
    run_id = record["id"]
    archived(cluster, run_id)
    handle = driver.Cluster(cluster.config)
    assert handle.archive.read(run_id, "events")
    # Ended long ago, so that a prune by age takes this run and no other of the session.
    handle.redis.hset(rs.run_key(run_id), "ended", rs.now() - 3 * 86400)
    handle.redis.zadd(rs.RUNS, {run_id: rs.now() - 4 * 86400})
    assert api.prune_runs(config=cluster.config, older_than=2 * 86400) == [run_id]
    assert handle.archive.read(run_id, "events") == []
    assert not handle.redis.exists(rs.run_key(run_id))


def read_until(
    handle: driver.Cluster, run_id: str, seen: list[list[str]], done: threading.Event
) -> None:
    """Read the run's log again and again until ``done``, keeping each read's lines."""
    while not done.is_set():
        seen.append(history.read_log(handle, run_id)[0])


def test_a_reader_sees_every_line_while_the_history_moves_to_the_store(cluster: Cluster) -> None:
    """A log read right at a run's end (``workflow logs`` after ``--wait``) races the
    archive: read in two steps, the marker said "in Redis" and the stream was gone by
    the time it was read, and the run looked as if it had logged nothing."""
    handle = driver.Cluster(cluster.config)
    lines = [f"line {number}" for number in range(5)]
    for trial in range(20):
        run_id = f"archive-race-{uuid.uuid4().hex}-{trial}"
        handle.redis.hset(rs.run_key(run_id), mapping={"state": "succeeded"})
        for line in lines:
            handle.redis.xadd(rs.run_key(run_id, "logs"), {"line": line})
        seen: list[list[str]] = []
        done = threading.Event()
        reader = threading.Thread(target=read_until, args=(handle, run_id, seen, done))
        reader.start()
        try:
            time.sleep(0.005)
            history.archive(handle, run_id)
            time.sleep(0.005)
        finally:
            done.set()
            reader.join()
        assert seen and all(read == lines for read in seen), f"trial {trial}: a read missed lines"
        assert handle.redis.hexists(rs.run_key(run_id), "archived_logs")
        rs.delete_runs(handle.redis, [run_id])
        handle.archive.remove([run_id])
