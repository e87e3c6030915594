"""The public API: what the CLI, the REST service, the triggers and extensions call.

One surface for both engines. Callers parse their input, call a function here and
render the result; nothing here prints or exits, and every error is a
:class:`~lightflow.exceptions.LightflowError` with a one-line message (its subclasses
say what kind: :class:`~lightflow.exceptions.RunNotFoundError`,
:class:`~lightflow.exceptions.WorkflowNotFoundError`,
:class:`~lightflow.exceptions.ParameterError`,
:class:`~lightflow.exceptions.NoBrokerError`,
:class:`~lightflow.exceptions.StateServerError`...), which a caller maps to an exit
status or an HTTP status in one place. Results are plain data (JSON-able dicts and
lists), except the run results of the embedded engine and the events, which are
dataclasses.

* workflows (:mod:`.workflows`): :func:`load`, :func:`list_workflows`,
  :func:`describe`, :func:`workflow_graph`, :func:`render_graph`;
* runs (:mod:`.runs`): :func:`run_workflow` (embedded engine), :func:`start_workflow`,
  :func:`wait_for_run`, :func:`stop_workflows`, :func:`list_runs`,
  :func:`run_status`, :func:`queued_work`, :func:`run_store`, :func:`run_data`,
  :func:`prune_runs`;
* following (:mod:`.events`): :func:`follow_events` (resumable by event id),
  :func:`run_logs`, :func:`follow_logs`;
* workers (:mod:`.workers`): :func:`list_workers`, :func:`stop_workers`,
  :func:`check_state_server`;
* triggers (:mod:`.triggers`): :func:`trigger_kinds`, :func:`list_triggers`.

The distributed engine's functions refuse without a broker (``celery.broker_url``).
"""

from __future__ import annotations

from typing import Any

from ..config import finished_run_retention, parse_duration
from ._cluster import require_broker
from .events import follow_events, follow_logs, run_logs
from .runs import (
    RUN_STATES,
    UNFINISHED_STATES,
    list_runs,
    parse_arguments,
    prune_runs,
    queued_work,
    run_data,
    run_duration,
    run_status,
    run_store,
    run_workflow,
    start_workflow,
    stop_workflows,
    wait_for_run,
)
from .triggers import list_triggers, trigger_kinds
from .workers import check_state_server, list_workers, stop_workers
from .workflows import describe, list_workflows, load, render_graph, workflow_graph

__all__ = [
    "RUN_STATES",
    "UNFINISHED_STATES",
    "RunResult",
    "TaskRecord",
    "check_state_server",
    "describe",
    "finished_run_retention",
    "follow_events",
    "follow_logs",
    "list_runs",
    "list_triggers",
    "list_workers",
    "list_workflows",
    "load",
    "parse_arguments",
    "parse_duration",
    "prune_runs",
    "queued_work",
    "render_graph",
    "require_broker",
    "run_data",
    "run_duration",
    "run_logs",
    "run_status",
    "run_store",
    "run_workflow",
    "start_workflow",
    "stop_workers",
    "stop_workflows",
    "trigger_kinds",
    "wait_for_run",
    "workflow_graph",
]


def __getattr__(name: str) -> Any:
    # The embedded engine's result types, imported when first asked for: starting a
    # run on the cluster (`workflow start`, timed from the shell) never needs them.
    if name in ("RunResult", "TaskRecord"):
        from ..local import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
