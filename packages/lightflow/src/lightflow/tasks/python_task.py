"""PythonTask: the task type that runs a user-supplied Python callable.

This module owns only the mapping from the task's ``run`` to the user's callback; the
life cycle around it (``callback_init``, ``callback_finally``, result checks) is
:class:`~lightflow.models.task.BaseTask`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import TaskDefinitionError
from ..models.task import DEFAULT_QUEUE, BaseTask

if TYPE_CHECKING:
    from ..models.action import Action
    from ..models.context import TaskContext
    from ..models.task_data import MultiTaskData


class PythonTask(BaseTask):
    """A task that calls ``callback(data, store, signal, context)`` when it runs.

    The callback may change ``data`` in place and return ``None`` (its successors get
    ``data``), or return an :class:`~lightflow.models.Action` to choose the data and
    the successors that run. It may raise ``StopTask`` or ``AbortWorkflow``.

    Args:
        name: The task's name, unique within a DAG.
        callback: ``f(data, store, signal, context) -> Action | None``. Without one the
            task passes its input data on unchanged, which is handy as a join point.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called before ``callback``.
        callback_finally: ``f(status, data, store, signal, context)`` called after the
            task however it ended, with a :class:`~lightflow.models.TaskStatus`.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    Raises:
        TaskDefinitionError: ``callback`` is given but is not callable; reported when the
            workflow is loaded rather than when the task first runs on a worker.
    """

    def __init__(
        self,
        name: str,
        callback: Callable[..., Action | None] | None = None,
        *,
        queue: str = DEFAULT_QUEUE,
        callback_init: Callable[..., Any] | None = None,
        callback_finally: Callable[..., Any] | None = None,
        force_run: bool = False,
        propagate_skip: bool = True,
    ) -> None:
        super().__init__(
            name,
            queue=queue,
            callback_init=callback_init,
            callback_finally=callback_finally,
            force_run=force_run,
            propagate_skip=propagate_skip,
        )
        if callback is not None and not callable(callback):
            raise TaskDefinitionError(
                f"task '{name}': callback must be a function taking "
                f"(data, store, signal, context), got {type(callback).__name__}"
            )
        self._callback = callback

    def run(
        self, data: MultiTaskData, store: Any, signal: Any, context: TaskContext, **kwargs: Any
    ) -> Action | None:
        """Call the callback and return its result (``None`` passes ``data`` on)."""
        if self._callback is None:
            return None
        return self._callback(data, store, signal, context)
