"""What a task receives from the engine, for driving tasks directly in tests.

The store is a real run document of the embedded store; the signal is the one part of
the engine's task signal a task reads on its own, ``is_stopped``, as a flag the test
flips (from another thread where it matters).
"""

from __future__ import annotations

from typing import Any

from lightflow.models import MultiTaskData, TaskContext, TaskData
from lightflow.store import MemoryDataStore


class FlagSignal:
    """A task signal whose ``is_stopped`` the test sets (through ``stopped``).

    Counts reads, so a test can check that the task does not poll it too often.
    """

    def __init__(self) -> None:
        self.stopped = False
        self.reads = 0

    @property
    def is_stopped(self) -> bool:
        self.reads += 1
        return self.stopped


def make_args(values: dict[str, Any] | None = None, *, task_name: str = "task") -> tuple[Any, ...]:
    """``(data, store, signal, context)`` as the engine passes them to ``BaseTask._run``."""
    data = MultiTaskData(dataset=TaskData(dict(values or {})))
    store = MemoryDataStore()
    context = TaskContext(
        task_name=task_name,
        dag_name="dag",
        workflow_name="wf",
        workflow_id="run-1",
        worker_hostname="host",
    )
    return data, store.get(store.add()), FlagSignal(), context
