"""The distributed engine's state in Redis, driven in-process against the real servers.

Most tests call the driver's functions directly (no worker): a run is submitted to a
private Redis database whose queues no worker consumes, and its jobs are played by
hand, so each test can set up the exact interleaving it is about:

* the compare-and-set commit of a DAG instance's state (:func:`dag_instance.advance`,
  :func:`dag_instance._commit`), field by field: what a transition reads and compares
  does not grow with the width of the DAG;
* the run's META queue and its writers (:func:`meta_queue.write_meta`,
  :class:`meta_queue.MetaWriter`);
* the stop flag set by the commit that halts an instance (:func:`halting.stop_instance`),
  and the sweep that follows it in a commit of its own;
* the ready lists task jobs pull from, and what the sweeper does for a process that
  died holding a task or before waking a puller.

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
from lightflow.queue import closing, driver, halting, history
from lightflow.queue import instance as dag_instance
from lightflow.queue import meta as meta_queue
from lightflow.queue import state as rs
from lightflow.queue.app import create_app
from lightflow.queue.dag_state import InstanceView, TaskEntry
from lightflow.queue.inputs import START
from lightflow.queue.ready import ready_key, take
from lightflow.queue.task_job import run_claimed
from lightflow.store.base import META
from lightflow.workflows import load_workflow

from tests.servers import ServerProcess

from .conftest import WORKFLOWS, Cluster, attempt_of, task_states

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


def fields(cluster: driver.Cluster, run_id: str, instance: str = "main") -> dict[str, str]:
    """The raw fields of a DAG instance's hash, as text."""
    raw = cluster.redis.hgetall(dag_instance.dag_key(run_id, instance))
    return {rs.text(name): rs.text(value) for name, value in raw.items()}


def begin(cluster: driver.Cluster, run_id: str, task: str, instance: str = "main") -> Any:
    """Commit a queued task's start, as a task job's begin does."""

    def event(machine: Any, _view: InstanceView) -> Step | None:
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
    view: InstanceView | None = None,
    tries: list[str] | None = None,
) -> Any:
    """Commit a running task's success with an output, as a task job's finish does.

    With ``tries``, each try of the event appends the state of the last task as read.
    """

    def event(machine: Any, view: InstanceView) -> Step | None:
        view.consume(machine.inputs_of(task), START)
        step = machine.task_succeeded(task)
        if tries is not None:
            tries.append(f"{machine.states['last'].value} {machine.verdicts['last'].received}")
        return step

    output = {rs.run_key(run_id, "out", instance, task): pickle.dumps(f"output of {task}")}
    progress = dag_instance.advance(cluster, run_id, instance, event, outputs=output, view=view)
    assert progress is not None
    return progress


def view_of(cluster: driver.Cluster, run_id: str, instance: str = "main") -> InstanceView:
    """A fresh view of a DAG instance's state, as a job starts with."""
    spec = cluster.plan(run_id, instance).spec
    return InstanceView(cluster.redis, dag_instance.dag_key(run_id, instance), spec)


def events(cluster: driver.Cluster, run_id: str) -> list[dict[str, Any]]:
    return history.read_events(cluster, run_id)


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
def test_a_commit_from_stale_fields_writes_nothing(engine: driver.Cluster) -> None:
    run_id = start_run(engine)
    client = engine.redis
    plan = engine.plan(run_id, "main")
    stale = view_of(engine, run_id)
    assert stale.started is False  # read: the commit compares it (absent)
    driver.dag_job(engine, run_id, "main")  # another job starts the instance meanwhile
    before = fields(engine, run_id)
    assert before["started"] == "1" and "t:first" in before

    stale.started = True
    out_key = rs.run_key(run_id, "out", "main", "first")
    history = rs.run_key(run_id, "events")
    length = client.llen(history)
    writes = dag_instance.Writes()
    writes.set(out_key, b"stale output")
    writes.rpush(history, "stale event")
    writes.hset(rs.RUNNING, f"{run_id}|main|first", "stale entry")
    writes.push_ready("elsewhere", ["stale entry"])
    nothing = dag_instance.Ahead()
    reply = dag_instance._commit(engine, run_id, "main", plan, stale, writes, nothing, None)

    assert reply == [0, b"1"]  # refused, with the current value of the field compared
    assert fields(engine, run_id) == before
    assert not client.exists(out_key)
    assert client.llen(history) == length
    assert not client.hexists(rs.RUNNING, f"{run_id}|main|first")
    assert not client.exists(ready_key("elsewhere"))

    # Refreshed with that value, the same writes go through, all of them.
    stale.refresh({"started": b"1"})
    assert stale.started is True
    reply = dag_instance._commit(engine, run_id, "main", plan, stale, writes, nothing, None)
    assert reply[0] == 1
    assert client.get(out_key) == b"stale output"
    assert rs.text(client.lindex(history, -1)) == "stale event"
    assert client.lrange(ready_key("elsewhere"), 0, -1) == [b"stale entry"]
    client.hdel(rs.RUNNING, f"{run_id}|main|first")


def test_a_stale_dag_start_retries_and_writes_nothing_when_it_no_longer_applies(
    engine: driver.Cluster,
) -> None:
    """Two DAG jobs for one instance (a redelivery): the loser must change nothing."""
    run_id = start_run(engine)
    client = engine.redis
    stale = view_of(engine, run_id)
    stale.load(["started", "halt", "t:first"])
    driver.dag_job(engine, run_id, "main")
    winner = fields(engine, run_id)
    started_events = [e for e in events(engine, run_id) if e["kind"] == "dag_started"]
    assert len(started_events) == 1 and attempt_of(client, run_id, "first")
    assert client.llen(ready_key("task")) == 1

    seen: list[bool] = []
    probe = rs.run_key(run_id, "probe")

    def start(machine: Any, _view: InstanceView) -> Step | None:
        seen.append(machine.started)
        return None if machine.started else machine.start()

    def record(writes: dag_instance.Writes) -> None:
        writes.set(probe, "written by the losing commit")
        writes.rpush(rs.run_key(run_id, "events"), json.dumps({"kind": "dag_started"}))
        dag_instance.queue_meta(writes, run_id, {"log.main.status": "losing"})

    result = dag_instance.advance(engine, run_id, "main", start, also=record, view=stale)

    assert result is None
    assert seen == [False, True]  # the stale view, then the fresh values
    assert fields(engine, run_id) == winner  # same attempt id: "first" not re-queued
    assert not client.exists(probe)
    assert len([e for e in events(engine, run_id) if e["kind"] == "dag_started"]) == 1
    assert client.llen(ready_key("task")) == 1  # no second entry for "first"
    queued = [pickle.loads(raw) for raw in client.lrange(rs.run_key(run_id, "meta"), 0, -1)]
    assert {"log.main.status": "losing"} not in queued
    meta_queue.write_meta(engine, run_id, wait=True)
    assert meta(engine, run_id, "log.main.status") == "running"


def test_transitions_of_unrelated_tasks_commit_without_conflict(engine: driver.Cluster) -> None:
    """left and right run at once: right's begin does not touch what left's end reads;
    their two ends both tell last, and the second is applied again to the fresh tally."""
    run_id = start_run(engine)
    driver.dag_job(engine, run_id, "main")
    begin(engine, run_id, "first")
    succeed(engine, run_id, "first")
    assert task_states(engine.redis, run_id)["left"] == "queued"
    left = begin(engine, run_id, "left").view
    right = begin(engine, run_id, "right").view
    right.load(["t:last", "started"])  # read ahead for its end, as a task job's begin does

    tries: list[str] = []
    succeed(engine, run_id, "left", view=left, tries=tries)
    assert tries == ["pending 1"]  # right's begin made no conflict
    tries.clear()
    succeed(engine, run_id, "right", view=right, tries=tries)
    assert tries == ["pending 1", "queued 2"]  # stale tally, then the fresh one
    assert task_states(engine.redis, run_id) == {
        "first": "succeeded",
        "left": "succeeded",
        "right": "succeeded",
        "last": "queued",
    }
    assert engine.redis.llen(ready_key("task")) == 4  # first, left, right, last: once each
    for task in ("left", "right"):
        assert engine.redis.exists(rs.run_key(run_id, "out", "main", task))
    assert not engine.redis.exists(rs.run_key(run_id, "out", "main", "first"))  # consumed


def test_concurrent_advances_lose_no_update(engine: driver.Cluster) -> None:
    run_id = start_run(engine)
    threads, rounds = 4, 25

    def bump(machine: Any, _view: InstanceView) -> Step:
        machine.verdicts["last"] = machine.verdicts["last"].add("run")
        return Step()

    def worker() -> None:
        for _ in range(rounds):
            assert dag_instance.advance(engine, run_id, "main", bump) is not None

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    assert TaskEntry(fields(engine, run_id)["t:last"].encode()).tally.received == threads * rounds


@pytest.mark.parametrize("width", [10, 2000])
def test_a_lane_of_a_fan_out_reads_and_commits_the_same_fields_whatever_its_width(
    engine: driver.Cluster, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    """The cost of a transition must not grow with the DAG: a lane's begin and end read
    and compare its own field, the join's and the instance's own, nothing else."""
    monkeypatch.setenv("LIGHTFLOW_TEST_FAN_WIDTH", str(width))
    run_id = start_run(engine, "wide_fan")
    driver.dag_job(engine, run_id, "main")
    begin(engine, run_id, "spread")
    succeed(engine, run_id, "spread")
    assert engine.redis.llen(ready_key("task")) == width + 1
    commits: list[tuple[int, int]] = []
    real = dag_instance._commit

    def spy(*args: Any) -> list[Any]:
        view = args[4]
        commits.append((len(view.compared), len(view.written)))
        return real(*args)

    monkeypatch.setattr(dag_instance, "_commit", spy)
    lane = begin(engine, run_id, "lane0").view
    read_by_begin = len(lane.values)
    succeed(engine, run_id, "lane0", view=lane)
    # begin: lane0 and halt compared, lane0 written; end: lane0, join, halt, started
    # compared, lane0 and join written (open changes by increment)
    assert commits == [(2, 1), (4, 2)]
    assert read_by_begin <= 3


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
    # after letting go of the lock, which the log may end before (a write per request
    # would look at least five times).
    looks = [c for c in log.commands if c.startswith("LLEN") and queue_key in c]
    locks = [c for c in log.commands if c.startswith("SET") and f"{queue_key}:lock" in c]
    assert len(locks) == 1, log.commands
    assert 1 <= len(looks) <= 2, log.commands


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


# -- 4. stop flags and the sweep -----------------------------------------------------------
def test_stop_instance_halts_sets_the_flag_and_sweeps(engine: driver.Cluster) -> None:
    run_id = start_run(engine)
    driver.dag_job(engine, run_id, "main")
    begin(engine, run_id, "first")
    channel = driver.RedisSignalChannel(engine, run_id, "main", "first", run_task=run_claimed)
    flag = rs.run_key(run_id, "stop", "main")
    assert not channel.is_stopped("main")

    halting.stop_instance(engine, run_id, "main")

    assert fields(engine, run_id)["halt"] == "stopped"
    assert task_states(engine.redis, run_id) == {
        "first": "running",  # it sees the flag and ends on its own
        "left": "cancelled",
        "right": "cancelled",
        "last": "cancelled",
    }
    assert engine.redis.get(flag) == b"stopped"
    assert channel.is_stopped("main")
    cancelled = {e["task"] for e in events(engine, run_id) if e["kind"] == "task_cancelled"}
    assert cancelled == {"left", "right", "last"}
    assert not engine.redis.zcard(rs.OUTBOX)  # the sweep was done: its entry is gone

    # The running task then finishes: the DAG ends stopped.
    succeed(engine, run_id, "first")
    assert task_states(engine.redis, run_id)["first"] == "succeeded"
    assert rs.text(engine.redis.hget(rs.run_key(run_id, "dags"), "main")) == "stopped"


def test_a_halt_whose_sweep_was_not_done_still_cancels_and_the_sweep_follows(
    engine: driver.Cluster,
) -> None:
    """The process that halted an instance died before its sweep: a queued task that is
    taken is cancelled instead of run, and the sweep comes from the outbox."""
    run_id = start_run(engine)
    driver.dag_job(engine, run_id, "main")
    begin(engine, run_id, "first")
    succeed(engine, run_id, "first")  # left and right queued, last pending

    def stop(machine: Any, _view: InstanceView) -> Step | None:
        return machine.stop()

    halted = dag_instance.advance(engine, run_id, "main", stop)  # ... and no carry_out
    assert halted is not None and halted.step.sweep_due and halted.sweep is not None
    assert task_states(engine.redis, run_id)["left"] == "queued"
    assert engine.redis.zcard(rs.OUTBOX) == 1

    def started(machine: Any, _view: InstanceView) -> Step | None:
        return Step() if machine.task_started("left") else Step(cancelled=["left"])

    assert dag_instance.advance(engine, run_id, "main", started).step == Step(cancelled=["left"])
    assert driver.resend_unsent_jobs(engine, older_than=0) == [halted.sweep]
    driver.dag_job(engine, run_id, "main")  # the sweep, as the sent job runs it

    kinds = [(e["kind"], e.get("task")) for e in events(engine, run_id)]
    cancelled = [task for kind, task in kinds if kind == "task_cancelled"]
    assert cancelled == ["left", "right", "last"]  # each once: by its begin, by the sweep
    assert rs.read_run(engine.redis, run_id)["state"] == "stopped"
    assert kinds.count(("dag_started", None)) == 1  # the sweep is no second start
    assert kinds[-2:] == [("dag_finished", None), ("workflow_finished", None)]


def test_stop_instance_of_a_done_instance_sets_no_flag(engine: driver.Cluster) -> None:
    run_id = start_run(engine)
    driver.dag_job(engine, run_id, "main")
    for task in DIAMOND:
        begin(engine, run_id, task)
        succeed(engine, run_id, task)
    done = fields(engine, run_id)
    assert rs.text(engine.redis.hget(rs.run_key(run_id, "dags"), "main")) == "succeeded"

    halting.stop_instance(engine, run_id, "main", Outcome.ABORTED)

    assert not engine.redis.exists(rs.run_key(run_id, "stop", "main"))
    assert not driver.RedisSignalChannel(
        engine, run_id, "main", "first", run_task=run_claimed
    ).is_stopped("main")
    assert fields(engine, run_id) == done


def test_halt_run_flags_the_running_instances_only(engine: driver.Cluster) -> None:
    run_id = start_run(engine)
    dag = engine.workflow(run_id).dags["main"]
    second = dag_instance.create_instance(engine, run_id, dag, None)
    assert second == "main:2"
    for name in ("main", second):
        driver.dag_job(engine, run_id, name)
    for task in DIAMOND:
        begin(engine, run_id, task)
        succeed(engine, run_id, task)
    begin(engine, run_id, "first", second)

    driver.halt_run(engine, run_id, Outcome.ABORTED, second, "first", "beam lost")

    channel = driver.RedisSignalChannel(engine, run_id, "main", "first", run_task=run_claimed)
    assert not channel.is_stopped("main")
    assert channel.is_stopped(second)
    assert engine.redis.get(rs.run_key(run_id, "stop", second)) == b"aborted"
    assert engine.redis.get(rs.run_key(run_id, "stop")) == b"aborted"
    assert fields(engine, run_id, second)["halt"] == "aborted"
    assert "halt" not in fields(engine, run_id)


def test_the_same_start_dag_call_of_a_task_names_the_same_instance(engine: driver.Cluster) -> None:
    run_id = start_run(engine)
    dag = engine.workflow(run_id).dags["main"]
    first = dag_instance.StartCall("main", "first", 1)
    started = dag_instance.create_instance(engine, run_id, dag, {"n": 1}, first)
    assert started == "main:2"
    # A re-run of the task: the same call gets it back, its start data untouched...
    again = dag_instance.create_instance(engine, run_id, dag, {"n": 99}, first)
    assert again == started
    data = pickle.loads(engine.redis.get(dag_instance.output_key(run_id, started, START)))
    assert data.default_dataset["n"] == 1
    # ...and its next call, or the same call of another task, a new instance.
    following = dag_instance.StartCall("main", "first", 2)
    assert dag_instance.create_instance(engine, run_id, dag, None, following) == "main:3"
    other = dag_instance.StartCall("main", "left", 1)
    assert dag_instance.create_instance(engine, run_id, dag, None, other) == "main:4"
    assert len(engine.redis.hkeys(rs.run_key(run_id, "dags"))) == 4


# -- 5. ready lists and the sweeper --------------------------------------------------------
def test_a_task_claimed_by_a_process_that_died_goes_back_to_its_ready_list(
    engine: driver.Cluster,
) -> None:
    run_id = start_run(engine)
    driver.dag_job(engine, run_id, "main")
    ref = take(engine, "task", "doomed/1")
    assert ref is not None and ref.task == "first"
    claim = json.loads(engine.redis.hget(rs.RUNNING, ref.running_field))
    assert claim["claimed"] and claim["worker"] == "doomed/1"
    assert take(engine, "task", "other/2") is None  # taken: nobody else gets it

    # ... the process died: its claim's heartbeat stops.
    claim["heartbeat"] -= 60
    engine.redis.hset(rs.RUNNING, ref.running_field, json.dumps(claim))
    assert driver.recover_lost_tasks(engine, dead_after=15) == [ref.running_field]

    again = take(engine, "task", "other/2")
    assert again == ref  # the same attempt: it never began
    assert task_states(engine.redis, run_id)["first"] == "queued"


def test_the_ready_entries_a_stopped_run_leaves_behind_are_dropped_in_one_pull(
    engine: driver.Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIGHTFLOW_TEST_FAN_WIDTH", "50")
    run_id = start_run(engine, "wide_fan")
    driver.dag_job(engine, run_id, "main")
    begin(engine, run_id, "spread")
    succeed(engine, run_id, "spread")
    assert engine.redis.llen(ready_key("task")) == 51  # spread's own, then the lanes

    driver.halt_run(engine, run_id, Outcome.STOPPED)  # nothing runs: the run ends
    assert rs.read_run(engine.redis, run_id)["state"] == "stopped"

    driver.task_job(engine, "task")  # one pull takes them all, and runs none
    assert not engine.redis.llen(ready_key("task"))
    assert not engine.redis.hgetall(rs.RUNNING)
    assert not any(e["kind"] == "task_started" for e in events(engine, run_id))


def test_ready_tasks_nobody_was_woken_for_get_a_task_job_from_the_sweeper(
    engine: driver.Cluster,
) -> None:
    run_id = start_run(engine)
    driver.dag_job(engine, run_id, "main")
    engine.redis.delete("task")  # the task job it sent is lost: the sender died first
    assert driver.wake_stalled(engine, older_than=60) == []  # not waiting long yet

    old = json.loads(engine.redis.lindex(ready_key("task"), 0))
    old[4] -= 120
    engine.redis.lset(ready_key("task"), 0, json.dumps(old))
    assert driver.wake_stalled(engine, older_than=60) == ["task"]
    assert engine.redis.llen("task") == 1  # a task job on the broker
    # One per heartbeat timeout at most, whichever worker's sweeper looks.
    assert driver.wake_stalled(driver.Cluster(engine.config), older_than=60) == []
    assert engine.redis.llen("task") == 1


def test_tasks_are_not_left_waiting_when_the_registry_knows_no_worker(
    engine: driver.Cluster,
) -> None:
    """Without the workers' registry (a state server that lost it), every ready task
    gets a task job: none of them waits for another to end."""
    assert not engine.redis.smembers(rs.WORKERS)  # no worker registered in this database
    run_id = start_run(engine, "engine_state")
    driver.dag_job(engine, run_id, "main")
    begin(engine, run_id, "first")
    progress = succeed(engine, run_id, "first")
    engine.redis.delete("task")
    closing.carry_out(engine, run_id, "main", progress, pulling="task")
    assert engine.redis.llen("task") == 1  # left and right ready: this process runs one


# -- 6. end to end -------------------------------------------------------------------------
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
