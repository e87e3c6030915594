"""Where a task runs: the names and ids a task may need for logging or file naming."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TaskContext:
    """The context passed as the fourth argument of every task callback.

    Attributes:
        task_name: Name of the running task.
        dag_name: Name of the DAG instance it runs in (``name:2`` for a second copy).
        workflow_name: Name of the workflow (the workflow file's stem).
        workflow_id: Id of the workflow run.
        worker_hostname: Host (or worker name) running the task.
    """

    task_name: str
    dag_name: str
    workflow_name: str
    workflow_id: str
    worker_hostname: str

    def to_dict(self) -> dict[str, Any]:
        """Return the context as a plain dict (as in 1.x)."""
        return asdict(self)
