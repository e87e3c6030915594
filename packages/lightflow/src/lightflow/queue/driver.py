"""The distributed engine: short, stateless jobs that carry a run through Redis state.

There is no long-running manager. Each job loads the state it needs from Redis,
advances the :class:`~lightflow.engine.DagRun` state machine, saves it with an
optimistic transaction and sends the jobs that became ready:

* ``lightflow.workflow`` (workflow queue): opens the run's store document, writes the
  parameters and starts the autostart DAG instances.
* ``lightflow.dag`` (the DAG's queue): starts one DAG instance (its start tasks).
* ``lightflow.task`` (the task's queue): marks the task running, composes its input
  from its predecessors' stored outputs, runs it, stores its output and advances the
  DAG at once, sending the successors that became ready. A finished task therefore
  wakes its successors in the same job: one broker round trip per hop, no polling.

When the last task of an instance finishes, the same job records the DAG's end and,
if it was the last DAG, the workflow's. See ``docs/architecture.md`` for who
acknowledges what and what is re-run after a crash.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import cloudpickle

from ..config import redact_url
from ..engine.dag_run import DagRun, DagSpec, Outcome, Step, TaskState
from ..events import EventKind, RunEvent
from ..exceptions import ConfigError, LightflowError, SignalError, StoreError
from ..execution import TaskOutcome, compose_input, execute_task, initial_data
from ..models.context import TaskContext
from ..models.dag import Dag
from ..models.task_data import MultiTaskData
from ..records import RunRecorder
from ..signal import TaskSignal, stop_dag_reason, stop_workflow_reason
from ..store.base import DATA, META, DataStore, DataStoreDocument
from ..workflows import Workflow
from . import state as rs
from .app import DEFAULT_BROKER, WORKFLOW_QUEUE, create_app
from .publish import publish_job

if TYPE_CHECKING:
    import redis
    from celery import Celery

    from ..config import Config

logger = logging.getLogger("lightflow.worker")

START = "^start"  # pseudo-predecessor holding an instance's start data
META_WAIT = 10.0  # seconds a META read waits at most for another process's batch
WORKFLOW_JOB, DAG_JOB, TASK_JOB = "lightflow.workflow", "lightflow.dag", "lightflow.task"


def state_url(config: Config) -> str:
    """The Redis URL holding run state: ``signal`` settings, else a Redis broker."""
    signal = config.signal or {}
    if signal.get("url"):
        return str(signal["url"])
    if signal.get("host"):  # the 1.x layout
        password = signal.get("password")
        auth = f":{quote(str(password), safe='')}@" if password else ""
        scheme = "rediss" if signal.get("ssl") else "redis"
        return (
            f"{scheme}://{auth}{signal['host']}:{signal.get('port', 6379)}/"
            f"{signal.get('database', 0)}"
        )
    broker = str(config.celery.get("broker_url", DEFAULT_BROKER))
    if broker.startswith(("redis://", "rediss://")):
        return broker
    raise ConfigError(
        f"the broker ({redact_url(broker)}) is not Redis, so set the Redis server that "
        "holds run state: signal.url (or signal.host/port) in lightflow.cfg"
    )


def store_settings(config: Config) -> dict[str, Any]:
    """The ``store`` section checked against what the MongoDB store accepts.

    Checked on the client, so a typo fails ``workflow start`` instead of every job.

    Raises:
        ConfigError: The section has a key the store does not know.
    """
    import inspect

    from ..store.mongo import MongoDataStore

    settings = dict(config.store or {})
    accepted = [name for name in inspect.signature(MongoDataStore).parameters]
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown store setting '{unknown[0]}' in lightflow.cfg; the store accepts: "
            f"{', '.join(accepted)}"
        )
    return settings


def create_store(config: Config) -> DataStore:
    """The MongoDB store from the ``store`` section (1.x keys or a ``uri``)."""
    from ..store.mongo import MongoDataStore

    return MongoDataStore(**store_settings(config))


class Cluster:
    """One process's handles on the broker, the state server and the store.

    Built lazily, so a CLI command only connects to what it uses.
    """

    def __init__(self, config: Config, app: Celery | None = None) -> None:
        self.config = config
        self._app = app
        self._redis: redis.Redis | None = None
        self._store: DataStore | None = None
        self._workflows: dict[str, Workflow] = {}
        self._documents: dict[str, DataStoreDocument] = {}
        self._plans: dict[tuple[str, str], Plan] = {}
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        self._commit: Any = None  # the registered commit script
        self.hostname = socket.gethostname()

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = create_app(self.config)
        return self._app

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            self._redis = rs.connect(state_url(self.config))
        return self._redis

    @property
    def store(self) -> DataStore:
        if self._store is None:
            self._store = create_store(self.config)
        return self._store

    def workflow(self, run_id: str) -> Workflow:
        """The run's workflow, unpickled once per process."""
        with self._lock:
            workflow = self._workflows.get(run_id)
        if workflow is None:
            blob = self.redis.get(rs.run_key(run_id, "workflow"))
            if blob is None:
                raise LightflowError(f"run {run_id} is unknown to the state server")
            try:
                workflow = cloudpickle.loads(blob)
            except Exception as error:  # a module it imports is not installed here
                raise LightflowError(
                    f"the workflow cannot be loaded on worker {self.hostname}/{os.getpid()}: "
                    f"{type(error).__name__}: {error}; make the modules it imports "
                    "importable there (install them, or the worker's 'libraries' setting)"
                ) from None
            with self._lock:
                _remember(self._workflows, run_id, workflow)
        return workflow

    def document(self, run_id: str) -> DataStoreDocument:
        """The run's store document (the handle is cached: no round trip per task)."""
        document = self._documents.get(run_id)
        if document is None:
            document = self.store.get(run_id)
            _remember(self._documents, run_id, document)
        return document

    def plan(self, run_id: str, instance: str, dag_name: str) -> Plan:
        """How a DAG instance is scheduled (cached per process).

        Read from the state server, where :func:`create_instance` put it as plain
        data: whoever advances an instance (a client stopping the run too) needs
        neither the workflow's code nor its dependencies. Runs recorded before plans
        were stored get theirs from the workflow.
        """
        plan = self._plans.get((run_id, instance))
        if plan is None:
            raw = self.redis.get(rs.run_key(run_id, "plan", instance))
            if isinstance(raw, bytes):
                plan = pickle.loads(raw)
            else:
                plan = Plan.of(self.dag(run_id, dag_name), instance)
            _remember(self._plans, (run_id, instance), plan)
        return plan

    def cached_plan(self, run_id: str, instance: str) -> Plan | None:
        """The plan of a DAG instance if this process already has it, else ``None``."""
        return self._plans.get((run_id, instance))

    def workflow_name(self, run_id: str) -> str:
        """The name of the run's workflow, from its record (cached per process)."""
        name = self._names.get(run_id)
        if name is None:
            name = rs.text(self.redis.hget(rs.run_key(run_id), "workflow") or b"")
            _remember(self._names, run_id, name)
        return name

    def commit(
        self, key: str, version_key: str, version: str, state: bytes, writes: _Writes
    ) -> bool:
        """Store a DAG instance's new state with ``writes`` if ``version`` is current."""
        if self._commit is None:
            self._commit = self.redis.register_script(_COMMIT)
        return bool(
            self._commit(keys=[key, version_key], args=[version, state, *writes.arguments()])
        )

    def dag(self, run_id: str, name: str) -> Dag:
        """A DAG of the run by name (workflow DAGs, or ones passed to start_dag)."""
        workflow = self.workflow(run_id)
        if name in workflow.dags:
            return workflow.dags[name]
        blob = self.redis.get(rs.run_key(run_id, "dagdef", name))
        if blob is None:
            raise LightflowError(f"run {run_id} has no DAG named '{name}'")
        dag: Dag = cloudpickle.loads(blob)
        return dag

    def send(self, job: str, args: tuple[Any, ...], queue: str) -> None:
        """Send a job from a worker (through its Celery app)."""
        self.app.send_task(job, args=args, queue=queue)

    def recorder(
        self,
        run_id: str,
        workflow: str,
        events: list[RunEvent] | None = None,
        *,
        deferred: bool = False,
    ) -> RunRecorder:
        """A run recorder writing META and publishing events to Redis.

        With ``events``, events are collected there instead, for the caller to publish
        in a pipeline with other commands (see :func:`_queue_events`); ``deferred``
        holds META writes until the recorder's ``flush``.
        """
        listener = events.append if events is not None else self._publish_listener(run_id)
        return RunRecorder(
            _RecordDocument(self, run_id), workflow, run_id, listener, deferred=deferred
        )

    def _publish_listener(self, run_id: str) -> Callable[[RunEvent], None]:
        def publish(event: RunEvent) -> None:
            pipe = self.redis.pipeline(transaction=False)
            rs.publish_event(pipe, run_id, event.to_dict())
            pipe.execute()

        return publish


class _RunDocument(DataStoreDocument):
    """A run's store document, opened on first use through the process's cache.

    The base of the two views of a run's document the distributed engine hands out;
    they differ only in what happens before a read and around a write.
    """

    def __init__(self, cluster: Cluster, run_id: str) -> None:
        super().__init__(run_id)
        self._cluster = cluster

    def get(self, key: str, default: Any = None, *, section: str = DATA) -> Any:
        self._before_read(section)
        return self._open().get(key, default, section=section)

    def keys(self, key: str | None = None, *, section: str = DATA) -> list[str]:
        self._before_read(section)
        return self._open().keys(key, section=section)

    def set(self, key: str, value: Any, *, section: str = DATA) -> None:
        self._write(lambda document: document.set(key, value, section=section))

    def set_many(self, values: Mapping[str, Any], *, section: str = DATA) -> None:
        self._write(lambda document: document.set_many(values, section=section))

    def push(self, key: str, value: Any, *, section: str = DATA) -> None:
        self._write(lambda document: document.push(key, value, section=section))

    def extend(self, key: str, values: Iterable[Any], *, section: str = DATA) -> None:
        self._write(lambda document: document.extend(key, values, section=section))

    def _open(self) -> DataStoreDocument:
        return self._cluster.document(self.workflow_id)

    def _before_read(self, section: str) -> None:
        """Called before every read (nothing to do by default)."""

    def _write(self, write: Callable[[DataStoreDocument], None]) -> None:
        write(self._open())


class _RecordDocument(_RunDocument):
    """A run's document as the run record writes it.

    Records race with the end of a run: another lane, or the task that a stop request
    interrupted, may finish the run and drop its data while this job still records.
    A write to a document that no longer exists is therefore dropped (the run's data
    was removed on purpose); any other store error still raises.
    """

    def _write(self, write: Callable[[DataStoreDocument], None]) -> None:
        try:
            super()._write(write)
        except StoreError:
            if self._cluster.store.exists(self.workflow_id):
                raise


@dataclass(frozen=True)
class Plan:
    """A DAG instance's scheduling spec and the queue of each of its tasks.

    Plain data (no task objects), stored with the instance so that its state machine
    can be advanced without the workflow (see :meth:`Cluster.plan`).
    """

    spec: DagSpec
    queues: dict[str, str]

    @classmethod
    def of(cls, dag: Dag, instance: str) -> Plan:
        return cls(DagSpec.from_dag(dag, instance), {n: t.queue for n, t in dag.tasks.items()})


def _remember(cache: dict[Any, Any], key: Any, value: Any, size: int = 64) -> None:
    """Insert into a small per-process cache, dropping the oldest entry when full."""
    if len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value


# -- submitting, from the client ---------------------------------------------------------
def submit(
    cluster: Cluster,
    workflow: Workflow,
    arguments: dict[str, Any],
    *,
    queue: str = WORKFLOW_QUEUE,
    keep_data: bool = False,
    run_id: str | None = None,
) -> str:
    """Record a new run and queue its workflow job; return the run id.

    With a ``run_id`` that exists already, nothing is recorded: the run's workflow job
    is queued again if the run is still queued (see :func:`lightflow.api.start_workflow`).

    Raises:
        LightflowError: The workflow cannot be pickled for the workers (nothing queued).
    """
    if run_id is not None and cluster.redis.exists(rs.run_key(run_id)):
        if rs.text(cluster.redis.hget(rs.run_key(run_id), "state") or b"") == "queued":
            _publish_workflow_job(cluster, run_id, queue, forget_on_failure=False)
        return run_id
    blob = workflow.pickled()
    run_id = run_id or uuid.uuid4().hex
    created = rs.now()
    pipe = cluster.redis.pipeline()
    pipe.hset(
        rs.run_key(run_id),
        mapping={
            "workflow": workflow.name,
            "state": "queued",
            "created": created,
            "arguments": json.dumps(arguments, default=repr),
            "queue": queue,
            "keep_data": "1" if keep_data else "0",
            "path": str(workflow.path),
        },
    )
    pipe.zadd(rs.RUNS, {run_id: created})
    pipe.set(rs.run_key(run_id, "workflow"), blob)
    pipe.execute()
    _publish_workflow_job(cluster, run_id, queue, forget_on_failure=True)
    return run_id


def _publish_workflow_job(
    cluster: Cluster, run_id: str, queue: str, *, forget_on_failure: bool
) -> None:
    """Queue a run's workflow job; on failure drop the new run's record if asked."""
    try:
        publish_job(cluster.config, WORKFLOW_JOB, (run_id,), queue)
    except Exception as error:  # any publish failure: nothing was queued
        if forget_on_failure:
            cluster.redis.delete(rs.run_key(run_id), rs.run_key(run_id, "workflow"))
            cluster.redis.zrem(rs.RUNS, run_id)
        broker = redact_url(str(cluster.config.celery.get("broker_url", DEFAULT_BROKER)))
        raise LightflowError(
            f"cannot queue the workflow on the broker at {broker}: {error}; nothing was "
            "queued: check celery.broker_url and that the broker runs"
        ) from None


# -- jobs, on workers --------------------------------------------------------------------
def workflow_job(cluster: Cluster, run_id: str) -> None:
    """Open the run: store document, parameters, autostart DAG instances."""
    client = cluster.redis
    record = rs.read_run(client, run_id)
    if record is None or not _claim(client, run_id, "queued", "running"):
        return  # stopped while queued, or a redelivered job of a started run
    workflow = cluster.workflow(run_id)
    store = cluster.store
    if not store.exists(run_id):
        store.add(workflow_id=run_id)
    document = cluster.document(run_id)
    for key, value in record["arguments"].items():
        document.set(key, value)
    client.hset(rs.run_key(run_id), "started", rs.now())
    cluster.recorder(run_id, workflow.name).workflow_started(record["arguments"])
    dags = workflow.autostart_dags
    if not dags:
        _finish_workflow(cluster, run_id)
    for dag in dags:
        create_instance(cluster, run_id, dag, None)


def create_instance(cluster: Cluster, run_id: str, dag: Dag, data: Any) -> str:
    """Register a new instance of ``dag`` in the run and queue its DAG job."""
    client = cluster.redis
    copy = client.incr(rs.run_key(run_id, "seq", dag.name))
    name = dag.name if copy == 1 else f"{dag.name}:{copy}"
    plan = Plan.of(dag, name)
    spec = plan.spec
    starts = [t for t in spec.order if not spec.predecessors[t]]
    unconsumed = {task: len(successors) for task, successors in spec.successors.items()}
    pipe = client.pipeline()
    pipe.set(rs.run_key(run_id, "plan", name), pickle.dumps(plan, protocol=5))
    if dag.name not in cluster.workflow(run_id).dags:
        pipe.set(rs.run_key(run_id, "dagdef", dag.name), cloudpickle.dumps(dag))
    if data is not None:
        unconsumed[START] = len(starts)
        pipe.set(rs.run_key(run_id, "out", name, START), cloudpickle.dumps(initial_data(data)))
    pipe.set(
        rs.run_key(run_id, "dag", name),
        rs.dump_dag_state(
            {
                "dag": dag.name,
                "machine": DagRun(spec).to_dict(),
                "attempts": {},
                "unconsumed": unconsumed,
                "created": rs.now(),
            }
        ),
    )
    pipe.hset(rs.run_key(run_id, "dags"), name, "")
    job = _job(DAG_JOB, (run_id, name), dag.queue)
    _outbox(pipe, [job])
    pipe.execute()
    _send(cluster, [job])
    return name


def dag_job(cluster: Cluster, run_id: str, instance: str) -> None:
    """Start one DAG instance (idempotent: a redelivered job finds it started)."""
    workflow = cluster.workflow(run_id)
    events: list[RunEvent] = []
    recorder = cluster.recorder(run_id, workflow.name, events=events, deferred=True)
    recorder.dag_started(instance)  # published and queued for META by the commit

    def start(machine: DagRun, _state: dict[str, Any]) -> Step | None:
        if machine.started:
            return None
        stopped = cluster.redis.exists(
            rs.run_key(run_id, "stop"), rs.run_key(run_id, "stop", instance)
        )
        return machine.stop() if stopped else machine.start()

    meta = recorder.take()  # once: a retried commit queues the same values

    def record(writes: _Writes) -> None:
        _queue_events(writes, run_id, events)
        _queue_meta(writes, run_id, meta)

    progress = _advance(cluster, run_id, instance, start, also=record)
    if progress is not None:
        _carry_out(cluster, run_id, instance, progress)


@dataclass
class _Handoff:
    """A ready successor this process runs next, without a trip through the broker."""

    task: str
    attempt: str
    entry: str  # its outbox entry: cleared by its begin, sent by the sweeper if we die first
    snapshot: tuple[bytes, str]  # the state the finish committed
    blobs: dict[str, bytes]  # outputs just stored: its input without reading them back


def task_job(cluster: Cluster, run_id: str, instance: str, task_name: str, attempt: str) -> None:
    """Run one task and advance its DAG with the outcome; then run handed-off successors.

    When a task makes successors ready, one of them that is routed to the queue this
    job came from runs next in this process (the others are sent): a chain moves
    from task to task without a broker round trip, and the successor starts from the
    state and the output this process just committed. Its job stays in the outbox
    until its begin, so a worker that dies in between loses nothing.
    """
    handoff = _run_task(cluster, run_id, instance, task_name, attempt, None)
    while handoff is not None:
        current = handoff
        try:
            handoff = _run_task(cluster, run_id, instance, current.task, current.attempt, current)
        except Exception as error:  # fail the handed-off task, not this job's own
            logger.exception("task_job %s failed in handed-off task %s", run_id, current.task)
            job_failed(cluster, run_id, error, instance, current.task, current.attempt)
            return


def _run_task(
    cluster: Cluster,
    run_id: str,
    instance: str,
    task_name: str,
    attempt: str,
    handoff: _Handoff | None,
) -> _Handoff | None:
    """Run one task attempt; return the successor to run next in this process, if any.

    Few round trips to Redis from one task to the next: the begin (read the state
    and, once this process knows the DAG, the task's input, unless handed over; then
    commit ``running`` with the heartbeat entry and the start event) and the finish
    (commit the outcome with the output, the events, the META entry and the
    successors' jobs, from the state the begin committed); then the successors are
    sent.
    """
    workflow = cluster.workflow(run_id)
    worker = f"{cluster.hostname}/{os.getpid()}"
    running = rs.running_field(run_id, instance, task_name)
    started: list[RunEvent] = []
    start_time = cluster.recorder(run_id, workflow.name, started).task_started(
        instance, task_name, worker
    )
    # "started": a task recorded failed by another process (its worker died) keeps
    # its real duration.
    beat = {"attempt": attempt, "worker": worker, "heartbeat": rs.now(), "started": start_time}
    known = cluster.cached_plan(run_id, instance)
    have = handoff.blobs if handoff is not None else {}
    reads = [] if known is None else _input_keys(run_id, instance, known.spec, task_name)

    def begin(machine: DagRun, state: dict[str, Any]) -> Step | None:
        if (
            state["attempts"].get(task_name) != attempt
            or machine.states[task_name] is not TaskState.QUEUED
            or not machine.task_started(task_name)
        ):
            return None  # superseded by a re-dispatch, already handled, or cancelled
        return Step()

    def mark_running(writes: _Writes) -> None:
        writes.hset(rs.RUNNING, running, json.dumps(beat))
        _queue_events(writes, run_id, started)
        if handoff is not None:
            writes.zrem(rs.OUTBOX, handoff.entry)

    progress = _advance(
        cluster,
        run_id,
        instance,
        begin,
        also=mark_running,
        reads=[key for key in reads if key not in have],
        snapshot=handoff.snapshot if handoff is not None else None,
    )
    if progress is None:
        if handoff is not None:  # cancelled by a stop: nobody is to send it
            cluster.redis.zrem(rs.OUTBOX, handoff.entry)
        return None
    heartbeats.keep_alive(cluster, running, beat)
    task = cluster.dag(run_id, progress.state["dag"]).task(task_name)
    done: Progress | None = None
    following: _Handoff | None = None
    left_to_sweeper = False  # interrupted and not handed back: the sweeper re-queues it
    try:
        blobs = {**have, **progress.values}
        missing = [
            key
            for key in _input_keys(run_id, instance, progress.machine.spec, task_name)
            if key not in blobs
        ]
        if missing:  # first job of the instance in this process, or a join
            blobs.update(zip(missing, cluster.redis.mget(missing), strict=True))
        data = _compose(run_id, instance, progress.machine, task_name, blobs)
        context = TaskContext(
            task_name=task_name,
            dag_name=instance,
            workflow_name=workflow.name,
            workflow_id=run_id,
            worker_hostname=cluster.hostname,
        )
        with task_logging(cluster, run_id, instance, task_name):
            try:
                outcome = execute_task(
                    task,
                    data,
                    _MetaAwareDocument(cluster, run_id),
                    TaskSignal(RedisSignalChannel(cluster, run_id, instance), instance),
                    context,
                    source=workflow.path,
                )
            except SystemExit:  # only the pool process's termination gets through
                left_to_sweeper = True
                done_with = _task_lost(cluster, run_id, instance, task_name, beat, "shut down")
                if done_with:
                    logger.warning(
                        "worker shutting down: task %s/%s %s", instance, task_name, done_with
                    )
                left_to_sweeper = False
                raise
        output = None
        if (
            outcome.state in (TaskState.SUCCEEDED, TaskState.STOPPED)
            and progress.machine.spec.successors[task_name]
        ):
            outcome.data.flatten(in_place=True)
            try:
                output = cloudpickle.dumps(outcome.data)
            except Exception as error:  # the task put something unpicklable in its data
                outcome = TaskOutcome(
                    TaskState.FAILED,
                    outcome.data,
                    message=f"the output data of task '{task_name}' cannot be pickled to "
                    f"pass it on: {type(error).__name__}: {error}; put only picklable "
                    "values in data (paths, arrays, plain objects)",
                )
        # The record of the task's end: its event goes out with the commit, its META
        # entry (held back) after the successors are sent.
        finished: list[RunEvent] = []
        record: list[RunRecorder] = []

        def finish(machine: DagRun, state: dict[str, Any]) -> Step | None:
            if (
                state["attempts"].get(task_name) != attempt
                or machine.states[task_name] is not TaskState.RUNNING
            ):
                return None
            _consume(state, machine.inputs_of(task_name))
            step = _apply_outcome(machine, task_name, outcome)
            finished.clear()
            record[:] = [cluster.recorder(run_id, workflow.name, finished, deferred=True)]
            record[0].task_finished(
                instance,
                task_name,
                machine.states[task_name].value,  # a bad Action(limit=) fails the task
                worker=worker,
                message=outcome.message or machine.errors.get(task_name) or None,
                traceback=outcome.traceback,
                started_at=start_time,
            )
            return step

        def mark_finished(writes: _Writes) -> None:
            writes.hdel(rs.RUNNING, running)
            _queue_events(writes, run_id, finished)
            _queue_meta(writes, run_id, record[0].take())

        outputs = {} if output is None else {rs.run_key(run_id, "out", instance, task_name): output}
        done = _advance(
            cluster,
            run_id,
            instance,
            finish,
            outputs=outputs,
            also=mark_finished,
            snapshot=progress.snapshot,
        )
        if done is not None:
            final = done.machine.states[task_name]
            if final in (TaskState.FAILED, TaskState.ABORTED):
                halt_run(
                    cluster,
                    run_id,
                    Outcome.ABORTED if final is TaskState.ABORTED else Outcome.STOPPED,
                    instance,
                    task_name,
                    outcome.message or done.machine.errors.get(task_name, ""),
                )
            following = _hand_off(done, task.queue, outputs)
            _carry_out(cluster, run_id, instance, done)
    finally:
        # The finishing commit already dropped the registry entry.
        heartbeats.remove(cluster, running, delete=done is None and not left_to_sweeper)
    return following


def _hand_off(done: Progress, queue: str, outputs: dict[str, bytes]) -> _Handoff | None:
    """Take the first ready task routed to ``queue`` out of the jobs to send."""
    for entry in done.jobs:
        name, args, job_queue = json.loads(entry)
        if name == TASK_JOB and job_queue == queue:
            done.jobs.remove(entry)
            return _Handoff(args[2], args[3], entry, done.snapshot, outputs)
    return None


class _MetaAwareDocument(_RunDocument):
    """The ``store`` a task receives on a worker: META reads see every finished record.

    META entries wait in the run's queue for the next batch (see :class:`MetaWriter`),
    but 1.x workflows read their predecessors' entries
    (``log.<dag>.tasks.<task>.duration``). A META read therefore writes the queue out
    first (or waits while another process does).
    """

    def _before_read(self, section: str) -> None:
        if section == META:
            write_meta(self._cluster, self.workflow_id, wait=True)


def _apply_outcome(machine: DagRun, task: str, outcome: TaskOutcome) -> Step:
    if outcome.state is TaskState.SUCCEEDED:
        return machine.task_succeeded(task, outcome.limit)
    if outcome.state is TaskState.STOPPED:
        return machine.task_stopped(task, outcome.skip_successors)
    if outcome.state is TaskState.ABORTED:
        return machine.task_aborted(task, outcome.message)
    return machine.task_failed(task, outcome.message)


# -- the outbox: jobs committed but not yet sent ----------------------------------------
def _job(name: str, args: tuple[str, ...], queue: str) -> str:
    """An outbox entry: the job, its arguments and its queue."""
    return json.dumps([name, list(args), queue])


def _outbox(pipe: Any, jobs: list[str]) -> None:
    """Record jobs in the transaction that makes them due (they are sent right after).

    A worker dying between that commit and the send would otherwise leave the jobs
    unsent and the run waiting forever; :func:`resend_unsent_jobs` sends them.
    """
    if jobs:
        pipe.zadd(rs.OUTBOX, dict.fromkeys(jobs, rs.now()))


def _send(cluster: Cluster, jobs: list[str], pipe: Any = None) -> None:
    """Send outbox entries and clear them (on ``pipe``, if given, for its caller to run)."""
    for entry in jobs:
        name, args, queue = json.loads(entry)
        cluster.send(name, tuple(args), queue)
    if jobs:
        (pipe or cluster.redis).zrem(rs.OUTBOX, *jobs)


def resend_unsent_jobs(cluster: Cluster, older_than: float = 10.0) -> list[str]:
    """Send jobs committed more than ``older_than`` seconds ago but never sent.

    Jobs are idempotent (a DAG job starts an instance once, a task job runs only its
    current attempt), so a job that was in fact sent just before its sender died and
    is now sent twice runs once.
    """
    entries = [
        rs.text(entry)
        for entry in cluster.redis.zrangebyscore(rs.OUTBOX, "-inf", rs.now() - older_than)
    ]
    _send(cluster, entries)
    return entries


# -- advancing a DAG instance ------------------------------------------------------------
#: Commits a DAG instance's new state if its version is still the one read, together
#: with every write that belongs to the transition (ARGV: version, state, then each
#: command as its argument count followed by its arguments). One round trip, no lock:
#: a killed worker leaves nothing behind, and a conflicting writer just reads again.
_COMMIT = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2])
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
"""


class _Writes:
    """Redis commands collected to run atomically with a state transition.

    Offers the few pipeline methods the engine queues (so helpers that take a pipeline,
    such as :func:`_queue_events` and :func:`_outbox`, accept it too).
    """

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []
        self.meta = False  # whether META entries were queued (see _queue_meta)

    def set(self, key: str, value: Any) -> None:
        self.commands.append(("SET", key, value))

    def delete(self, key: str) -> None:
        self.commands.append(("DEL", key))

    def hset(self, key: str, field_name: str, value: Any) -> None:
        self.commands.append(("HSET", key, field_name, value))

    def hsetnx(self, key: str, field_name: str, value: Any) -> None:
        self.commands.append(("HSETNX", key, field_name, value))

    def hdel(self, key: str, field_name: str) -> None:
        self.commands.append(("HDEL", key, field_name))

    def zrem(self, key: str, member: str) -> None:
        self.commands.append(("ZREM", key, member))

    def zadd(self, key: str, mapping: Mapping[str, float]) -> None:
        pairs = [item for member, score in mapping.items() for item in (score, member)]
        self.commands.append(("ZADD", key, *pairs))

    def rpush(self, key: str, *values: Any) -> None:
        self.commands.append(("RPUSH", key, *values))

    def publish(self, channel: str, message: Any) -> None:
        self.commands.append(("PUBLISH", channel, message))

    def xadd(self, key: str, fields: Mapping[str, Any], maxlen: int) -> None:
        pairs = [item for name, value in fields.items() for item in (name, value)]
        self.commands.append(("XADD", key, "MAXLEN", "~", maxlen, "*", *pairs))

    def arguments(self) -> list[Any]:
        """The commands flattened for :data:`_COMMIT`."""
        flat: list[Any] = []
        for command in self.commands:
            flat.append(len(command))
            flat.extend(command)
        return flat


@dataclass
class Progress:
    """A committed state-machine step and the state it produced."""

    machine: DagRun
    state: dict[str, Any]
    step: Step
    jobs: list[str] = field(default_factory=list)  # outbox entries of the ready tasks
    #: The committed state and its version: the next transition of the same job starts
    #: from it instead of reading it again (and reads again only if someone else wrote).
    snapshot: tuple[bytes, str] = (b"", "0")
    #: Values of the extra keys read with the state (``reads`` of :func:`_advance`).
    values: dict[str, Any] = field(default_factory=dict)
    #: Whether the commit queued META entries (see :class:`MetaWriter`).
    meta: bool = False


def _advance(
    cluster: Cluster,
    run_id: str,
    instance: str,
    event: Callable[[DagRun, dict[str, Any]], Step | None],
    *,
    outputs: Mapping[str, bytes] | None = None,
    also: Callable[[_Writes], None] | None = None,
    reads: Iterable[str] = (),
    snapshot: tuple[bytes, str] | None = None,
) -> Progress | None:
    """Apply ``event`` to the instance's machine and commit it (compare-and-set).

    ``event`` returns ``None`` to change nothing. Skipped tasks pass their input on,
    so their outputs are composed and stored in the same commit; ready tasks get fresh
    attempt ids. ``outputs`` (key -> pickled output) are written with the transition,
    so no successor can be sent before its input exists, and skipped successors read
    them; ``also`` may add further writes to the commit. ``reads`` are read in the same
    round trip as the state (see :attr:`Progress.values`); with a ``snapshot`` of a
    previous commit the first try reads nothing.
    """
    key = rs.run_key(run_id, "dag", instance)
    version_key = rs.run_key(run_id, "dagv", instance)
    extra = list(reads)
    values: dict[str, Any] = {}
    while True:
        if snapshot is None:
            pipe = cluster.redis.pipeline(transaction=True)
            pipe.get(key)
            pipe.get(version_key)
            for name in extra:
                pipe.get(name)
            raw, version, *fetched = pipe.execute()
            values.update(zip(extra, fetched, strict=True))
            extra = []
            if raw is None:
                raise LightflowError(f"run {run_id} has no DAG instance '{instance}'")
            current = (raw, rs.text(version) if version is not None else "0")
        else:
            current, snapshot = snapshot, None
        state = rs.load_dag_state(current[0])
        plan = cluster.plan(run_id, instance, state["dag"])
        machine = DagRun.from_dict(plan.spec, state["machine"])
        step = event(machine, state)
        if step is None:
            return None
        writes = _Writes()
        written: dict[str, bytes] = dict(outputs or {})
        for out_key, blob in written.items():
            writes.set(out_key, blob)
        for task in step.skipped:
            blobs = {
                name: written.get(name) or cluster.redis.get(name)
                for name in _input_keys(run_id, instance, machine.spec, task)
            }
            data = _compose(run_id, instance, machine, task, blobs)
            _consume(state, machine.inputs_of(task))
            if machine.spec.successors[task]:
                data.flatten(in_place=True)
                out_key = rs.run_key(run_id, "out", instance, task)
                written[out_key] = cloudpickle.dumps(data)
                writes.set(out_key, written[out_key])
        jobs = []
        for task in step.ready:
            state["attempts"][task] = attempt = uuid.uuid4().hex
            jobs.append(_job(TASK_JOB, (run_id, instance, task, attempt), plan.queues[task]))
        state["machine"] = machine.to_dict()
        consumed = [n for n, count in state["unconsumed"].items() if count <= 0]
        for name in consumed:
            del state["unconsumed"][name]
            writes.delete(rs.run_key(run_id, "out", instance, name))
        if also is not None:
            also(writes)
        _record_step(cluster, run_id, instance, machine, state, step, writes)
        _outbox(writes, jobs)
        encoded = rs.dump_dag_state(state)
        if cluster.commit(key, version_key, current[1], encoded, writes):
            snapshot = (encoded, str(int(current[1]) + 1))
            return Progress(machine, state, step, jobs, snapshot, values, writes.meta)


def _record_step(
    cluster: Cluster,
    run_id: str,
    instance: str,
    machine: DagRun,
    state: dict[str, Any],
    step: Step,
    writes: _Writes,
) -> None:
    """Add what a step tells observers to its commit: events and META entries.

    Events of skipped and cancelled tasks and of the DAG's end, and the DAG's outcome in
    the run's list of instances, are published by the commit that decides them, so no
    observer sees the run end before them and a crash cannot separate them from it.
    """
    if not (step.skipped or step.cancelled or step.done):
        return
    events: list[RunEvent] = []
    record = cluster.recorder(run_id, cluster.workflow_name(run_id), events, deferred=True)
    for task in step.skipped:
        record.task_not_run(instance, task, TaskState.SKIPPED.value)
    for task in step.cancelled:
        record.task_not_run(instance, task, TaskState.CANCELLED.value)
    if step.done:
        outcome = (machine.outcome or Outcome.STOPPED).value
        record.dag_finished(instance, outcome, started_at=state["created"])
        writes.hset(rs.run_key(run_id, "dags"), instance, outcome)
        writes.publish(rs.run_key(run_id, "dagdone"), instance)
    _queue_events(writes, run_id, events)
    _queue_meta(writes, run_id, record.take())


def _consume(state: dict[str, Any], predecessors: tuple[tuple[str, str | None], ...]) -> None:
    names = [name for name, _slot in predecessors] or [START]
    for name in names:
        if name in state["unconsumed"]:
            state["unconsumed"][name] -= 1


def _input_keys(run_id: str, instance: str, spec: DagSpec, task: str) -> list[str]:
    """The keys of the stored outputs a task's input is composed from."""
    names = [name for name, _slot in spec.predecessors[task]] or [START]
    return [rs.run_key(run_id, "out", instance, name) for name in names]


def _compose(
    run_id: str, instance: str, machine: DagRun, task: str, blobs: Mapping[str, Any]
) -> MultiTaskData:
    """A task's input from the stored outputs of its predecessors (``blobs`` by key)."""
    predecessors = machine.inputs_of(task)
    if not predecessors:
        blob = blobs.get(rs.run_key(run_id, "out", instance, START))
        return initial_data(None) if blob is None else cloudpickle.loads(blob)
    outputs: dict[str, MultiTaskData] = {}
    for name, _slot in predecessors:
        blob = blobs.get(rs.run_key(run_id, "out", instance, name))
        if blob is None:
            raise LightflowError(
                f"the output of task '{name}' in DAG '{instance}' is missing from the "
                "state server; was the Redis server restarted?"
            )
        outputs[name] = cloudpickle.loads(blob)
    # Each blob was unpickled for this task alone: hand every dataset over uncopied.
    return compose_input(predecessors, outputs, handed_over=set(outputs))


def _queue_events(pipe: Any, run_id: str, events: list[RunEvent]) -> None:
    """Queue run events on a pipeline (or a commit's writes)."""
    for event in events:
        rs.publish_event(pipe, run_id, event.to_dict())


def _queue_meta(writes: _Writes, run_id: str, values: dict[str, Any]) -> None:
    """Queue META values (dot-notation keys) for the store with a commit."""
    if values:
        writes.rpush(rs.run_key(run_id, "meta"), pickle.dumps(values))
        writes.meta = True


def _carry_out(
    cluster: Cluster, run_id: str, instance: str, progress: Progress, pipe: Any = None
) -> None:
    """Send the ready tasks, write the step's META entries, finish the run if it ended.

    The outbox is cleared on ``pipe`` if one is given (the caller runs it later).
    """
    _send(cluster, progress.jobs, pipe)
    if progress.meta:
        meta_writer.request(cluster, run_id)
    if progress.step.done:
        _finish_workflow(cluster, run_id)


# -- stopping and finishing --------------------------------------------------------------
def halt_run(
    cluster: Cluster,
    run_id: str,
    outcome: Outcome,
    dag: str | None = None,
    task: str | None = None,
    message: str = "",
) -> None:
    """Stop every DAG instance of a run; the first failure is kept as the run's error."""
    client = cluster.redis
    key = rs.run_key(run_id)
    if task is not None and client.hsetnx(key, "failed_task", task):
        client.hset(key, mapping={"failed_dag": dag or "", "error": message})
    elif message:
        client.hsetnx(key, "error", message)
    client.set(rs.run_key(run_id, "stop"), outcome.value)
    if _claim(client, run_id, "queued", Outcome.STOPPED.value):
        _close_record(cluster, run_id, Outcome.STOPPED.value, started=False)
        return
    for raw in client.hkeys(rs.run_key(run_id, "dags")):
        stop_instance(cluster, run_id, rs.text(raw), outcome)


def stop_instance(
    cluster: Cluster,
    run_id: str,
    instance: str,
    outcome: Outcome = Outcome.STOPPED,
    reason: str = "",
) -> None:
    """Halt one DAG instance: nothing more is queued, running tasks see is_stopped.

    The flag ``is_stopped`` reads is set by the commit that halts the instance, so a
    task that ends because it saw the flag always finds its DAG halted. ``reason``
    becomes the run's error (what ``workflow status`` says it stopped for) unless it
    has one; only a commit that halts writes it, so an instance already done leaves a
    successful run without one.
    """

    def stop(machine: DagRun, _state: dict[str, Any]) -> Step | None:
        return None if machine.done else machine.stop(outcome)

    def flag(writes: _Writes) -> None:
        writes.set(rs.run_key(run_id, "stop", instance), outcome.value)
        if reason:
            writes.hsetnx(rs.run_key(run_id), "error", reason)

    progress = _advance(cluster, run_id, instance, stop, also=flag)
    if progress is not None:
        _carry_out(cluster, run_id, instance, progress)


def _finish_workflow(cluster: Cluster, run_id: str) -> None:
    """Close the run if every DAG instance is done (exactly once)."""
    client = cluster.redis
    outcomes = [rs.text(v) for v in client.hvals(rs.run_key(run_id, "dags"))]
    if "" in outcomes:
        return
    if client.hexists(rs.run_key(run_id), "internal_error"):  # see job_failed
        outcomes.append(Outcome.FAILED.value)
    worst = Outcome.worst(outcomes)
    if _claim(client, run_id, "running", worst.value):
        _close_record(cluster, run_id, worst.value, started=True)


def _close_record(cluster: Cluster, run_id: str, outcome: str, *, started: bool) -> None:
    client = cluster.redis
    record = rs.read_run(client, run_id) or {}
    client.hset(rs.run_key(run_id), "ended", rs.now())
    if started:
        write_meta(cluster, run_id, wait=True)  # every entry before the run's own end
        recorder = cluster.recorder(run_id, record.get("workflow", ""))
        recorder.workflow_finished(
            outcome, record.get("error") or None, started_at=record.get("started")
        )
    else:  # stopped while queued: no store document, just the event
        pipe = client.pipeline()
        rs.publish_event(
            pipe,
            run_id,
            RunEvent(
                EventKind.WORKFLOW_FINISHED,
                run_id,
                record.get("workflow", ""),
                rs.now(),
                outcome=outcome,
            ).to_dict(),
        )
        pipe.execute()
    _clean_up(cluster, run_id, keep_data=bool(record.get("keep_data")), started=started)


def _clean_up(cluster: Cluster, run_id: str, *, keep_data: bool, started: bool) -> None:
    """Drop the bulky per-run keys; keep the record, events and logs for status."""
    client = cluster.redis
    parts = (rs.run_key(run_id, "out", ""), rs.run_key(run_id, "plan", ""))
    keys = [
        key
        for key in map(rs.text, client.scan_iter(match=rs.run_key(run_id, "*"), count=500))
        if key.startswith(parts)
    ]
    keys += [rs.run_key(run_id, "workflow"), rs.run_key(run_id, "meta")]
    client.delete(*keys)
    if started and not keep_data:
        cluster.store.remove(run_id)


def _claim(client: redis.Redis, run_id: str, expected: str, new: str) -> bool:
    """Atomically move the run's state from ``expected`` to ``new``."""
    script = client.register_script(
        "if redis.call('HGET', KEYS[1], 'state') == ARGV[1] then "
        "redis.call('HSET', KEYS[1], 'state', ARGV[2]) return 1 end return 0"
    )
    return bool(script(keys=[rs.run_key(run_id)], args=[expected, new]))


def job_failed(
    cluster: Cluster,
    run_id: str,
    error: BaseException,
    instance: str | None = None,
    task: str | None = None,
    attempt: str | None = None,
) -> None:
    """A job died of an internal error (store or state server gone, a bug): record it.

    The task (or, for a workflow or DAG job, the DAG or run) is failed with the error
    and the run halted, so a broken job never leaves a run ``running`` forever. Best
    effort: if the state server itself is unreachable there is nothing to record in.
    """
    if isinstance(error, LightflowError):  # says what is wrong and what to do
        message = str(error)
    else:
        job = "task" if task else "DAG" if instance else "workflow"
        message = f"internal error in the {job} job: {type(error).__name__}: {error}"
    client = cluster.redis
    if instance is not None:

        def fail(machine: DagRun, state: dict[str, Any]) -> Step | None:
            if task is None:
                return None if machine.done else machine.stop(Outcome.FAILED)
            if state["attempts"].get(task) != attempt:
                return None
            if machine.states[task] is TaskState.QUEUED and not machine.task_started(task):
                return None
            if machine.states[task] is not TaskState.RUNNING:
                return None
            return machine.task_failed(task, message)

        progress = _advance(cluster, run_id, instance, fail)
        halt_run(cluster, run_id, Outcome.STOPPED, instance, task or "", message)
        if progress is not None:
            _carry_out(cluster, run_id, instance, progress)
        return
    client.hsetnx(rs.run_key(run_id), "error", message)
    client.hset(rs.run_key(run_id), "internal_error", "1")  # the run ends failed
    if _claim(client, run_id, "queued", Outcome.FAILED.value):
        _close_record(cluster, run_id, Outcome.FAILED.value, started=False)
        return
    halt_run(cluster, run_id, Outcome.STOPPED)
    if not client.hlen(rs.run_key(run_id, "dags")) and _claim(
        client, run_id, "running", Outcome.FAILED.value
    ):
        _close_record(cluster, run_id, Outcome.FAILED.value, started=False)


# -- signals -----------------------------------------------------------------------------
class RedisSignalChannel:
    """Signals between tasks and runs across processes and hosts, through Redis.

    ``dag`` is the DAG instance of the task the channel serves (named in reasons).
    """

    def __init__(self, cluster: Cluster, run_id: str, dag: str) -> None:
        self._cluster = cluster
        self._run_id = run_id
        self._dag = dag

    def start_dag(self, dag: Dag | str, data: Any, requested_by: str) -> str:
        workflow = self._cluster.workflow(self._run_id)
        if isinstance(dag, str):
            if dag not in workflow.dags:
                known = ", ".join(workflow.dags)
                raise SignalError(
                    f"start_dag: no DAG named '{dag}' in workflow '{workflow.name}' (DAGs: {known})"
                )
            dag = workflow.dags[dag]
        if self._cluster.redis.exists(rs.run_key(self._run_id, "stop")):
            raise SignalError("start_dag: the workflow run is stopping")
        return create_instance(self._cluster, self._run_id, dag, data)

    def join_dags(self, names: list[str] | None, requested_by: str) -> bool:
        client = self._cluster.redis
        dags_key = rs.run_key(self._run_id, "dags")
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(rs.run_key(self._run_id, "dagdone"))
        try:
            while True:
                states = {rs.text(k): rs.text(v) for k, v in client.hgetall(dags_key).items()}
                wanted = (
                    names
                    if names is not None
                    else [name for name in states if name != requested_by]
                )
                if requested_by in wanted:
                    raise SignalError(
                        f"join_dags: DAG '{requested_by}' cannot wait for "
                        "itself to finish; join other DAGs only"
                    )
                unknown = [name for name in wanted if name not in states]
                if unknown:
                    raise SignalError(
                        f"join_dags: no DAG instance named '{unknown[0]}' in "
                        "this run; pass names returned by start_dag"
                    )
                if all(states[name] for name in wanted):
                    return all(states[name] == Outcome.SUCCEEDED.value for name in wanted)
                # Woken by the next finished DAG; the timeout only bounds a lost message.
                pubsub.get_message(timeout=1.0)
        finally:
            pubsub.close()

    def stop_dag(self, name: str) -> bool:
        if not self._cluster.redis.hexists(rs.run_key(self._run_id, "dags"), name):
            return False
        stop_instance(self._cluster, self._run_id, name, reason=stop_dag_reason(name, self._dag))
        return True

    def stop_workflow(self, requested_by: str) -> None:
        halt_run(
            self._cluster,
            self._run_id,
            Outcome.STOPPED,
            message=stop_workflow_reason(requested_by),
        )

    def is_stopped(self, dag_name: str) -> bool:
        # Only the instance's flag: the run's own is set before its instances are halted.
        return bool(self._cluster.redis.exists(rs.run_key(self._run_id, "stop", dag_name)))


# -- META entries, written in batches ----------------------------------------------------
#: Releases a lock only if this process still holds it (it may have expired).
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
#: Drops the entries a writer has stored, if it still holds the queue (else another
#: writer took over and stores them again: harmless) and extends its hold.
_TRIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('LTRIM', KEYS[2], ARGV[2], -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
META_BATCH = 500  # queued entries merged into one store update at most
#: Milliseconds a writer holds a run's META queue per batch: well below META_WAIT, so a
#: writer that died holding it cannot make a reader or the run's end give up.
META_LOCK_TTL = 5_000


def write_meta(cluster: Cluster, run_id: str, *, wait: bool = False) -> None:
    """Write the run's queued META entries to the store, oldest first, in batches.

    Each commit that records something queues its META values in ``lf:run:<id>:meta``
    (in the commit, so a crash cannot lose them); one process at a time drains the
    queue into single store updates. Without ``wait`` the call returns at once when
    another process is draining: that process looks at the queue again after letting
    go, so nothing queued is left behind. With ``wait`` (a META read, the run's end)
    it returns once the queue is empty, or after :data:`META_WAIT` seconds (the lock
    of a writer that died expires well before).
    """
    client = cluster.redis
    queue, lock = rs.run_key(run_id, "meta"), rs.run_key(run_id, "meta", "lock")
    token = uuid.uuid4().hex
    deadline = time.monotonic() + META_WAIT
    while client.llen(queue):
        if not client.set(lock, token, nx=True, px=META_LOCK_TTL):
            if not wait or time.monotonic() > deadline:
                return
            time.sleep(0.002)
            continue
        try:
            while entries := client.lrange(queue, 0, META_BATCH - 1):
                values: dict[str, Any] = {}
                for entry in cast("list[bytes]", entries):  # the client returns bytes
                    values.update(pickle.loads(entry))
                _RecordDocument(cluster, run_id).set_many(values, section=META)
                if not client.eval(_TRIM, 2, lock, queue, token, len(entries), META_LOCK_TTL):
                    break  # held too long: the writer that took over goes on
        finally:
            client.eval(_UNLOCK, 1, lock, token)


class _BackgroundWork:
    """Work done by one daemon thread per process (a forked pool process starts its own).

    Subclasses implement :meth:`_run` and call :meth:`_ensure_thread` whenever they
    queue work, holding their own lock.
    """

    THREAD_NAME = "lightflow-background"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _ensure_thread(self) -> None:
        if self._thread is None or self._pid != os.getpid():  # new, or forked
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, daemon=True, name=self.THREAD_NAME)
            self._thread.start()

    def _run(self) -> None:
        raise NotImplementedError


class MetaWriter(_BackgroundWork):
    """Writes runs' queued META entries from a background thread, a few at a time.

    A finished job asks for its run's queue to be written and returns; the thread
    waits :attr:`DELAY` seconds first, so the entries of tasks that finish close
    together (a fan-out) go to the store in one update instead of one each. A META
    read or the run's end writes the queue at once (:func:`write_meta`).
    """

    DELAY = 0.05
    THREAD_NAME = "lightflow-meta"

    def __init__(self) -> None:
        super().__init__()
        self._due: dict[str, tuple[Cluster, float]] = {}
        self._wake = threading.Condition()

    def request(self, cluster: Cluster, run_id: str) -> None:
        """Have the run's queue written within :attr:`DELAY` seconds."""
        with self._wake:
            self._due.setdefault(run_id, (cluster, time.monotonic() + self.DELAY))
            self._ensure_thread()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due:
                    self._wake.wait()
                now = time.monotonic()
                ready = {run: cluster for run, (cluster, due) in self._due.items() if due <= now}
                if not ready:
                    self._wake.wait(min(due for _cluster, due in self._due.values()) - now)
                    continue
                for run_id in ready:
                    del self._due[run_id]
            for run_id, cluster in ready.items():
                try:
                    write_meta(cluster, run_id)
                except Exception:  # written by the next batch, a META read or the run's end
                    logger.warning("could not write META entries of run %s", run_id, exc_info=True)


meta_writer = MetaWriter()


# -- heartbeats and recovery -------------------------------------------------------------
class Heartbeats(_BackgroundWork):
    """Marks this process's running tasks alive in ``lf:running`` every few seconds."""

    INTERVAL = 2.0
    THREAD_NAME = "lightflow-heartbeat"

    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[str, tuple[Cluster, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def keep_alive(self, cluster: Cluster, field_name: str, entry: dict[str, Any]) -> None:
        """Keep refreshing a running task's registry entry (written by its begin commit)."""
        with self._lock:
            self._entries[field_name] = (cluster, entry)
            self._ensure_thread()

    def remove(self, cluster: Cluster, field_name: str, *, delete: bool = True) -> None:
        """Stop beating for a task; ``delete`` also drops its registry entry."""
        with self._lock:
            self._entries.pop(field_name, None)
        if delete:
            cluster.redis.hdel(rs.RUNNING, field_name)

    def _run(self) -> None:
        while True:
            time.sleep(self.INTERVAL)
            with self._lock:
                entries = list(self._entries.items())
            for field_name, (cluster, entry) in entries:
                entry["heartbeat"] = rs.now()
                try:
                    cluster.redis.hset(rs.RUNNING, field_name, json.dumps(entry))
                except Exception:
                    continue


heartbeats = Heartbeats()


def recover_lost_tasks(cluster: Cluster, dead_after: float = 15.0) -> list[str]:
    """Re-queue (or fail) tasks whose worker stopped sending heartbeats.

    Returns the ``run|instance|task`` entries handled. Safe to call from every worker:
    the compare-and-set lets exactly one of them act on each lost task.
    """
    client = cluster.redis
    handled = []
    for raw_field, raw in client.hgetall(rs.RUNNING).items():
        entry = json.loads(raw)
        if rs.now() - entry["heartbeat"] < dead_after:
            continue
        field_name = rs.text(raw_field)
        run_id, instance, task_name = field_name.split("|", 2)
        client.hdel(rs.RUNNING, field_name)
        if _task_lost(cluster, run_id, instance, task_name, entry):
            handled.append(field_name)
    return handled


def _task_lost(
    cluster: Cluster,
    run_id: str,
    instance: str,
    task_name: str,
    entry: Mapping[str, Any],
    what: str = "died",
) -> str:
    """Queue a running task whose worker went away (``what`` it did) again.

    ``entry`` is the task's ``lf:running`` entry (attempt, worker, start time). A task
    that is not safe to re-run fails its run with a record instead. Returns what was
    done (``"queued again"``, ``"failed: not safe to re-run"``), or ``""`` if the
    attempt was no longer the running one.
    """
    attempt, worker = entry["attempt"], entry["worker"]
    try:
        rerun = cluster.dag(run_id, _dag_name(cluster, run_id, instance)).task(task_name).rerun_safe
    except LightflowError:
        return ""
    reason = (
        f"worker {worker} {what} while task '{task_name}' ran; the task is not marked "
        "safe to re-run (rerun_safe = False)"
    )

    def lost(machine: DagRun, state: dict[str, Any]) -> Step | None:
        if (
            state["attempts"].get(task_name) != attempt
            or machine.states[task_name] is not TaskState.RUNNING
        ):
            return None
        return machine.task_lost(task_name) if rerun else machine.task_failed(task_name, reason)

    progress = _advance(cluster, run_id, instance, lost)
    if progress is None:
        return ""
    if not rerun:
        cluster.recorder(run_id, cluster.workflow(run_id).name).task_finished(
            instance,
            task_name,
            TaskState.FAILED.value,
            worker=worker,
            message=reason,
            started_at=entry.get("started"),
        )
        halt_run(cluster, run_id, Outcome.STOPPED, instance, task_name, reason)
    _carry_out(cluster, run_id, instance, progress)
    return "queued again" if rerun else "failed: not safe to re-run"


def _dag_name(cluster: Cluster, run_id: str, instance: str) -> str:
    raw = cluster.redis.get(rs.run_key(run_id, "dag", instance))
    if raw is None:
        raise LightflowError(f"run {run_id} has no DAG instance '{instance}'")
    return str(rs.load_dag_state(cast(bytes, raw))["dag"])  # the client returns bytes


# -- task output in the worker log and the run's log -------------------------------------
@dataclass
class _RunningTask:
    """A task running in this process, for tagging what its threads write."""

    tag: tuple[str, str, str]  # run id, DAG instance, task
    cluster: Cluster
    #: Threads alive when the task started: none of them was started by the task.
    older: set[threading.Thread]


class task_logging:
    """While a task runs, tag log records with run/DAG/task and keep them per run.

    Records from threads the task started (a BashTask's output callbacks) count as
    the task's too when it is the only task running in the process, as it always is
    in a prefork pool process; a thread that was there before the task (one an
    earlier task left running) is not the task's. Lines reach the run's log within
    :attr:`LogShipper.INTERVAL` seconds (so ``workflow logs --follow`` shows a long
    task as it goes), and all of them before the task's end is recorded.
    """

    def __init__(self, cluster: Cluster, run_id: str, instance: str, task: str) -> None:
        self._tag = (run_id, instance, task)
        self._cluster = cluster

    def __enter__(self) -> None:
        entry = _RunningTask(self._tag, self._cluster, set(threading.enumerate()))
        with _running_lock:
            _running_tasks[threading.get_ident()] = entry

    def __exit__(self, *exc: object) -> None:
        for stream in (sys.stdout, sys.stderr):  # a last line without its newline
            stream.flush()
        with _running_lock:
            _running_tasks.pop(threading.get_ident(), None)
        log_shipper.flush()


#: The tasks running in this process, by the thread running each.
_running_tasks: dict[int, _RunningTask] = {}
_running_lock = threading.Lock()


def _current_task() -> _RunningTask | None:
    entry = _running_tasks.get(threading.get_ident())
    if entry is None:  # perhaps a thread the task started
        running = list(_running_tasks.values())  # one copy: tasks come and go meanwhile
        if len(running) == 1 and threading.current_thread() not in running[0].older:
            entry = running[0]
    return entry


def current_task_tag() -> tuple[str, str, str] | None:
    """``(run_id, dag, task)`` of the task this thread works for, if any."""
    entry = _current_task()
    return entry.tag if entry is not None else None


def keep_log_line(line: str) -> None:
    """Queue a formatted log line for the run log of the task this thread works for."""
    entry = _current_task()
    if entry is not None:
        log_shipper.add(entry.cluster, entry.tag[0], line)


class LogShipper(_BackgroundWork):
    """Appends tasks' log lines to their runs' logs (``lf:run:<id>:logs``) in batches.

    A line is written by a background thread at most :attr:`INTERVAL` seconds after
    the task wrote it, together with every other line written meanwhile: one round
    trip per batch, not per line. A task's end flushes at once. One flush at a time, so
    a run's lines keep their order.
    """

    INTERVAL = 0.25
    THREAD_NAME = "lightflow-logs"

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[str, tuple[Cluster, list[str]]] = {}
        self._wake = threading.Condition()
        self._flushing = threading.Lock()

    def add(self, cluster: Cluster, run_id: str, line: str) -> None:
        """Queue a line of a run; it is written within :attr:`INTERVAL` seconds."""
        with self._wake:
            self._pending.setdefault(run_id, (cluster, []))[1].append(line)
            self._ensure_thread()
            self._wake.notify()

    def flush(self) -> None:
        """Write every queued line now (the run's log keeps the newest ones)."""
        with self._flushing:
            with self._wake:
                pending, self._pending = self._pending, {}
            while pending:
                run_id, (cluster, lines) = next(iter(pending.items()))
                key = rs.run_key(run_id, "logs")
                pipe = cluster.redis.pipeline(transaction=False)
                for line in lines:
                    pipe.xadd(key, {"line": line}, maxlen=rs.LOG_LINES_KEPT, approximate=True)
                try:
                    pipe.execute()
                except Exception:  # keep what is unsent, ahead of newer lines, for next time
                    with self._wake:
                        for unsent, (owner, older) in pending.items():
                            newer = self._pending.pop(unsent, (owner, []))[1]
                            self._pending[unsent] = (owner, older + newer)
                    raise
                del pending[run_id]

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
            time.sleep(self.INTERVAL)  # gather the lines that follow close behind
            try:
                self.flush()
            except Exception:  # the task's own end flushes again
                logger.warning("could not write task log lines", exc_info=True)


log_shipper = LogShipper()
