"""The task job: a puller that runs the ready tasks of one queue, each advancing its DAG.

``lightflow.task`` (its argument: the queue) takes the ready tasks of its queue one
after another (:mod:`.ready`) until none is left or its slice is used up. For each:

1. the begin commits ``running`` (dropping the task if its attempt was superseded or
   its DAG halted), reading the task's input in the same round trip;
2. the task runs, with its log lines tagged and shipped to the run's log;
3. the finish advances the DAG with the outcome **in the same job**, storing the
   output in the same commit: the successors that became ready are pushed at once,
   no polling.

The first successor routed to this queue is claimed by the finish and runs next in
this process, from the state and the output it has just committed (the hand-off): a
chain moves from task to task without a broker message, without reading its data
back. The claim is in ``lf:running`` from the finish on, so a worker that dies in
between loses nothing (the sweeper pushes it back).

A task waiting in ``join_dags`` runs the ready tasks of the DAGs it waits for in the
same way, each with its hand-offs (:func:`run_claimed`, called by :mod:`.joining`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import cloudpickle

from ..engine.dag_run import DagRun, Outcome, Step, TaskState
from ..events import RunEvent
from ..exceptions import LightflowError
from ..execution import TaskOutcome, execute_task
from ..models.context import TaskContext
from ..portable import refusal, unportable
from ..records import RunRecorder
from ..signal import TaskSignal
from ..workflows import Workflow
from . import state as rs
from .channel import RedisSignalChannel
from .closing import carry_out
from .cluster import Cluster, Plan
from .dag_state import CREATED, HALT, OPEN, STARTED, InstanceView, task_field
from .halting import give_up_task, halt_run, job_failed
from .inputs import START, compose, input_keys, output_key
from .instance import (
    Ahead,
    HandOff,
    Progress,
    Writes,
    advance,
    dag_key,
    queue_events,
    queue_meta,
)
from .liveness import process_name
from .meta import MetaAwareDocument
from .ready import PULL_SLICE, TaskRef, claim, take, wake_if_left
from .recovery import heartbeats, task_lost
from .task_log import task_logging
from .termination import give_up_reason

logger = logging.getLogger("lightflow.worker")


@dataclass
class _Carried:
    """What a task hands to the successor it runs next: the view, the outputs stored."""

    view: InstanceView
    blobs: dict[str, bytes]


@dataclass
class _Begun:
    """A task marked running: what its run and its finish need."""

    ref: TaskRef
    workflow: Workflow
    plan: Plan
    progress: Progress
    worker: str
    beat: dict[str, Any]  # its lf:running entry
    start_time: float
    blobs: dict[str, Any]  # its input's stored outputs, by key


class _Overtaken(Exception):
    """A task's end found it decided without it (lost and queued again, or cancelled):
    its process may be about to be terminated, so it takes no other task."""


def task_job(cluster: Cluster, queue: str) -> None:
    """Run the ready tasks of ``queue`` until none is left or the slice is used up.

    A puller that leaves with tasks still ready sends a task job for them first.
    """
    worker = process_name(cluster.hostname, os.getpid())
    deadline = time.monotonic() + PULL_SLICE
    next_up: tuple[TaskRef, _Carried | None] | None = None
    while True:
        if next_up is not None:  # handed off, or taken by the last task's commit
            ref, carried = next_up
        elif time.monotonic() >= deadline:
            wake_if_left(cluster, queue)
            return
        else:
            taken = take(cluster, queue, worker)
            if taken is None:
                return
            ref, carried = taken, None
            heartbeats.keep_alive(cluster, ref.running_field, claim(ref, worker, queue))
        try:
            more = time.monotonic() < deadline
            next_up = _run_task(cluster, queue, worker, ref, carried, more)
        except _Overtaken:  # its process may be terminated next: it takes no other task
            wake_if_left(cluster, queue)
            return
        except Exception as error:  # recorded as the task's failure; the next one goes on
            _task_failed(cluster, ref, error)
            next_up = None


def run_claimed(cluster: Cluster, queue: str, worker: str, ref: TaskRef) -> None:
    """Run a ready task this process took and claimed, then the tasks handed off to it.

    What a task waiting in ``join_dags`` does with the ready tasks of the DAGs it waits
    for (:mod:`.joining`): unlike a task job, it takes no other ready task of the queue.
    """
    heartbeats.keep_alive(cluster, ref.running_field, claim(ref, worker, queue))
    next_up: tuple[TaskRef, _Carried | None] | None = (ref, None)
    while next_up is not None:
        ref, carried = next_up
        try:
            next_up = _run_task(cluster, queue, worker, ref, carried, more=False)
        except _Overtaken:  # its process may be terminated next
            return
        except Exception as error:  # recorded as the task's failure
            _task_failed(cluster, ref, error)
            return


def _task_failed(cluster: Cluster, ref: TaskRef, error: Exception) -> None:
    """An internal error ended a task: log it, drop its claim, fail the task with it."""
    logger.exception("task %s/%s of run %s failed", ref.instance, ref.task, ref.run_id)
    heartbeats.remove(cluster, ref)
    job_failed(cluster, ref.run_id, error, ref.instance, ref.task, ref.attempt)


def _run_task(
    cluster: Cluster,
    queue: str,
    worker: str,
    ref: TaskRef,
    carried: _Carried | None,
    more: bool,
) -> tuple[TaskRef, _Carried | None] | None:
    """Run one task attempt; return the task to run next in this process, if any.

    That is a successor handed off (with what it needs from this one), or, with
    ``more``, the next ready task of the queue, taken by this task's commit.

    Raises:
        _Overtaken: The task's end changed nothing (see :class:`_Overtaken`).
    """
    begun = _begin(cluster, queue, worker, ref, carried)
    if begun is None:
        return None
    ended = False  # its entry in lf:running is gone: finished, or handed back
    try:
        outcome, output = _execute(cluster, begun)
        done = _finish(cluster, queue, begun, outcome, output, more)
        ended = done is not None
        if done is None:
            raise _Overtaken
        return _carry_on(cluster, queue, begun, outcome, done, output)
    except SystemExit:  # handed back (or left to the sweeper) by _execute
        ended = True
        raise
    finally:
        heartbeats.remove(cluster, ref, delete=not ended)


def _begin(
    cluster: Cluster, queue: str, worker: str, ref: TaskRef, carried: _Carried | None
) -> _Begun | None:
    """Commit ``running`` for a task; ``None`` if it is not to run (its claim dropped).

    A task of a run that has ended (the ready entries of a stopped run outlive it) is
    dropped at once, so a wide run's leftovers cost a puller one read each.

    One round trip: the commit checks the task's field against the one its ready entry
    carries (or a hand-off's view holds) and answers the task's input and the fields its
    finish reads.
    """
    try:
        plan = cluster.plan(ref.run_id, ref.instance)
    except LightflowError:  # its run ended and is gone (a stop left it in the list)
        logger.debug("dropped a ready task of run %s, which has ended: %s", ref.run_id, ref.task)
        heartbeats.remove(cluster, ref)
        return None
    workflow = cluster.workflow(ref.run_id)
    started: list[RunEvent] = []
    recorder = cluster.recorder(ref.run_id, workflow.name, started, deferred=True)
    start_time = recorder.task_started(ref.instance, ref.task, worker)
    meta = recorder.take()  # the running entry, visible to other tasks (as in 1.x)
    beat = {"attempt": ref.attempt, "worker": worker, "heartbeat": rs.now()}
    beat.update(started=start_time, queue=queue)
    have = carried.blobs if carried is not None else {}
    keys = input_keys(ref.run_id, ref.instance, plan.spec, ref.task)
    ran: list[bool] = []

    def begin(machine: DagRun, view: InstanceView) -> Step | None:
        if (
            view.attempt(ref.task) != ref.attempt
            or machine.states[ref.task] is not TaskState.QUEUED
        ):
            return None  # superseded by a re-dispatch, or already handled
        ran[:] = [machine.task_started(ref.task)]
        return Step() if ran[0] else Step(cancelled=[ref.task])  # halted: cancelled

    def mark_running(writes: Writes) -> None:
        if ran[0]:
            writes.hset(rs.RUNNING, ref.running_field, json.dumps(beat))
            queue_events(writes, ref.run_id, started)
            queue_meta(writes, ref.run_id, meta)
        else:
            writes.hdel(rs.RUNNING, ref.running_field)

    # The task's field is what the commit that made it ready left (it reads it again
    # only if it changed), its input and what its finish reads come back with its
    # commit: one round trip.
    if carried is not None:
        view = carried.view
    else:
        view = InstanceView(cluster.redis, dag_key(ref.run_id, ref.instance), plan.spec)
        view.values.update({task_field(ref.task): ref.field.encode() or None, HALT: None})
    ahead = [OPEN, STARTED, CREATED, *(task_field(name) for name in plan.spec.successors[ref.task])]
    progress = advance(
        cluster,
        ref.run_id,
        ref.instance,
        begin,
        view=view,
        also=mark_running,
        ahead=Ahead(tuple(ahead), tuple(key for key in keys if key not in have)),
    )
    if progress is None or not ran[0]:
        heartbeats.remove(cluster, ref, delete=progress is None)
        if progress is not None:
            carry_out(cluster, ref.run_id, ref.instance, progress, queue)
        return None
    heartbeats.keep_alive(cluster, ref.running_field, beat)
    carry_out(cluster, ref.run_id, ref.instance, progress, queue)  # its META entry
    blobs = {**have, **progress.values}
    return _Begun(ref, workflow, plan, progress, worker, beat, start_time, blobs)


def _execute(cluster: Cluster, begun: _Begun) -> tuple[TaskOutcome, bytes | None]:
    """Run the task; return how it ended and its pickled output (for its successors).

    A termination of this pool process (a worker's cold shutdown) is not the task's
    failure: the task is handed back (queued again, or failed if it is not safe to
    re-run) and the ``SystemExit`` goes on.
    """
    ref, spec = begun.ref, begun.plan.spec
    data = compose(ref.run_id, ref.instance, spec, ref.task, begun.blobs)
    context = TaskContext(
        task_name=ref.task,
        dag_name=ref.instance,
        workflow_name=begun.workflow.name,
        workflow_id=ref.run_id,
        worker_hostname=cluster.hostname,
    )
    task = cluster.dag(ref.run_id, begun.plan.dag).task(ref.task)
    with task_logging(cluster, ref.run_id, ref.instance, ref.task):
        try:
            outcome = execute_task(
                task,
                data,
                MetaAwareDocument(cluster, ref.run_id),
                TaskSignal(
                    RedisSignalChannel(
                        cluster, ref.run_id, ref.instance, ref.task, run_task=run_claimed
                    ),
                    ref.instance,
                ),
                context,
                source=begun.workflow.path,
            )
        except SystemExit:  # only the pool process's termination gets through
            _hand_back(cluster, begun)
            raise
    if (
        outcome.state not in (TaskState.SUCCEEDED, TaskState.STOPPED)
        or not spec.successors[ref.task]
    ):
        return outcome, None
    outcome.data.flatten(in_place=True)
    try:
        return outcome, cloudpickle.dumps(outcome.data)
    except Exception as error:  # the task put something unpicklable in its data
        culprit = unportable(outcome.data) or f"{type(error).__name__}: {error}"
        message = refusal("the data it returned", culprit)
        return TaskOutcome(TaskState.FAILED, outcome.data, message=message), None


def _hand_back(cluster: Cluster, begun: _Begun) -> None:
    """The process is going down mid-task: queue the task again (or fail it) now.

    A process terminated because its task outlived a stop's grace period records the
    task stopped instead (:mod:`.termination`). If that fails too, its entry stays and
    the sweeper hands it back later.
    """
    ref = begun.ref
    try:
        reason = give_up_reason(cluster, ref.run_id)
        if reason is not None and give_up_task(
            cluster, ref.run_id, ref.instance, ref.task, begun.beat, reason
        ):
            heartbeats.remove(cluster, ref)
            return
        done_with = task_lost(cluster, ref.run_id, ref.instance, ref.task, begun.beat, "shut down")
    except Exception:
        logger.exception("worker shutting down: could not hand back task %s", ref.task)
        heartbeats.remove(cluster, ref, delete=False)
        return
    if done_with:
        logger.warning("worker shutting down: task %s/%s %s", ref.instance, ref.task, done_with)
    heartbeats.remove(cluster, ref)


def _finish(
    cluster: Cluster,
    queue: str,
    begun: _Begun,
    outcome: TaskOutcome,
    output: bytes | None,
    more: bool,
) -> Progress | None:
    """Advance the DAG with the task's outcome; its output and events in the commit.

    Starts from the state the begin committed: reads Redis again only if another job
    changed a field it depends on meanwhile. The first successor made ready on this
    queue is claimed for this process (see the module docstring); else, with ``more``,
    the commit takes the next ready task of the queue for it.
    """
    ref = begun.ref
    finished: list[RunEvent] = []
    record: list[RunRecorder] = []

    def finish(machine: DagRun, view: InstanceView) -> Step | None:
        if (
            view.attempt(ref.task) != ref.attempt
            or machine.states[ref.task] is not TaskState.RUNNING
        ):
            return None
        view.consume(machine.inputs_of(ref.task), START)
        step = _apply_outcome(machine, ref.task, outcome)
        finished.clear()
        record[:] = [cluster.recorder(ref.run_id, begun.workflow.name, finished, deferred=True)]
        state = machine.states[ref.task]  # a bad Action(limit=) fails the task
        error = machine.errors.get(ref.task) if state is TaskState.FAILED else None
        record[0].task_finished(
            ref.instance,
            ref.task,
            state.value,
            worker=begun.worker,
            message=outcome.message or error or None,
            traceback=outcome.traceback,
            started_at=begun.start_time,
        )
        return step

    def mark_finished(writes: Writes) -> None:
        writes.hdel(rs.RUNNING, ref.running_field)
        queue_events(writes, ref.run_id, finished)
        queue_meta(writes, ref.run_id, record[0].take())

    outputs = {} if output is None else {output_key(ref.run_id, ref.instance, ref.task): output}
    return advance(
        cluster,
        ref.run_id,
        ref.instance,
        finish,
        view=begun.progress.view,
        outputs=outputs,
        also=mark_finished,
        hand_off=HandOff(queue, begun.worker),
        ahead=Ahead(take=HandOff(queue, begun.worker) if more else None),
    )


def _carry_on(
    cluster: Cluster,
    queue: str,
    begun: _Begun,
    outcome: TaskOutcome,
    done: Progress,
    output: bytes | None,
) -> tuple[TaskRef, _Carried | None] | None:
    """After the finish: halt the run on a failure, wake pullers, keep what comes next."""
    ref = begun.ref
    final = done.view.state_of(ref.task)
    if final in (TaskState.FAILED, TaskState.ABORTED):
        halt_run(
            cluster,
            ref.run_id,
            Outcome.ABORTED if final is TaskState.ABORTED else Outcome.STOPPED,
            ref.instance,
            ref.task,
            outcome.message or done.view.error_of(ref.task),
        )
    carry_out(cluster, ref.run_id, ref.instance, done, queue)
    following = done.handoff or done.taken
    if following is None:
        return None
    heartbeats.keep_alive(cluster, following.running_field, claim(following, begun.worker, queue))
    if done.taken is not None:
        return done.taken, None
    blobs = {} if output is None else {output_key(ref.run_id, ref.instance, ref.task): output}
    return following, _Carried(done.view, blobs)


def _apply_outcome(machine: DagRun, task: str, outcome: TaskOutcome) -> Step:
    if outcome.state is TaskState.SUCCEEDED:
        return machine.task_succeeded(task, outcome.limit)
    if outcome.state is TaskState.STOPPED:
        return machine.task_stopped(task, outcome.skip_successors)
    if outcome.state is TaskState.ABORTED:
        return machine.task_aborted(task, outcome.message)
    return machine.task_failed(task, outcome.message)
