"""Opening a run (the workflow job) and starting DAG instances (the DAG job).

* ``lightflow.workflow`` (workflow queue): opens the run's store document, writes the
  parameters and starts the autostart DAG instances.
* ``lightflow.dag`` (the DAG's queue): starts one DAG instance (its start tasks).

Either job may come again after its work is done: the broker redelivers the message of
a worker that died, after a sweeper sent the job again already (see
:mod:`.liveness`), or a run ended meanwhile. Such a stale job is dropped with one
debug line.
"""

from __future__ import annotations

import logging

from ..engine.dag_run import DagRun, Step
from ..events import RunEvent
from . import state as rs
from .closing import carry_out, claim_run, finish_workflow
from .cluster import Cluster
from .dag_state import HALT, OPEN, STARTED, InstanceView
from .instance import Writes, advance, create_instance, queue_events, queue_meta
from .submit import stored_arguments

logger = logging.getLogger("lightflow.worker")


def workflow_job(cluster: Cluster, run_id: str) -> None:
    """Open the run: store document, parameters, autostart DAG instances."""
    client = cluster.redis
    record = rs.read_run(client, run_id)
    if record is None or not claim_run(client, run_id, "queued", "running"):
        state = "unknown to the state server" if record is None else record["state"]
        logger.debug("dropped a stale workflow job: run %s is %s", run_id, state)
        return  # stopped while queued, or a job delivered again of a started run
    workflow = cluster.workflow(run_id)
    store = cluster.store
    if not store.exists(run_id):
        store.add(workflow_id=run_id)
    document = cluster.document(run_id)
    arguments = stored_arguments(cluster, run_id, record)
    for key, value in arguments.items():
        document.set(key, value)
    client.hset(rs.run_key(run_id), "started", rs.now())
    cluster.recorder(run_id, workflow.name).workflow_started(arguments)
    dags = workflow.autostart_dags
    if not dags:
        finish_workflow(cluster, run_id)
    for dag in dags:
        create_instance(cluster, run_id, dag, None)


def dag_job(cluster: Cluster, run_id: str, instance: str) -> None:
    """Start one DAG instance, or sweep a halted one (see :func:`.instance.sweep`).

    Idempotent: a redelivered job finds the instance started. The same job carries a
    sweep that the process that halted the instance did not live to do: the sweeper
    sends it from the outbox.
    """
    # Checked first: a process that cached the instance's plan would otherwise start
    # the instance of a run whose state is gone.
    state = rs.text(cluster.redis.hget(rs.run_key(run_id), "state") or b"")
    if not state or state in rs.FINISHED_STATES:
        state = state or "unknown to the state server"
        logger.debug("dropped a stale DAG job: run %s is %s", run_id, state)
        return
    events: list[RunEvent] = []
    recorder = cluster.recorder(run_id, cluster.workflow_name(run_id), events, deferred=True)
    recorder.dag_started(instance)  # published and queued for META by the commit
    meta = recorder.take()  # once: a retried commit queues the same values
    starting: list[bool] = []

    def start(machine: DagRun, _view: InstanceView) -> Step | None:
        starting[:] = [not machine.started]
        if machine.started:
            return machine.sweep() if machine.halt is not None and not machine.done else None
        stopped = cluster.redis.exists(
            rs.run_key(run_id, "stop"), rs.run_key(run_id, "stop", instance)
        )
        return machine.stop() if stopped else machine.start()

    def record(writes: Writes) -> None:
        if starting[0]:
            queue_events(writes, run_id, events)
            queue_meta(writes, run_id, meta)

    progress = advance(
        cluster, run_id, instance, start, also=record, prefetch=[STARTED, HALT, OPEN]
    )
    if progress is not None:
        carry_out(cluster, run_id, instance, progress)
