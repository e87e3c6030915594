"""The task job: run one task and advance its DAG with the outcome, in the same job.

``lightflow.task`` (the task's queue) marks the task running, composes its input from
its predecessors' stored outputs, runs it, stores its output and advances the DAG at
once, sending the successors that became ready: a finished task wakes its successors
in the same job, one broker round trip per hop, no polling. One ready successor routed
to the same queue runs next in this process (the hand-off).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cloudpickle

from ..engine.dag_run import DagRun, Outcome, Step, TaskState
from ..events import RunEvent
from ..execution import TaskOutcome, execute_task
from ..models.context import TaskContext
from ..records import RunRecorder
from ..signal import TaskSignal
from . import state as rs
from .channel import RedisSignalChannel
from .closing import carry_out
from .cluster import Cluster
from .halting import halt_run, job_failed
from .instance import (
    Progress,
    Writes,
    advance,
    compose,
    consume,
    input_keys,
    queue_events,
    queue_meta,
)
from .jobs import TASK_JOB
from .meta import MetaAwareDocument
from .recovery import heartbeats, task_lost
from .task_log import task_logging

if TYPE_CHECKING:
    pass

logger = logging.getLogger("lightflow.worker")


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
    reads = [] if known is None else input_keys(run_id, instance, known.spec, task_name)

    def begin(machine: DagRun, state: dict[str, Any]) -> Step | None:
        if (
            state["attempts"].get(task_name) != attempt
            or machine.states[task_name] is not TaskState.QUEUED
            or not machine.task_started(task_name)
        ):
            return None  # superseded by a re-dispatch, already handled, or cancelled
        return Step()

    def mark_running(writes: Writes) -> None:
        writes.hset(rs.RUNNING, running, json.dumps(beat))
        queue_events(writes, run_id, started)
        if handoff is not None:
            writes.zrem(rs.OUTBOX, handoff.entry)

    progress = advance(
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
            for key in input_keys(run_id, instance, progress.machine.spec, task_name)
            if key not in blobs
        ]
        if missing:  # first job of the instance in this process, or a join
            blobs.update(zip(missing, cluster.redis.mget(missing), strict=True))
        data = compose(run_id, instance, progress.machine, task_name, blobs)
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
                    MetaAwareDocument(cluster, run_id),
                    TaskSignal(RedisSignalChannel(cluster, run_id, instance), instance),
                    context,
                    source=workflow.path,
                )
            except SystemExit:  # only the pool process's termination gets through
                left_to_sweeper = True
                done_with = task_lost(cluster, run_id, instance, task_name, beat, "shut down")
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
            consume(state, machine.inputs_of(task_name))
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

        def mark_finished(writes: Writes) -> None:
            writes.hdel(rs.RUNNING, running)
            queue_events(writes, run_id, finished)
            queue_meta(writes, run_id, record[0].take())

        outputs = {} if output is None else {rs.run_key(run_id, "out", instance, task_name): output}
        done = advance(
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
            carry_out(cluster, run_id, instance, done)
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


def _apply_outcome(machine: DagRun, task: str, outcome: TaskOutcome) -> Step:
    if outcome.state is TaskState.SUCCEEDED:
        return machine.task_succeeded(task, outcome.limit)
    if outcome.state is TaskState.STOPPED:
        return machine.task_stopped(task, outcome.skip_successors)
    if outcome.state is TaskState.ABORTED:
        return machine.task_aborted(task, outcome.message)
    return machine.task_failed(task, outcome.message)
