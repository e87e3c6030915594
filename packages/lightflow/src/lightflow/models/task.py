"""The task base class: what every task type (PythonTask, BashTask, plugins') shares.

A task object is a *template*: it holds the user's configuration and the code to run,
never run state. The same object may appear in several DAGs and runs; all state lives
in the engine's run records. ``BaseTask._run`` wraps the subclass's ``run`` with the
1.x life cycle: ``callback_init`` before, ``callback_finally(status, ...)`` after,
flattening the output and recording the task in the data's history.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from ..exceptions import AbortWorkflow, StopTask, TaskDefinitionError
from .action import Action

if TYPE_CHECKING:
    from .context import TaskContext
    from .task_data import MultiTaskData


#: The queue tasks are routed to unless they name another.
DEFAULT_QUEUE = "task"


class TaskStatus(IntEnum):
    """How a task's run ended; passed to ``callback_finally`` (1.x names)."""

    Success = 1
    Stopped = 2
    Aborted = 3
    Error = 4


class BaseTask:
    """Base class of all tasks. Subclasses implement :meth:`run`.

    Args:
        name: The task's name, unique within a DAG.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called before ``run``.
        callback_finally: ``f(status, data, store, signal, context)`` called after
            ``run`` however it ended, with a :class:`TaskStatus`.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too. With
            ``False`` its successors run (with the data the skipped task received).
    """

    #: Whether a task interrupted by a worker crash may simply be run again.
    rerun_safe: bool = True

    def __init__(
        self,
        name: str,
        *,
        queue: str = DEFAULT_QUEUE,
        callback_init: Callable[..., Any] | None = None,
        callback_finally: Callable[..., Any] | None = None,
        force_run: bool = False,
        propagate_skip: bool = True,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TaskDefinitionError(f"a task name must be a non-empty string, got {name!r}")
        self._name = name
        self._queue = queue
        self._callback_init = callback_init
        self._callback_finally = callback_finally
        self._force_run = force_run
        self._propagate_skip = propagate_skip

    @property
    def name(self) -> str:
        """The task's name."""
        return self._name

    @property
    def queue(self) -> str:
        """The queue the task is routed to."""
        return self._queue

    @property
    def force_run(self) -> bool:
        """Whether the task runs even when its predecessors would skip it."""
        return self._force_run

    @property
    def has_to_run(self) -> bool:
        """1.x name of :attr:`force_run`."""
        return self._force_run

    @property
    def propagate_skip(self) -> bool:
        """Whether skipping this task also skips its successors."""
        return self._propagate_skip

    def run(
        self, data: MultiTaskData, store: Any, signal: Any, context: TaskContext, **kwargs: Any
    ) -> Action | None:
        """Do the task's work. Return an :class:`Action`, or ``None`` to pass ``data`` on.

        Raise :class:`~lightflow.models.StopTask` to stop early or
        :class:`~lightflow.models.AbortWorkflow` to abort the run.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")

    def _run(self, data: MultiTaskData, store: Any, signal: Any, context: TaskContext) -> Action:
        """Run the task with its callbacks and return the flattened output action.

        ``StopTask``, ``AbortWorkflow`` and errors are re-raised after
        ``callback_finally`` so the engine can record them.
        """
        status = TaskStatus.Error
        try:
            if self._callback_init is not None:
                self._callback_init(data, store, signal, context)
            result = self.run(data, store, signal, context)
            if result is None:
                result = Action(data)
            elif not isinstance(result, Action):
                raise TaskDefinitionError(
                    f"task '{self.name}' returned {type(result).__name__}; return an Action or None"
                )
            status = TaskStatus.Success
        except StopTask:
            status = TaskStatus.Stopped
            raise
        except AbortWorkflow:
            status = TaskStatus.Aborted
            raise
        finally:
            if self._callback_finally is not None:
                self._callback_finally(status, data, store, signal, context)
        result.data.flatten(in_place=True)
        result.data.add_task_history(self.name)
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r})"
