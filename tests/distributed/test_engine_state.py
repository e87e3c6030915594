"""The distributed engine's state in Redis, driven in-process against the real servers.

Most tests call the driver's functions directly (no worker): a run is submitted to a
private Redis database whose queues no worker consumes, and its jobs are played by
hand, so each test can set up the exact interleaving it is about:

* the compare-and-set commit of a DAG instance's state (:func:`dag_instance.advance`,
  :func:`dag_instance._commit`);
* the run's META queue and its writers (:func:`meta_queue.write_meta`,
  :class:`meta_queue.MetaWriter`);
* the stop flag set by the commit that halts an instance (:func:`halting.stop_instance`).

The last test runs a fan-out workflow on the session's real worker.
"""

from __future__ import annotations

import json
import pickle
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from lightflow import api
from lightflow.config import Config
from lightflow.engine.dag_run import Outcome, Step
from lightflow.queue import closing, driver, halting
from lightflow.queue import instance as dag_instance
from lightflow.queue import meta as meta_queue
from lightflow.queue import state as rs
from lightflow.queue.app import create_app
from lightflow.store.base import META
from lightflow.workflows import load_workflow

from tests.servers import ServerProcess

from .conftest import WORKFLOWS, Cluster

pytestmark = pytest.mark.slow

# The session cluster uses 1 and 2, tests/cli/test_prune.py 7, test_prune.py 8.
DATABASE = 11
DIAMOND = ("first", "left", "right", "last")


@pytest.fixture
def engine(redis_server: ServerProcess, secantus_server: ServerProcess) -> Iterator[driver.Cluster]:
    """A driver cluster on an emptied private Redis database (also its broker)."""
    url = f"redis://{redis_server.address}/{DATABASE}"
    config = Config.from_dict(
        {
            "celery": {"broker_url": url},
            "signal": {"url": url},
            "store": {
                "uri": f"mongodb://{secantus_server.address}/",
                "database": "lightflow_engine_state",
            },
        }
    )
    app = create_app(config)
    cluster = driver.Cluster(config, app)
    cluster.redis.flushdb()
    yield cluster
    cluster.redis.flushdb()
    cluster.redis.close()
    cluster.store.close()
    app.close()


# -- helpers ---------------------------------------------------------------------------
def start_run(cluster: driver.Cluster, workflow: str = "engine_state") -> str:
    """Submit a run and play its workflow job: store document and instance 'main'.

    The instance's DAG job is queued on the broker, which nothing consumes.
    """
    loaded = load_workflow(str(WORKFLOWS / f"{workflow}.py"))
    run_id = driver.submit(cluster, loaded, {}, keep_data=True)
    driver.workflow_job(cluster, run_id)
    assert cluster.store.exists(run_id)
    return run_id


def dag_state(cluster: driver.Cluster, run_id: str, instance: str = "main") -> dict[str, Any]:
    return rs.load_dag_state(cluster.redis.get(rs.run_key(run_id, "dag", instance)))


def version(cluster: driver.Cluster, run_id: str, instance: str = "main") -> int:
    return int(cluster.redis.get(rs.run_key(run_id, "dagv", instance)) or 0)


def task_states(cluster: driver.Cluster, run_id: str, instance: str = "main") -> dict[str, str]:
    return dag_state(cluster, run_id, instance)["machine"]["states"]


def begin(cluster: driver.Cluster, run_id: str, task: str, instance: str = "main") -> Any:
    """Commit a queued task's start, as a task job's begin does."""

    def event(machine: Any, _state: dict[str, Any]) -> Step | None:
        return Step() if machine.task_started(task) else None

    progress = dag_instance.advance(cluster, run_id, instance, event)
    assert progress is not None
    return progress


def succeed(
    cluster: driver.Cluster,
    run_id: str,
    task: str,
    instance: str = "main",
    *,
    snapshot: tuple[str, str] | None = None,
    seen: list[dict[str, str]] | None = None,
) -> Any:
    """Commit a running task's success with an output, as a task job's finish does."""

    def event(machine: Any, _state: dict[str, Any]) -> Step | None:
        if seen is not None:
            seen.append({name: value.value for name, value in machine.states.items()})
        return machine.task_succeeded(task)

    output = {rs.run_key(run_id, "out", instance, task): pickle.dumps(f"output of {task}")}
    progress = dag_instance.advance(
        cluster, run_id, instance, event, outputs=output, snapshot=snapshot
    )
    assert progress is not None
    return progress


def events(cluster: driver.Cluster, run_id: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in cluster.redis.lrange(rs.run_key(run_id, "events"), 0, -1)]


def meta(cluster: driver.Cluster, run_id: str, key: str, default: Any = None) -> Any:
    """A META value as the store holds it now (a fresh handle: nothing cached)."""
    return cluster.store.get(run_id).get(key, default, section=META)


def new_document(cluster: driver.Cluster) -> str:
    run_id = uuid.uuid4().hex
    cluster.store.add(workflow_id=run_id)
    return run_id


def queue_meta(cluster: driver.Cluster, run_id: str, *entries: dict[str, Any]) -> None:
    """Queue META entries the way a commit does (see dag_instance.queue_meta)."""
    cluster.redis.rpush(rs.run_key(run_id, "meta"), *(pickle.dumps(entry) for entry in entries))


def meta_queue_length(cluster: driver.Cluster, run_id: str) -> int:
    return int(cluster.redis.llen(rs.run_key(run_id, "meta")))


def wait_for(condition: Any, timeout: float, interval: float = 0.005) -> float | None:
    """Seconds until ``condition()`` held, or None if it did not within ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(interval)
    return None


# -- 1. compare-and-set commits ------------------------------------------------------------
def test_a_commit_from_a_stale_version_writes_nothing(engine: driver.Cluster) -> None:
    run_id = start_run(engine)
    client = engine.redis
    key, version_key = rs.run_key(run_id, "dag", "main"), rs.run_key(run_id, "dagv", "main")
    stale = client.get(key)
    driver.dag_job(engine, run_id, "main")  # another job commits first: version 0 -> 1
    newer = client.get(key)
    assert version(engine, run_id) == 1 and newer != stale

    out_key = rs.run_key(run_id, "out", "main", "first")
    history = rs.run_key(run_id, "events")
    before = client.llen(history)
    writes = dag_instance.Writes()
    writes.set(out_key, b"stale output")
    writes.rpush(history, "stale event")
    writes.hset(rs.RUNNING, f"{run_id}|main|first", "stale entry")
    writes.zadd(rs.OUTBOX, {"stale job": rs.now()})
    assert not dag_instance._commit(engine, key, version_key, "0", stale, writes)

    assert client.get(key) == newer
    assert version(engine, run_id) == 1
    assert not client.exists(out_key)
    assert client.llen(history) == before
    assert not client.hexists(rs.RUNNING, f"{run_id}|main|first")
    assert client.zscore(rs.OUTBOX, "stale job") is None

    # The same writes from the current version go through, all of them.
    assert dag_instance._commit(engine, key, version_key, "1", newer, writes)
    assert version(engine, run_id) == 2
    assert client.get(out_key) == b"stale output"
    assert rs.text(client.lindex(history, -1)) == "stale event"
    assert client.zscore(rs.OUTBOX, "stale job") is not None
    client.hdel(rs.RUNNING, f"{run_id}|main|first")
    client.zrem(rs.OUTBOX, "stale job")


def test_a_stale_dag_start_retries_and_writes_nothing_when_it_no_longer_applies(
    engine: driver.Cluster,
) -> None:
    """Two DAG jobs for one instance (a redelivery): the loser must change nothing."""
    run_id = start_run(engine)
    client = engine.redis
    stale = (client.get(rs.run_key(run_id, "dag", "main")), "0")
    driver.dag_job(engine, run_id, "main")
    winner = dag_state(engine, run_id)
    started_events = [e for e in events(engine, run_id) if e["kind"] == "dag_started"]
    assert len(started_events) == 1 and winner["attempts"].keys() == {"first"}
    assert client.zcard(rs.OUTBOX) == 0  # the winner sent its job and cleared the outbox

    seen: list[bool] = []
    probe = rs.run_key(run_id, "probe")

    def start(machine: Any, _state: dict[str, Any]) -> Step | None:
        seen.append(machine.started)
        return None if machine.started else machine.start()

    def record(writes: dag_instance.Writes) -> None:
        writes.set(probe, "written by the losing commit")
        writes.rpush(rs.run_key(run_id, "events"), json.dumps({"kind": "dag_started"}))
        dag_instance.queue_meta(writes, run_id, {"log.main.status": "losing"})

    result = dag_instance.advance(engine, run_id, "main", start, also=record, snapshot=stale)

    assert result is None
    assert seen == [False, True]  # the stale snapshot, then the fresh state
    assert dag_state(engine, run_id) == winner  # same attempt id: "first" not re-queued
    assert version(engine, run_id) == 1
    assert not client.exists(probe)
    assert len([e for e in events(engine, run_id) if e["kind"] == "dag_started"]) == 1
    assert client.zcard(rs.OUTBOX) == 0  # no second job for "first"
    queued = [pickle.loads(raw) for raw in client.lrange(rs.run_key(run_id, "meta"), 0, -1)]
    assert {"log.main.status": "losing"} not in queued
    meta_queue.write_meta(engine, run_id, wait=True)
    assert meta(engine, run_id, "log.main.status") == "running"


def test_a_finish_from_a_stale_snapshot_is_applied_on_the_fresh_state(
    engine: driver.Cluster,
) -> None:
    """left and right run at once; left's finish starts from its begin's snapshot,
    which right's begin made stale: it must not put right back to queued."""
    run_id = start_run(engine)
    driver.dag_job(engine, run_id, "main")
    begin(engine, run_id, "first")
    succeed(engine, run_id, "first")
    assert task_states(engine, run_id)["left"] == "queued"
    left = begin(engine, run_id, "left")
    begin(engine, run_id, "right")
    assert version(engine, run_id) == 5

    seen: list[dict[str, str]] = []
    done = succeed(engine, run_id, "left", snapshot=left.snapshot, seen=seen)

    assert [s["right"] for s in seen] == ["queued", "running"]  # stale, then fresh
    assert task_states(engine, run_id) == {
        "first": "succeeded",
        "left": "succeeded",
        "right": "running",
        "last": "pending",
    }
    assert version(engine, run_id) == 6
    assert done.snapshot == (engine.redis.get(rs.run_key(run_id, "dag", "main")), "6")
    assert engine.redis.exists(rs.run_key(run_id, "out", "main", "left"))

    # right's finish then makes last ready, with both inputs stored.
    succeed(engine, run_id, "right")
    assert task_states(engine, run_id)["last"] == "queued"
    for task in ("left", "right"):
        assert engine.redis.exists(rs.run_key(run_id, "out", "main", task))


def test_concurrent_advances_lose_no_update(engine: driver.Cluster) -> None:
    run_id = start_run(engine)
    threads, rounds = 4, 25

    def bump(_machine: Any, state: dict[str, Any]) -> Step:
        state["counter"] = state.get("counter", 0) + 1
        return Step()

    def worker() -> None:
        for _ in range(rounds):
            assert dag_instance.advance(engine, run_id, "main", bump) is not None

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    assert dag_state(engine, run_id)["counter"] == threads * rounds
    assert version(engine, run_id) == threads * rounds


# -- 2. write_meta ---------------------------------------------------------------------------
def test_write_meta_writes_queued_entries_in_order_and_empties_the_queue(
    engine: driver.Cluster,
) -> None:
    run_id = new_document(engine)
    queue_meta(
        engine,
        run_id,
        {"log.main.start_time": "t0", "log.main.status": "running"},
        {"log.main.tasks.a": {"status": "running"}},
        {"log.main.tasks.a": {"status": "succeeded", "duration": 1.5}},
        {"log.main.tasks.b": {"status": "skipped"}, "log.main.status": "succeeded"},
    )
    meta_queue.write_meta(engine, run_id)
    assert meta(engine, run_id, "log") == {
        "main": {
            "start_time": "t0",
            "status": "succeeded",
            "tasks": {"a": {"status": "succeeded", "duration": 1.5}, "b": {"status": "skipped"}},
        }
    }
    assert meta_queue_length(engine, run_id) == 0
    assert not engine.redis.exists(rs.run_key(run_id, "meta", "lock"))


def test_write_meta_keeps_the_order_across_batches(engine: driver.Cluster) -> None:
    run_id = new_document(engine)
    count = meta_queue.META_BATCH * 2 + 100
    queue_meta(engine, run_id, *({"last": i, f"seen.k{i}": i} for i in range(count)))
    meta_queue.write_meta(engine, run_id)
    assert meta(engine, run_id, "last") == count - 1
    assert meta(engine, run_id, "seen") == {f"k{i}": i for i in range(count)}
    assert meta_queue_length(engine, run_id) == 0


def test_write_meta_without_wait_returns_at_once_while_another_process_holds_the_lock(
    engine: driver.Cluster,
) -> None:
    run_id = new_document(engine)
    lock = rs.run_key(run_id, "meta", "lock")
    engine.redis.set(lock, "another process", px=30_000)
    queue_meta(engine, run_id, {"status": "running"})
    start = time.monotonic()
    meta_queue.write_meta(engine, run_id)
    assert time.monotonic() - start < 0.5
    assert meta(engine, run_id, "status") is None
    assert meta_queue_length(engine, run_id) == 1
    assert engine.redis.get(lock) == b"another process"  # not released by the caller


def test_write_meta_with_wait_writes_once_the_other_holder_lets_go(
    engine: driver.Cluster,
) -> None:
    """The holder releases without writing (it was busy with other entries)."""
    run_id = new_document(engine)
    lock = rs.run_key(run_id, "meta", "lock")
    engine.redis.set(lock, "another process", px=30_000)
    queue_meta(engine, run_id, {"status": "running"}, {"status": "succeeded"})

    def release() -> None:
        time.sleep(0.3)
        engine.redis.delete(lock)

    holder = threading.Thread(target=release)
    start = time.monotonic()
    holder.start()
    meta_queue.write_meta(engine, run_id, wait=True)
    elapsed = time.monotonic() - start
    holder.join()
    assert 0.25 <= elapsed < 5
    assert meta(engine, run_id, "status") == "succeeded"
    assert meta_queue_length(engine, run_id) == 0
    assert not engine.redis.exists(lock)


def test_write_meta_with_wait_returns_once_the_other_holder_drained_the_queue(
    engine: driver.Cluster,
) -> None:
    """The holder writes the entries itself: the waiter returns when the queue is empty."""
    run_id = new_document(engine)
    client = engine.redis
    queue, lock = rs.run_key(run_id, "meta"), rs.run_key(run_id, "meta", "lock")
    client.set(lock, "another process", px=30_000)
    queue_meta(engine, run_id, {"status": "running"}, {"status": "succeeded"})
    returned = threading.Event()

    def drain() -> None:
        time.sleep(0.3)
        values: dict[str, Any] = {}
        for raw in client.lrange(queue, 0, -1):
            values.update(pickle.loads(raw))
        engine.store.get(run_id).set_many(values, section=META)
        client.ltrim(queue, 2, -1)
        returned.wait(10)  # the lock is let go only after the waiter returned
        client.delete(lock)

    holder = threading.Thread(target=drain)
    start = time.monotonic()
    holder.start()
    meta_queue.write_meta(engine, run_id, wait=True)
    elapsed = time.monotonic() - start
    assert client.get(lock) == b"another process"  # it never took the lock itself
    returned.set()
    holder.join()
    assert 0.25 <= elapsed < 5
    assert meta(engine, run_id, "status") == "succeeded"
    assert meta_queue_length(engine, run_id) == 0


def test_entries_a_dead_process_committed_are_written_by_the_next_write_meta(
    engine: driver.Cluster,
) -> None:
    """A DAG job commits its start (META queued in the commit), then dies unwritten."""
    run_id = start_run(engine)
    recorder = engine.recorder(run_id, "engine_state", events=[], deferred=True)
    recorder.dag_started("main")

    def start(machine: Any, _state: dict[str, Any]) -> Step | None:
        return machine.start()

    progress = dag_instance.advance(
        engine,
        run_id,
        "main",
        start,
        also=lambda writes: dag_instance.queue_meta(writes, run_id, recorder.take()),
    )
    assert progress is not None and progress.meta
    # ... and its process died here: no _carry_out, so nobody asked for a write.
    time.sleep(meta_queue.MetaWriter.DELAY * 2)
    assert meta(engine, run_id, "log.main.status") is None
    assert meta_queue_length(engine, run_id) == 1

    meta_queue.write_meta(engine, run_id)
    assert meta(engine, run_id, "log.main.status") == "running"
    assert meta(engine, run_id, "log.main.start_time") is not None
    assert meta_queue_length(engine, run_id) == 0


def test_a_lock_left_by_a_dead_writer_expires_and_the_waiter_writes(
    engine: driver.Cluster,
) -> None:
    run_id = new_document(engine)
    lock = rs.run_key(run_id, "meta", "lock")
    engine.redis.set(lock, "a writer that died mid-batch", px=400)
    queue_meta(engine, run_id, {"status": "succeeded"})
    start = time.monotonic()
    meta_queue.write_meta(engine, run_id, wait=True)
    assert time.monotonic() - start >= 0.3
    assert meta(engine, run_id, "status") == "succeeded"
    assert meta_queue_length(engine, run_id) == 0


def test_write_meta_to_a_removed_document_does_not_raise(engine: driver.Cluster) -> None:
    cached = new_document(engine)  # this process already holds a handle on it
    queue_meta(engine, cached, {"status": "running"})
    meta_queue.write_meta(engine, cached)
    assert meta(engine, cached, "status") == "running"
    never_opened = new_document(engine)

    for run_id in (cached, never_opened):
        engine.store.remove(run_id)
        queue_meta(engine, run_id, {"status": "succeeded"}, {"log.main.status": "succeeded"})
        meta_queue.write_meta(engine, run_id)
        meta_queue.write_meta(engine, run_id, wait=True)
        assert not engine.store.exists(run_id)  # not brought back by the write
        assert meta_queue_length(engine, run_id) == 0
        assert not engine.redis.exists(rs.run_key(run_id, "meta", "lock"))


def test_a_writer_that_lost_the_lock_drops_no_entries(engine: driver.Cluster) -> None:
    """Its lock expired mid-batch and another writer took over: only that one trims."""
    run_id = new_document(engine)
    queue_meta(engine, run_id, {"a": 1}, {"b": 2}, {"c": 3})
    queue, lock = rs.run_key(run_id, "meta"), rs.run_key(run_id, "meta", "lock")
    engine.redis.set(lock, "the writer that took over", px=meta_queue.META_LOCK_TTL)
    trimmed = engine.redis.eval(
        meta_queue._TRIM, 2, lock, queue, "mine", 2, meta_queue.META_LOCK_TTL
    )
    assert trimmed == 0 and meta_queue_length(engine, run_id) == 3
    engine.redis.set(lock, "mine", px=meta_queue.META_LOCK_TTL)
    trimmed = engine.redis.eval(
        meta_queue._TRIM, 2, lock, queue, "mine", 2, meta_queue.META_LOCK_TTL
    )
    assert trimmed == 1 and meta_queue_length(engine, run_id) == 1


def test_the_runs_end_writes_entries_queued_behind_a_dead_writers_lock(
    engine: driver.Cluster,
) -> None:
    """A worker killed in the middle of a batch leaves its lock behind until it expires."""
    run_id = start_run(engine)
    driver.dag_job(engine, run_id, "main")
    meta_queue.write_meta(engine, run_id, wait=True)
    assert meta(engine, run_id, "log.main.status") == "running"
    lock = rs.run_key(run_id, "meta", "lock")
    engine.redis.set(lock, "a worker killed mid-batch", px=meta_queue.META_LOCK_TTL)
    for task in DIAMOND:
        begin(engine, run_id, task)
        succeed(engine, run_id, task)
    assert meta_queue_length(engine, run_id) == 1  # the DAG's end, queued by its commit

    closing.finish_workflow(engine, run_id)

    assert rs.read_run(engine.redis, run_id)["state"] == "succeeded"
    assert meta(engine, run_id, "status") == "succeeded"  # the run's end is recorded...
    assert meta(engine, run_id, "log.main.status") == "succeeded"  # ... and the DAG's


# -- 3. MetaWriter -----------------------------------------------------------------------
class _CommandLog:
    """The commands the Redis server runs in one database while in the block (MONITOR)."""

    def __init__(self, client: redis.Redis, database: int) -> None:
        self._client = client
        self._database = database
        self._monitor = client.monitor()
        self._end = f"end-of-log-{uuid.uuid4().hex}"
        self._thread = threading.Thread(target=self._read, daemon=True)
        self.commands: list[str] = []

    def __enter__(self) -> _CommandLog:
        self._monitor.__enter__()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.echo(self._end)  # everything sent before it is logged before it
        self._thread.join(10)
        self._monitor.__exit__()

    def _read(self) -> None:
        while True:
            command = self._monitor.next_command()
            if self._end in command["command"]:
                return
            if command["db"] == self._database:
                self.commands.append(command["command"])


def test_meta_writer_writes_a_runs_queue_within_its_delay_and_coalesces_requests(
    engine: driver.Cluster,
) -> None:
    writer = meta_queue.MetaWriter()
    run_id = new_document(engine)
    queue_key = rs.run_key(run_id, "meta")
    with _CommandLog(engine.redis, DATABASE) as log:
        queue_meta(engine, run_id, *({"count": i, f"tasks.t{i}": "succeeded"} for i in range(5)))
        start = time.monotonic()
        for _ in range(5):  # tasks that finished close together, each asking for a write
            writer.request(engine, run_id)
        elapsed = wait_for(lambda: meta(engine, run_id, "count") == 4, timeout=5)
        total = time.monotonic() - start

    assert elapsed is not None, "the writer did not write the run's queue"
    assert meta_queue.MetaWriter.DELAY <= total < meta_queue.MetaWriter.DELAY + 2.0
    assert meta(engine, run_id, "tasks") == {f"t{i}": "succeeded" for i in range(5)}
    assert meta_queue_length(engine, run_id) == 0
    # One write for the five requests: one look at the queue before the batch and one
    # after letting go of the lock (a write per request would look at least five times).
    looks = [c for c in log.commands if c.startswith("LLEN") and queue_key in c]
    locks = [c for c in log.commands if c.startswith("SET") and f"{queue_key}:lock" in c]
    assert len(locks) == 1, log.commands
    assert len(looks) == 2, log.commands


def test_meta_writer_keeps_the_first_due_time_of_a_run(engine: driver.Cluster) -> None:
    """Requests that keep coming for a run do not put its write off."""
    writer = meta_queue.MetaWriter()
    run_id = new_document(engine)
    queue_meta(engine, run_id, {"status": "running"})
    start = time.monotonic()
    written = None
    while time.monotonic() - start < 5:
        writer.request(engine, run_id)
        if meta(engine, run_id, "status") == "running":
            written = time.monotonic() - start
            break
        time.sleep(0.01)
    assert written is not None and written < 2.0


def test_meta_writer_serves_several_runs(engine: driver.Cluster) -> None:
    writer = meta_queue.MetaWriter()
    runs = [new_document(engine) for _ in range(3)]
    for run_id in runs:
        queue_meta(engine, run_id, {"run": run_id})
        writer.request(engine, run_id)
    for run_id in runs:
        assert wait_for(lambda run_id=run_id: meta(engine, run_id, "run") == run_id, 5)


# -- 4. stop flags -------------------------------------------------------------------------
def test_stop_instance_halts_and_sets_the_flag_in_one_commit(engine: driver.Cluster) -> None:
    run_id = start_run(engine)
    driver.dag_job(engine, run_id, "main")
    begin(engine, run_id, "first")
    channel = driver.RedisSignalChannel(engine, run_id, "main")
    flag = rs.run_key(run_id, "stop", "main")
    assert not channel.is_stopped("main")
    before = version(engine, run_id)

    halting.stop_instance(engine, run_id, "main")

    assert version(engine, run_id) == before + 1
    machine = dag_state(engine, run_id)["machine"]
    assert machine["halt"] == "stopped"
    assert machine["states"] == {
        "first": "running",  # it sees the flag and ends on its own
        "left": "cancelled",
        "right": "cancelled",
        "last": "cancelled",
    }
    assert engine.redis.get(flag) == b"stopped"
    assert channel.is_stopped("main")
    cancelled = {e["task"] for e in events(engine, run_id) if e["kind"] == "task_cancelled"}
    assert cancelled == {"left", "right", "last"}

    # The running task then finishes: the DAG ends stopped.
    succeed(engine, run_id, "first")
    assert dag_state(engine, run_id)["machine"]["states"]["first"] == "succeeded"
    assert rs.text(engine.redis.hget(rs.run_key(run_id, "dags"), "main")) == "stopped"


def test_stop_instance_of_a_done_instance_sets_no_flag(engine: driver.Cluster) -> None:
    run_id = start_run(engine)
    driver.dag_job(engine, run_id, "main")
    for task in DIAMOND:
        begin(engine, run_id, task)
        succeed(engine, run_id, task)
    done = dag_state(engine, run_id)
    before = version(engine, run_id)
    assert rs.text(engine.redis.hget(rs.run_key(run_id, "dags"), "main")) == "succeeded"

    halting.stop_instance(engine, run_id, "main", Outcome.ABORTED)

    assert not engine.redis.exists(rs.run_key(run_id, "stop", "main"))
    assert not driver.RedisSignalChannel(engine, run_id, "main").is_stopped("main")
    assert version(engine, run_id) == before
    assert dag_state(engine, run_id) == done


def test_halt_run_flags_the_running_instances_only(engine: driver.Cluster) -> None:
    run_id = start_run(engine)
    dag = engine.workflow(run_id).dags["main"]
    second = dag_instance.create_instance(engine, run_id, dag, None)
    assert second == "main:2"
    for instance in ("main", second):
        driver.dag_job(engine, run_id, instance)
    for task in DIAMOND:
        begin(engine, run_id, task)
        succeed(engine, run_id, task)
    begin(engine, run_id, "first", second)

    driver.halt_run(engine, run_id, Outcome.ABORTED, second, "first", "beam lost")

    channel = driver.RedisSignalChannel(engine, run_id, "main")
    assert not channel.is_stopped("main")
    assert channel.is_stopped(second)
    assert engine.redis.get(rs.run_key(run_id, "stop", second)) == b"aborted"
    assert engine.redis.get(rs.run_key(run_id, "stop")) == b"aborted"
    assert dag_state(engine, run_id, second)["machine"]["halt"] == "aborted"
    assert dag_state(engine, run_id)["machine"]["halt"] is None


# -- 5. end to end -------------------------------------------------------------------------
def test_a_join_after_a_wide_fan_out_reads_every_predecessors_meta_record(
    cluster: Cluster,
) -> None:
    lanes = [f"work{i:02d}" for i in range(30)]
    state_server = driver.Cluster(cluster.config).redis
    for _ in range(3):  # the records are written in batches behind the successors: race it
        record, _events = cluster.run("fan_out_meta", keep_data=True, timeout=120)
        assert record["state"] == "succeeded", record
        document = api.run_store(record["id"], config=cluster.config)

        seen = document.get("seen")
        assert set(seen) >= {"spread", *lanes}, sorted(seen)
        for name in ("spread", *lanes):
            assert seen[name]["status"] == "succeeded", (name, seen[name])
            assert isinstance(seen[name]["duration"], float), (name, seen[name])
            assert seen[name]["duration"] >= 0

        log = document.get("log", section=META)["main"]
        assert set(log["tasks"]) == {"spread", *lanes, "join"}
        for name, entry in log["tasks"].items():
            assert entry["status"] == "succeeded", (name, entry)
            assert {"start_time", "end_time", "duration", "worker"} <= set(entry), (name, entry)
        assert log["status"] == "succeeded"
        assert {"start_time", "end_time", "duration"} <= set(log)
        assert document.get("status", section=META) == "succeeded"
        for name in ("start_time", "end_time", "duration"):
            assert document.get(name, section=META) is not None, name
        assert not state_server.exists(rs.run_key(record["id"], "meta"))
        cluster.store().remove(record["id"])
    state_server.close()
