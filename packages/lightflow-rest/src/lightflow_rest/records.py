"""The core's records in the shapes the API documents (:mod:`.schemas`).

The core gives plain data keyed for its own callers (a run's DAGs and tasks as dicts
by name, a worker's queues as names); these functions turn them into the documented
shapes (lists in order, every documented field present, ``null`` when unknown), and
into the shapes 1.x clients read (``JobStats``-like dicts). No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lightflow.api import run_duration

_RUN_FIELDS = ("error", "failed_dag", "failed_task", "queue", "started", "ended")
_TASK_FIELDS = ("worker", "queue", "started", "ended", "duration", "message", "traceback")


def run(record: Mapping[str, Any]) -> dict[str, Any]:
    """A run record (from ``api.list_runs``) as the ``Run`` schema."""
    shaped = {
        "id": record["id"],
        "workflow": record.get("workflow", ""),
        "state": record.get("state", "queued"),
        "created": record.get("created"),
        "duration": run_duration(record),
        "arguments": json_data(record.get("arguments") or {}),
        "keep_data": bool(record.get("keep_data")),
    }
    shaped.update({name: record.get(name) or None for name in _RUN_FIELDS})
    return shaped


def run_detail(record: Mapping[str, Any]) -> dict[str, Any]:
    """A run with its DAGs and tasks (from ``api.run_status``) as ``RunDetail``."""
    dags = []
    for name, dag in (record.get("dags") or {}).items():
        tasks = [
            {"name": task, "state": info.get("state", "started")}
            | {key: info.get(key) for key in _TASK_FIELDS}
            for task, info in dag.get("tasks", {}).items()
        ]
        dags.append(
            {
                "name": name,
                "state": dag.get("state", "running"),
                "started": dag.get("started"),
                "ended": dag.get("ended"),
                "duration": dag.get("duration"),
                "queue": dag.get("queue"),
                "tasks": tasks,
            }
        )
    return {**run(record), "dags": dags}


def worker(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A worker (from ``api.list_workers``) as the ``Worker`` schema."""
    running = entry.get("running")
    return {
        "name": entry["name"],
        "pid": entry.get("pid"),
        "queues": list(entry.get("queues") or []),
        "concurrency": _integer(entry.get("concurrency")),
        "state": entry.get("state", "running"),
        "running": None
        if running is None
        else [{"job": job.get("job"), "args": json_data(job.get("args"))} for job in running],
    }


def legacy_job(kind: str, name: str, run_id: str, **more: Any) -> dict[str, Any]:
    """One 1.x ``JobStats``-like entry: a run, one of its DAGs or one of its tasks."""
    return {"name": name, "id": run_id, "type": kind, "workflow_id": run_id, **more}


def legacy_worker_job(job: Mapping[str, Any], worker_name: str) -> dict[str, Any] | None:
    """A worker's running job (``{"job", "args"}``) as a 1.x entry; ``None`` if it is
    not one of Lightflow's jobs.

    The jobs' arguments are ``(run_id,)``, ``(run_id, dag)`` and ``(run_id, dag, task,
    attempt)``; the entry is named after the workflow run, the DAG or the task.
    """
    kind = str(job.get("job")).removeprefix("lightflow.")
    args = list(job.get("args") or [])
    position = {"workflow": 0, "dag": 1, "task": 2}.get(kind)
    if position is None or len(args) <= position:
        return None
    return legacy_job(kind, str(args[position]), str(args[0]), worker_name=worker_name)


def legacy_active(detail: Mapping[str, Any]) -> dict[str, Any]:
    """A running run the way 1.x's ``/workflow/active`` listed one: the workflow job's
    fields with the DAGs and tasks running in it."""
    run_id = detail["id"]
    dags, tasks = [], []
    for dag in detail["dags"]:
        if dag["state"] == "running":
            dags.append(legacy_job("dag", dag["name"], run_id, state="running"))
        for task in dag["tasks"]:
            if task["state"] == "started":
                tasks.append(
                    legacy_job(
                        "task",
                        task["name"],
                        run_id,
                        state="running",
                        worker_name=task.get("worker"),
                        dag=dag["name"],
                    )
                )
    job = legacy_job("workflow", detail["workflow"], run_id, state=detail["state"])
    return {**job, "routing_key": detail.get("queue"), "dags": dags, "tasks": tasks}


def json_data(value: Any) -> Any:
    """``value`` as JSON data: what is not (a stored array, a path...) becomes its text."""
    if isinstance(value, Mapping):
        return {str(key): json_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_data(item) for item in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return repr(value)


def _integer(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
