"""Heartbeats of running tasks, and recovery of the tasks whose worker died."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any, cast

from ..engine.dag_run import DagRun, Outcome, Step, TaskState
from ..exceptions import LightflowError
from . import state as rs
from .background import BackgroundWork
from .closing import carry_out
from .cluster import Cluster
from .halting import halt_run
from .instance import advance


class Heartbeats(BackgroundWork):
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

    progress = advance(cluster, run_id, instance, lost)
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
    carry_out(cluster, run_id, instance, progress)
    return "queued again" if rerun else "failed: not safe to re-run"


def _dag_name(cluster: Cluster, run_id: str, instance: str) -> str:
    raw = cluster.redis.get(rs.run_key(run_id, "dag", instance))
    if raw is None:
        raise LightflowError(f"run {run_id} has no DAG instance '{instance}'")
    return str(rs.load_dag_state(cast(bytes, raw))["dag"])  # the client returns bytes
