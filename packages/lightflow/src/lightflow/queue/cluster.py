"""One process's handles on the cluster: broker, state server, store, and what it caches.

:class:`Cluster` connects lazily (a CLI command only connects to what it uses) and
caches per process what every job of a run would otherwise read again: the unpickled
workflow, the run's store document, each DAG instance's :class:`Plan`. The caches are
small and bounded (:func:`_remember`), so a worker's memory levels off however many
runs it serves.
"""

from __future__ import annotations

import os
import pickle
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle

from ..engine.dag_run import DagSpec
from ..events import RunEvent
from ..exceptions import LightflowError
from ..models.dag import Dag
from ..records import RunRecorder
from ..store.base import DataStoreDocument
from ..workflows import Workflow, add_workflow_folder
from . import state as rs
from .app import create_app
from .documents import RecordDocument
from .settings import create_store, state_url

if TYPE_CHECKING:
    import redis
    from celery import Celery

    from ..config import Config
    from ..store.archive import RunArchive
    from ..store.mongo import MongoDataStore


class Cluster:
    """One process's handles on the broker, the state server and the store.

    Built lazily, so a CLI command only connects to what it uses.
    """

    def __init__(self, config: Config, app: Celery | None = None) -> None:
        self.config = config
        self._app = app
        self._redis: redis.Redis | None = None
        self._store: MongoDataStore | None = None
        self._workflows: dict[str, Workflow] = {}
        self._documents: dict[str, DataStoreDocument] = {}
        self._plans: dict[tuple[str, str], Plan] = {}
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        self._scripts: dict[str, Any] = {}  # Lua source -> the registered script
        self._capacity: dict[str, int] = {}  # queue -> processes serving it
        self._capacity_until = 0.0
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
    def store(self) -> MongoDataStore:
        if self._store is None:
            self._store = create_store(self.config)
        return self._store

    @property
    def archive(self) -> RunArchive:
        """Where finished runs' histories are (see :mod:`lightflow.queue.history`)."""
        return self.store.archive

    def workflow(self, run_id: str) -> Workflow:
        """The run's workflow, unpickled once per process.

        The workflow file's folder is put on the import path first, as where it was
        loaded: the modules it imports from beside it are found on workers that share
        the folder (see :func:`~lightflow.workflows.add_workflow_folder`).
        """
        with self._lock:
            workflow = self._workflows.get(run_id)
        if workflow is None:
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(rs.run_key(run_id, "workflow"))
            pipe.hget(rs.run_key(run_id), "path")
            blob, path = pipe.execute()
            if blob is None:
                raise LightflowError(f"run {run_id} is unknown to the state server")
            if path:  # its helper modules, as on the host that loaded it
                add_workflow_folder(Path(rs.text(path)))
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

    def plan(self, run_id: str, instance: str) -> Plan:
        """How a DAG instance is scheduled (cached per process).

        Read from the state server, where
        :func:`~lightflow.queue.instance.create_instance` put it as plain data:
        whoever advances an instance (a client stopping the run too) needs neither the
        workflow's code nor its dependencies.

        Raises:
            LightflowError: The run has no such instance (any more).
        """
        plan = self._plans.get((run_id, instance))
        if plan is None:
            raw = self.redis.get(rs.run_key(run_id, "plan", instance))
            if not isinstance(raw, bytes):
                raise LightflowError(f"run {run_id} has no DAG instance '{instance}'")
            plan = pickle.loads(raw)
            _remember(self._plans, (run_id, instance), plan)
        return plan

    def forget(self, run_id: str) -> None:
        """Drop what this process caches of a run that has ended."""
        with self._lock:
            self._workflows.pop(run_id, None)
        self._documents.pop(run_id, None)
        self._names.pop(run_id, None)
        for key in [key for key in self._plans if key[0] == run_id]:
            self._plans.pop(key, None)

    def capacity(self, queue: str) -> int | None:
        """How many processes serve ``queue``: the workers' registry, a few seconds old.

        ``None`` when no registered worker says it serves the queue (none has started
        yet, or the registry was lost with a state server that kept nothing).
        """
        now = time.monotonic()
        if now >= self._capacity_until:
            self._capacity = _registered_capacity(self.redis)
            self._capacity_until = now + CAPACITY_TTL
        return self._capacity.get(queue)

    def workflow_name(self, run_id: str) -> str:
        """The name of the run's workflow, from its record (cached per process)."""
        name = self._names.get(run_id)
        if name is None:
            name = rs.text(self.redis.hget(rs.run_key(run_id), "workflow") or b"")
            _remember(self._names, run_id, name)
        return name

    def script(self, source: str) -> Any:
        """The Lua script ``source`` registered on the state server (once per process)."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.redis.register_script(source)
        return script

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
        in a pipeline with other commands (see :func:`queue_events`); ``deferred``
        holds META writes until the recorder's ``flush``.
        """
        listener = events.append if events is not None else self._publish_listener(run_id)
        return RunRecorder(
            RecordDocument(self, run_id), workflow, run_id, listener, deferred=deferred
        )

    def _publish_listener(self, run_id: str) -> Callable[[RunEvent], None]:
        def publish(event: RunEvent) -> None:
            pipe = self.redis.pipeline(transaction=False)
            rs.publish_event(pipe, run_id, event.to_dict())
            pipe.execute()

        return publish


@dataclass(frozen=True)
class Plan:
    """A DAG instance's scheduling spec, the DAG's name and queue, each task's queue.

    Plain data (no task objects), stored with the instance so that its state machine
    can be advanced without the workflow (see :meth:`Cluster.plan`).
    """

    dag: str
    queue: str
    spec: DagSpec
    queues: dict[str, str]

    @classmethod
    def of(cls, dag: Dag, instance: str) -> Plan:
        return cls(
            dag.name,
            dag.queue,
            DagSpec.from_dag(dag, instance),
            {name: task.queue for name, task in dag.tasks.items()},
        )


#: Seconds a process trusts what it read from the workers' registry (see capacity).
CAPACITY_TTL = 5.0


def _registered_capacity(client: redis.Redis) -> dict[str, int]:
    """Processes per queue of the workers in the registry that are not stopping."""
    names = sorted(rs.text(name) for name in client.smembers(rs.WORKERS))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hmget(rs.worker_key(name), "queues", "concurrency", "state")
    capacity: dict[str, int] = {}
    for queues, concurrency, state in pipe.execute():
        if state is None or rs.text(state) == "stopping":
            continue
        processes = int(concurrency) if concurrency and concurrency.isdigit() else 1
        for queue in rs.text(queues or b"").split(","):
            if queue:
                capacity[queue] = capacity.get(queue, 0) + processes
    return capacity


def _remember(cache: dict[Any, Any], key: Any, value: Any, size: int = 64) -> None:
    """Insert into a small per-process cache, dropping the oldest entry when full."""
    if len(cache) >= size:
        cache.pop(next(iter(cache)))
    cache[key] = value
