"""Run events: what engines report while a workflow runs.

Both engines emit the same :class:`RunEvent` stream; the CLI renders it as progress
lines, ``monitor`` and the REST API forward it. Events are plain data so they can
cross processes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any


class EventKind(str, Enum):
    """What happened."""

    WORKFLOW_STARTED = "workflow_started"
    WORKFLOW_FINISHED = "workflow_finished"
    DAG_STARTED = "dag_started"
    DAG_FINISHED = "dag_finished"
    TASK_STARTED = "task_started"
    TASK_SUCCEEDED = "task_succeeded"
    TASK_SKIPPED = "task_skipped"
    TASK_STOPPED = "task_stopped"
    TASK_FAILED = "task_failed"
    TASK_ABORTED = "task_aborted"
    TASK_CANCELLED = "task_cancelled"


@dataclass
class RunEvent:
    """One event of a workflow run.

    Attributes:
        kind: What happened.
        workflow_id: The run's id.
        workflow: The workflow's name.
        time: Seconds since the epoch when it happened.
        dag: The DAG instance, for DAG and task events.
        task: The task, for task events.
        duration: Seconds the task/DAG/workflow took, for *finished* kinds.
        outcome: For DAG/workflow finished: succeeded, failed, stopped or aborted.
        message: One-line reason (error message, stop reason).
        traceback: The task's traceback, for failed tasks.
        worker: Who ran the task.
        extra: Further details of the event, by name.
        id: Where the event is in the stream it was read from (see
            :func:`lightflow.api.follow_events`); ``None`` for an event not read back.
    """

    kind: EventKind
    workflow_id: str
    workflow: str
    time: float
    dag: str | None = None
    task: str | None = None
    duration: float | None = None
    outcome: str | None = None
    message: str | None = None
    traceback: str | None = None
    worker: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (with ``id`` only when it has one).

        Built field by field rather than with ``dataclasses.asdict``: the distributed
        engine encodes two events per task, and ``asdict`` costs several times more.
        """
        data = {name: getattr(self, name) for name in _FIELDS}
        data["kind"] = self.kind.value
        data["extra"] = copy.deepcopy(self.extra) if self.extra else {}
        if self.id is not None:
            data["id"] = self.id
        return data


_FIELDS = [item.name for item in fields(RunEvent) if item.name not in ("extra", "id")]
