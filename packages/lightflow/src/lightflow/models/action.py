"""What a task hands back to the engine: its output data and which successors run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .task import BaseTask
    from .task_data import MultiTaskData


class Action:
    """The result of a task: the data for its successors and an optional limit.

    Args:
        data: The data passed on to the successor tasks.
        limit: Run only these successors (task objects or names); every other
            successor is skipped. ``None`` runs all successors, ``[]`` skips all.
    """

    def __init__(self, data: MultiTaskData, limit: Iterable[BaseTask | str] | None = None) -> None:
        self.data = data
        self._limit = None if limit is None else [_task_name(t) for t in limit]

    @property
    def limit(self) -> list[str] | None:
        """The names of the successors allowed to run, or ``None`` for all of them."""
        return self._limit

    def copy(self) -> Action:
        """Return a copy whose data can be changed without affecting this action."""
        return Action(self.data.copy(), limit=None if self._limit is None else list(self._limit))


def _task_name(task: Any) -> str:
    name = getattr(task, "name", task)
    if not isinstance(name, str):
        raise TypeError(f"Action(limit=...) takes tasks or task names, got {task!r}")
    return name
