"""Heartbeats of running tasks, and recovery of the tasks whose worker died.

Every task a process holds has an entry in ``lf:running`` (attempt, worker, heartbeat,
queue): a claim from the moment it was taken from a ready list (or handed off) until
its begin, then the running task's entry. :class:`Heartbeats` refreshes the heartbeats
of the entries that are still there (never writing one back that the task's end has
just removed); the sweeper of every worker (:func:`recover_lost_tasks`) finds the
entries whose process is dead (its worker's mark expired, see :mod:`.liveness`; or,
for a process without a mark, its heartbeat stopped): a claimed task goes back to its
ready list, a running one is queued again under a new attempt (or fails the run, if it
is not safe to re-run).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..engine.dag_run import DagRun, Outcome, Step, TaskState
from ..exceptions import LightflowError
from . import state as rs
from .background import BackgroundWork
from .closing import carry_out
from .cluster import Cluster, Plan
from .dag_state import InstanceView, task_field
from .halting import halt_run
from .instance import Writes, advance
from .liveness import BEATS, Verdicts, process_name
from .ready import TaskRef, entry


class Heartbeats(BackgroundWork):
    """Marks this process's running tasks alive in ``lf:running`` every second.

    Each round ends with the process's own beat in :data:`~.liveness.BEATS`: an entry whose
    heartbeat falls behind it was given up by this process (its end could not be
    committed while the state server was away), while a process that holds the GIL
    in a long C call stops both.
    """

    INTERVAL = 1.0
    THREAD_NAME = "lightflow-heartbeat"

    def __init__(self) -> None:
        super().__init__()
        self._attempts: dict[str, tuple[Cluster, str]] = {}
        self._lock = threading.Lock()
        self._cluster: Cluster | None = None

    def keep_alive(self, cluster: Cluster, field_name: str, entry: dict[str, Any]) -> None:
        """Keep refreshing a task's registry entry (written by its claim or begin)."""
        with self._lock:
            self._attempts[field_name] = (cluster, entry["attempt"])
            self._cluster = cluster
            self._ensure_thread()

    def remove(self, cluster: Cluster, ref: TaskRef, *, delete: bool = True) -> None:
        """Stop beating for a task; ``delete`` also drops its entry if it is still ours.

        The entry is dropped only if it names this attempt: a newer one may own it.
        """
        with self._lock:
            self._attempts.pop(ref.running_field, None)
        if delete:
            cluster.script(_RELEASE)(keys=[rs.RUNNING], args=[ref.running_field, ref.attempt])

    def _run(self) -> None:
        while True:
            time.sleep(self.INTERVAL)
            with self._lock:
                attempts, process = list(self._attempts.items()), self._cluster
            now = rs.now()
            for field_name, (cluster, attempt) in attempts:
                # Only the heartbeat of an entry still there under this attempt: the
                # task's end may have removed it since the copy above was taken, and
                # a begin may have turned the claim into the running task's entry.
                try:
                    cluster.script(_BEAT)(keys=[rs.RUNNING], args=[field_name, attempt, now])
                except Exception:
                    continue
            if process is not None:
                with contextlib.suppress(Exception):  # the next round tries again
                    name = process_name(process.hostname, os.getpid())
                    process.redis.hset(BEATS, name, now)


heartbeats = Heartbeats()

#: Drops a task's ``lf:running`` entry if it still names the attempt given (1 if so).
_RELEASE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw and cjson.decode(raw).attempt == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""
#: Sets the heartbeat of a task's ``lf:running`` entry if it still names the attempt given.
_BEAT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local beat = cjson.decode(raw)
if beat.attempt ~= ARGV[2] then return 0 end
beat.heartbeat = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(beat))
return 1
"""


def recover_lost_tasks(
    cluster: Cluster, dead_after: float = 3.0, verdicts: Verdicts | None = None
) -> list[str]:
    """Re-queue (or fail) tasks whose process is dead or gave them up.

    A process is dead when ``verdicts`` (the workers' marks) say so; one without a
    mark, when its task's heartbeat is older than ``dead_after`` seconds. A live
    process gave a task up when its heartbeat thread has beaten on for ``dead_after``
    seconds since it last beat for the task. Returns the ``run|instance|task`` entries
    handled. Safe to call from every worker: the compare-and-set lets exactly one of
    them act on each lost task.
    """
    client = cluster.redis
    handled = []
    beats: dict[str, float] | None = None
    for raw_field, raw in client.hgetall(rs.RUNNING).items():
        entry = json.loads(raw)
        if rs.now() - entry["heartbeat"] < dead_after:
            continue
        dead = verdicts.dead(entry["worker"]) if verdicts is not None else None
        if dead is None:
            dead = True  # no mark: its heartbeat alone says it
        elif not dead:
            if beats is None:  # read once, and only when a task is silent
                beats = {rs.text(k): float(v) for k, v in client.hgetall(BEATS).items()}
            dead = beats.get(entry["worker"], 0.0) - entry["heartbeat"] >= dead_after
        if not dead:
            continue
        field_name = rs.text(raw_field)
        run_id, instance, task_name = field_name.split("|", 2)
        # Only if it still names the attempt read: a newer one may have taken its place.
        if not cluster.script(_RELEASE)(keys=[rs.RUNNING], args=[field_name, entry["attempt"]]):
            continue
        if task_lost(cluster, run_id, instance, task_name, entry):
            handled.append(field_name)
    return handled


def task_lost(
    cluster: Cluster,
    run_id: str,
    instance: str,
    task_name: str,
    entry: Mapping[str, Any],
    what: str = "died",
) -> str:
    """Queue a task whose worker went away (``what`` it did) again.

    ``entry`` is the task's ``lf:running`` entry (attempt, worker, start time). A task
    that was only claimed goes back to its ready list; a running task that is not safe
    to re-run fails its run with a record instead. Returns what was done (``"queued
    again"``, ``"failed: not safe to re-run"``), or ``""`` if the attempt was no longer
    the current one.
    """
    attempt, worker = entry["attempt"], entry["worker"]
    try:
        plan = cluster.plan(run_id, instance)
        if entry.get("claimed"):
            return _push_back(cluster, TaskRef(run_id, instance, task_name, attempt), plan)
        rerun = cluster.dag(run_id, plan.dag).task(task_name).rerun_safe
    except LightflowError:
        return ""
    reason = (
        f"worker {worker} {what} while task '{task_name}' ran; the task is not marked "
        "safe to re-run (rerun_safe = False)"
    )

    def lost(machine: DagRun, view: InstanceView) -> Step | None:
        if view.attempt(task_name) != attempt or machine.states[task_name] is not TaskState.RUNNING:
            return None
        return machine.task_lost(task_name) if rerun else machine.task_failed(task_name, reason)

    progress = advance(cluster, run_id, instance, lost, prefetch=[task_field(task_name)])
    if progress is None:
        return ""
    if not rerun:
        cluster.recorder(run_id, cluster.workflow_name(run_id)).task_finished(
            instance,
            task_name,
            TaskState.FAILED.value,
            worker=worker,
            message=reason,
            started_at=entry.get("started"),
        )
        halt_run(cluster, run_id, Outcome.STOPPED, instance, task_name, reason)
    carry_out(cluster, run_id, instance, progress)
    return "queued again" if rerun else "failed: not safe to re-run"


def _push_back(cluster: Cluster, ref: TaskRef, plan: Plan) -> str:
    """Push a task that was claimed but never begun back to its ready list."""

    def still_queued(machine: DagRun, view: InstanceView) -> Step | None:
        if (
            view.attempt(ref.task) != ref.attempt
            or machine.states[ref.task] is not TaskState.QUEUED
        ):
            return None
        return Step()  # no change: the commit only checks that it still waits

    def push(writes: Writes) -> None:
        writes.push_ready(plan.queues[ref.task], [entry(ref)])

    progress = advance(cluster, ref.run_id, ref.instance, still_queued, also=push)
    if progress is None:
        return ""
    carry_out(cluster, ref.run_id, ref.instance, progress)
    return "queued again"
