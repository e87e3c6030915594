"""What a run waits for: its work queued and not yet taken, with the queue of each.

A run is queued until a worker of its workflow queue takes its workflow job; a DAG
instance until a worker of the DAG's queue starts it (its hash has no ``started``
field yet); a task from the commit that makes it ready until a process of its queue
begins it (its field says ``queued``). Work on a queue no live worker consumes waits
there for ever, in silence: :func:`queued_work` lists what waits, so that ``workflow
status`` can show it and ``workflow start --wait`` can compare its queues with the
ones the live workers consume.

It reads the run record, the run's list of DAG instances, each unfinished instance's
plan (cached per process, :meth:`~lightflow.queue.cluster.Cluster.plan`) and, in one
round trip, the fields of the tasks routed to the queues asked about: nothing of a
run's events, and nothing at all of the tasks on the queues left out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine.dag_run import TaskState
from ..exceptions import LightflowError
from . import state as rs
from .dag_state import STARTED, TaskEntry, task_field
from .instance import dag_key

if TYPE_CHECKING:
    from .cluster import Cluster, Plan


@dataclass(frozen=True)
class QueuedWork:
    """One piece of a run waiting on a queue for a worker to take it.

    Attributes:
        queue: The queue it waits on.
        dag: The DAG instance; ``None`` for the run's workflow job.
        task: The task; ``None`` for the workflow job or a DAG instance's start.
    """

    queue: str
    dag: str | None = None
    task: str | None = None


def queued_work(
    cluster: Cluster, run_id: str, *, leave_out: Collection[str] = ()
) -> list[QueuedWork]:
    """The workflow job, DAG instances and tasks of ``run_id`` waiting on a queue.

    Args:
        cluster: The cluster handle.
        run_id: The run (its full id).
        leave_out: Queues whose work is not asked about (the ones live workers
            consume, for a caller that looks for work nobody will take).

    Returns:
        In order: the workflow job while the run is queued, else per unfinished
        instance its start (if it has not started) and its queued tasks. Empty once
        the run has ended.
    """
    client = cluster.redis
    state, queue = (rs.text(v or b"") for v in client.hmget(rs.run_key(run_id), "state", "queue"))
    if state == "queued":
        return [] if queue in leave_out else [QueuedWork(queue)]
    if state != "running":
        return []
    instances: list[tuple[str, Plan]] = []
    for name, outcome in client.hgetall(rs.run_key(run_id, "dags")).items():
        if outcome:
            continue
        try:
            instances.append((rs.text(name), cluster.plan(run_id, rs.text(name))))
        except LightflowError:  # the run ended meanwhile and took its plans along
            continue
    pipe = client.pipeline(transaction=False)
    asked: list[list[str]] = []
    for name, plan in instances:
        tasks = [task for task, on in plan.queues.items() if on not in leave_out]
        asked.append(tasks)
        pipe.hmget(dag_key(run_id, name), [STARTED, *(task_field(task) for task in tasks)])
    waiting: list[QueuedWork] = []
    for (name, plan), tasks, (started, *fields) in zip(
        instances, asked, pipe.execute(), strict=True
    ):
        if not started and plan.queue not in leave_out:
            waiting.append(QueuedWork(plan.queue, name))
        waiting.extend(
            QueuedWork(plan.queues[task], name, task)
            for task, raw in zip(tasks, fields, strict=True)
            if raw is not None and TaskEntry(raw).state is TaskState.QUEUED
        )
    return waiting
