"""Ready tasks: one list per queue that task jobs pull from, and waking the pullers.

A transition that makes tasks ready pushes them to ``lf:ready:<queue>`` in its
commit, so a crash cannot lose them. A task job (``lightflow.task``, with the queue as
its argument) is a *puller*: it takes the ready tasks of its queue one after another,
each taken atomically with a claim in ``lf:running`` (attempt, worker, heartbeat), and
runs them until the list is empty or its time slice (:data:`PULL_SLICE`) is used up.
Work therefore moves between tasks in-process, without a broker message per task, and
pullers share a wide fan-out the way a work queue does.

After its commit, the transition sends as many task jobs as the tasks it pushed could
keep busy, at most the number of processes serving the queue (the worker registry,
:meth:`~lightflow.queue.cluster.Cluster.capacity`), minus itself when it is a puller
of that queue and will take the next one. A puller whose slice ends while tasks are
left sends one job before it goes, so there is always one on its way. What a dead
process held is recovered by the sweeper: a claim whose heartbeat stopped is pushed
back (:mod:`.recovery`), and a list whose oldest task has waited longer than the
heartbeat timeout gets a job (:func:`wake_stalled`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import state as rs
from .app import TASK_JOB

if TYPE_CHECKING:
    from .cluster import Cluster

#: Seconds a task job pulls tasks before it makes room for other jobs (a warm shutdown
#: waits for it, and the other queues of a busy worker get their turn).
PULL_SLICE = 1.0
#: The queues that have had a ready list (a set): what :func:`wake_stalled` looks at.
READY_QUEUES = "lf:readyqueues"

#: Pops the oldest ready task of a queue and claims it in ``lf:running``, atomically:
#: a process that dies holding it leaves a claim whose heartbeat stops. A Lua function,
#: used by :func:`take` and by the commit that ends a task (see ``take_next`` of
#: :func:`lightflow.queue.instance.advance`).
TAKE_FUNCTION = """
local function take_ready(list, running, worker, now, queue)
  local raw = redis.call('LPOP', list)
  if not raw then return false end
  local ref = cjson.decode(raw)
  local claim = cjson.encode({attempt = ref[4], worker = worker, heartbeat = tonumber(now),
                              queue = queue, claimed = true})
  redis.call('HSET', running, ref[1] .. '|' .. ref[2] .. '|' .. ref[3], claim)
  return raw
end
"""
_TAKE = TAKE_FUNCTION + "return take_ready(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])"


@dataclasses.dataclass(frozen=True)
class TaskRef:
    """One attempt of one task of a DAG instance: what a ready entry names.

    ``field`` is the task's field in its instance's hash as the commit that made it
    ready left it (``queued <attempt> ...``): the task's begin commits against it
    without reading it first, and reads only if it changed.
    """

    run_id: str
    instance: str
    task: str
    attempt: str
    field: str = dataclasses.field(default="", compare=False)

    @property
    def running_field(self) -> str:
        """The task's field in ``lf:running``."""
        return rs.running_field(self.run_id, self.instance, self.task)


def ready_key(queue: str) -> str:
    """The list of the ready tasks of ``queue``."""
    return f"lf:ready:{queue}"


def entry(ref: TaskRef) -> str:
    """A ready list entry: the task, when it became ready, and its field then."""
    return json.dumps([ref.run_id, ref.instance, ref.task, ref.attempt, rs.now(), ref.field])


def parse(raw: bytes | str) -> TaskRef:
    """The task a ready list entry names."""
    run_id, instance, task, attempt, _ready_since, *field = json.loads(raw)
    return TaskRef(run_id, instance, task, attempt, field[0] if field else "")


def claim(ref: TaskRef, worker: str, queue: str) -> dict[str, Any]:
    """The ``lf:running`` entry of a task a process holds and has not begun yet."""
    return {
        "attempt": ref.attempt,
        "worker": worker,
        "heartbeat": rs.now(),
        "queue": queue,
        "claimed": True,
    }


def take(cluster: Cluster, queue: str, worker: str) -> TaskRef | None:
    """Pop the oldest ready task of ``queue`` and claim it for ``worker``."""
    raw = cluster.script(_TAKE)(keys=[ready_key(queue), rs.RUNNING], args=[worker, rs.now(), queue])
    return None if raw is None else parse(raw)


def wake(
    cluster: Cluster,
    pushed: Mapping[str, int],
    pulling: str | None = None,
    handoff: TaskRef | None = None,
) -> None:
    """Send task jobs for tasks just pushed (``pushed``: how many, by queue).

    ``pulling`` is the queue of the task job this process runs, if any: it runs one
    ready task of that queue itself next, the ``handoff`` or else the first pushed,
    and the others need other processes, as many as the queue has besides this one.
    When the registry does not know the queue's processes, each task gets a job (one
    that finds nothing left costs little; a task waiting for a puller costs its time).
    """
    for queue, count in pushed.items():
        others = count - (handoff is None) if queue == pulling else count
        processes = cluster.capacity(queue)
        if processes is not None:
            others = min(others, processes - (queue == pulling))
        for _ in range(max(others, 0 if queue == pulling else 1)):
            cluster.send(TASK_JOB, (queue,), queue)


def wake_if_left(cluster: Cluster, queue: str) -> None:
    """A puller leaves: send one task job if tasks of its queue are still ready."""
    if cluster.redis.llen(ready_key(queue)):
        cluster.send(TASK_JOB, (queue,), queue)


def wake_stalled(cluster: Cluster, older_than: float) -> list[str]:
    """Send a task job to each queue whose oldest ready task waited too long.

    A queue stalls when a process died between committing ready tasks and sending
    their jobs, or when fewer pullers came than the tasks could use (a registry that
    said too few processes). A queue whose oldest ready task has waited more than
    ``older_than`` seconds gets one job, at most one per ``older_than`` across all
    the workers' sweepers: a queue whose processes are all busy with long tasks gets
    no more than that. Returns the queues woken.
    """
    woken = []
    for raw in cluster.redis.smembers(READY_QUEUES):
        queue = rs.text(raw)
        oldest: Any = cluster.redis.lindex(ready_key(queue), 0)
        if oldest is None or time.time() - float(json.loads(oldest)[4]) <= older_than:
            continue
        if cluster.redis.set(f"lf:woken:{queue}", "1", nx=True, px=int(older_than * 1000)):
            cluster.send(TASK_JOB, (queue,), queue)
            woken.append(queue)
    return woken
