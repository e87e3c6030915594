"""Stopping runs and DAG instances, giving up tasks, recording a job that died.

A stop never needs the workflow's code: it sets the run's stop flag and halts each
instance with one commit (see :func:`halt_run`). A running task that outlives a stop's
grace period is given up (:func:`give_up_task`: recorded stopped, so the run can end)
before its process is terminated (:mod:`lightflow.queue.termination`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engine.dag_run import DagRun, Outcome, Step, TaskState
from ..events import RunEvent
from ..exceptions import LightflowError
from ..records import RunRecorder
from . import state as rs
from .closing import carry_out, claim_run, close_record
from .cluster import Cluster
from .dag_state import HALT, OPEN, STARTED, InstanceView, task_field
from .instance import Progress, Writes, advance, queue_events, queue_meta


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
    if claim_run(client, run_id, "queued", Outcome.STOPPED.value):
        close_record(cluster, run_id, Outcome.STOPPED.value, started=False)
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

    def stop(machine: DagRun, _view: InstanceView) -> Step | None:
        return None if machine.done else machine.stop(outcome)

    def flag(writes: Writes) -> None:
        writes.set(rs.run_key(run_id, "stop", instance), outcome.value)
        if reason:
            writes.hsetnx(rs.run_key(run_id), "error", reason)

    progress = advance(cluster, run_id, instance, stop, also=flag, prefetch=[STARTED, HALT, OPEN])
    if progress is not None:
        carry_out(cluster, run_id, instance, progress)


def give_up_task(
    cluster: Cluster,
    run_id: str,
    instance: str,
    task: str,
    entry: Mapping[str, Any],
    message: str,
) -> bool:
    """Record a task that did not end after a stop as stopped, without waiting for it.

    The task's own process calls it on its way out, terminated because the task
    outlived the stop's grace period (see :mod:`lightflow.queue.termination`).
    ``entry`` is the task's ``lf:running`` entry (attempt, worker, start time); the
    commit applies only while that attempt still runs in a halted DAG, and drops the
    entry. The DAG (and the run, if that was its last task) ends at once. Returns
    whether the task was given up.
    """
    attempt = entry["attempt"]
    stopped: list[RunEvent] = []
    recorders: list[RunRecorder] = []

    def give_up(machine: DagRun, view: InstanceView) -> Step | None:
        if (
            machine.halt is None  # only a stopped DAG's tasks are given up
            or view.attempt(task) != attempt
            or machine.states[task] is not TaskState.RUNNING
        ):
            return None
        stopped.clear()
        recorders[:] = [
            cluster.recorder(run_id, cluster.workflow_name(run_id), stopped, deferred=True)
        ]
        recorders[0].task_finished(
            instance,
            task,
            TaskState.STOPPED.value,
            worker=entry.get("worker"),
            message=message,
            started_at=entry.get("started"),
        )
        return machine.task_stopped(task)

    def record(writes: Writes) -> None:
        writes.hdel(rs.RUNNING, rs.running_field(run_id, instance, task))
        queue_events(writes, run_id, stopped)
        queue_meta(writes, run_id, recorders[0].take())

    progress = advance(
        cluster, run_id, instance, give_up, also=record, prefetch=[HALT, task_field(task)]
    )
    if progress is None:
        return False
    carry_out(cluster, run_id, instance, progress)
    return True


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
        progress = _fail(cluster, run_id, instance, task, attempt, message)
        halt_run(cluster, run_id, Outcome.STOPPED, instance, task or "", message)
        if progress is not None:
            carry_out(cluster, run_id, instance, progress)
        return
    client.hsetnx(rs.run_key(run_id), "error", message)
    client.hset(rs.run_key(run_id), "internal_error", "1")  # the run ends failed
    if claim_run(client, run_id, "queued", Outcome.FAILED.value):
        close_record(cluster, run_id, Outcome.FAILED.value, started=False)
        return
    halt_run(cluster, run_id, Outcome.STOPPED)
    if not client.hlen(rs.run_key(run_id, "dags")) and claim_run(
        client, run_id, "running", Outcome.FAILED.value
    ):
        close_record(cluster, run_id, Outcome.FAILED.value, started=False)


def _fail(
    cluster: Cluster,
    run_id: str,
    instance: str,
    task: str | None,
    attempt: str | None,
    message: str,
) -> Progress | None:
    """Fail the task's attempt (or, without a task, stop the instance) with its record."""
    failed: list[RunEvent] = []
    recorders: list[RunRecorder] = []

    def fail(machine: DagRun, view: InstanceView) -> Step | None:
        if task is None:
            return None if machine.done else machine.stop(Outcome.FAILED)
        if view.attempt(task) != attempt:
            return None
        if machine.states[task] is TaskState.QUEUED and not machine.task_started(task):
            return Step(cancelled=[task])  # halted meanwhile: cancelled instead
        if machine.states[task] is not TaskState.RUNNING:
            return None
        failed.clear()
        recorders[:] = [
            cluster.recorder(run_id, cluster.workflow_name(run_id), failed, deferred=True)
        ]
        recorders[0].task_finished(instance, task, TaskState.FAILED.value, message=message)
        return machine.task_failed(task, message)

    def record(writes: Writes) -> None:
        if recorders:
            queue_events(writes, run_id, failed)
            queue_meta(writes, run_id, recorders[0].take())

    return advance(cluster, run_id, instance, fail, also=record)
