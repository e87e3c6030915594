"""A task waiting in ``join_dags`` does the work of the DAGs it waits for.

A task that waits in ``signal.join_dags`` holds its worker process until the DAGs it
waits for have ended. Were their DAG jobs and tasks left to other processes, a worker
with too few of them (``--concurrency 1``) would wait for ever, and so would its warm
shutdown. So the waiting process does their work itself while it waits (:func:`join`):

* it starts each awaited DAG instance whose DAG job has not run yet (the job, still
  on its way, then finds it started), and
* it takes the ready tasks of the awaited instances out of the ready lists, each
  claimed in ``lf:running`` as a task job claims it (:data:`_TAKE_FOR`), and runs them
  as a task job does: heartbeats, tagged log lines, the hand-off of the next task of
  a chain (:func:`~lightflow.queue.task_job.run_claimed`, handed in by the task job as
  ``run_task``: the task job is above this module, which it calls through the channel).

Both only on the queues its worker consumes: ``Dag(queue=)`` and ``Task(queue=)`` are
honoured, and work routed elsewhere is left to the workers of that queue. Only the
awaited instances' work is taken, never another ready task: a task from elsewhere
might itself wait for the DAG of the task below it on this process's stack, and would
wait for ever. A task run so that joins DAGs of its own does the same one level
deeper, and returns to the wait below when its DAGs have ended.

Between two pieces of work the process sleeps until a DAG of the run ends or a commit
pushes ready tasks of the run (the channels ``lf:run:<id>:dagdone`` and
``lf:run:<id>:ready``), and looks again at least every second in case a message was
lost. A stopped run halts the awaited DAGs, so the wait ends with them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection

from ..engine.dag_run import Outcome
from ..signal import dags_to_join
from . import state as rs
from .cluster import Cluster
from .dag_state import STARTED
from .instance import dag_key, ready_channel
from .liveness import process_name
from .ready import TAKE_FUNCTION, TaskRef, parse, ready_key
from .starting import dag_job

#: Runs a ready task this process took and claimed: ``(cluster, queue, worker, ref)``.
RunTask = Callable[[Cluster, str, str, TaskRef], None]

#: Seconds the wait sleeps at most before it looks again (a lost message).
LOOK_AGAIN = 1.0

#: Takes the oldest ready task of the given instances (ARGV[5:]) of a run (ARGV[4])
#: from a ready list (KEYS[1]) and claims it in ``lf:running`` (KEYS[2]) for the
#: worker (ARGV[1..3]: worker, time, queue): moved to the head of the list, it is taken
#: the way every ready task is (``take_ready``).
_TAKE_FOR = (
    TAKE_FUNCTION
    + """
local wanted = {}
for n = 5, #ARGV do wanted[ARGV[n]] = true end
local length = redis.call('LLEN', KEYS[1])
for first = 0, length - 1, 500 do
  for _, raw in ipairs(redis.call('LRANGE', KEYS[1], first, first + 499)) do
    if string.find(raw, ARGV[4], 1, true) then
      local ref = cjson.decode(raw)
      if ref[1] == ARGV[4] and wanted[ref[2]] then
        redis.call('LREM', KEYS[1], 1, raw)
        redis.call('LPUSH', KEYS[1], raw)
        return take_ready(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
      end
    end
  end
end
return false
"""
)


def join(
    cluster: Cluster,
    run_id: str,
    names: list[str] | None,
    requested_by: str,
    run_task: RunTask,
) -> bool:
    """Wait until the DAG instances ``names`` (every other one if ``None``) have ended,
    doing their work meanwhile (see the module docstring); whether all succeeded.

    ``run_task`` runs each task taken for them (the task job's ``run_claimed``).

    Raises:
        SignalError: A DAG would wait for itself, or a name is no instance of the run.
    """
    client = cluster.redis
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(rs.run_key(run_id, "dagdone"), ready_channel(run_id))
    consumed = consumed_queues(cluster)
    started: set[str] = set()
    try:
        while True:
            while pubsub.get_message(timeout=0) is not None:  # what is read next is newer
                pass
            states = {
                rs.text(k): rs.text(v)
                for k, v in client.hgetall(rs.run_key(run_id, "dags")).items()
            }
            wanted = dags_to_join(names, requested_by, states)
            waiting = [name for name in wanted if not states[name]]
            if not waiting:
                return all(states[name] == Outcome.SUCCEEDED.value for name in wanted)
            if not _work_for(cluster, run_id, waiting, consumed, started, run_task):
                pubsub.get_message(timeout=LOOK_AGAIN)
    finally:
        pubsub.close()


def consumed_queues(cluster: Cluster) -> frozenset[str]:
    """The queues this process's worker consumes (``-q``), as Celery selected them.

    Read from the worker's app: its pool processes inherit the selection.
    """
    return frozenset(cluster.app.amqp.queues.consume_from)


def _work_for(
    cluster: Cluster,
    run_id: str,
    waiting: list[str],
    consumed: Collection[str],
    started: set[str],
    run_task: RunTask,
) -> bool:
    """Do one piece of the work of the ``waiting`` instances; whether there was one.

    ``started`` holds the instances known to have started (so each is asked once).
    """
    plans = {name: cluster.plan(run_id, name) for name in waiting}
    unknown = [name for name in waiting if name not in started]
    if unknown:
        pipe = cluster.redis.pipeline(transaction=False)
        for name in unknown:
            pipe.hexists(dag_key(run_id, name), STARTED)
        for name, is_started in zip(unknown, pipe.execute(), strict=True):
            if is_started:
                started.add(name)
            elif plans[name].queue in consumed:
                dag_job(cluster, run_id, name)
                started.add(name)
                return True
    queues = sorted({queue for plan in plans.values() for queue in plan.queues.values()})
    worker = process_name(cluster.hostname, os.getpid())
    for queue in queues:
        if queue not in consumed:
            continue
        raw = cluster.script(_TAKE_FOR)(
            keys=[ready_key(queue), rs.RUNNING],
            args=[worker, rs.now(), queue, run_id, *waiting],
        )
        if raw:
            run_task(cluster, queue, worker, parse(raw))
            return True
    return False
