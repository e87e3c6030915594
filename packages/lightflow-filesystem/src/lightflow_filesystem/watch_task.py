"""What NotifyTriggerTask and NewLineTriggerTask share: the 1.x trigger-task life cycle.

A 1.x trigger task watches something for as long as its run lasts and calls its
callback with each ``aggregate``-sized batch. The watching itself is the core's
:func:`lightflow.triggers.watch_in_task` (event-driven, stopped within 1 s by
``workflow stop`` or Ctrl-C, batches in the order things happened, a partial batch
logged by name at the stop, what the task holds released if the run gives it up);
the sources are the ones the ``lightflow fs watch`` command uses. A subclass only
builds its source (:meth:`WatchTask.source`); its callback receives for a batch what
a workflow started by that source receives as its one parameter (``files``,
``lines``).

The 1.x tuning arguments ``event_trigger_time`` and ``stop_polling_rate`` are
accepted (checked to be numbers) and do not slow anything down any more: 1.x slept
``event_trigger_time`` seconds per event or between looks at the file, and read the
stop flag only every ``stop_polling_rate`` events; now events wake the task at once
and the stop flag is read every 0.25 s. ``NewLineTriggerTask`` uses
``event_trigger_time`` as its polling interval when asked to poll.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from lightflow.exceptions import ConfigError
from lightflow.triggers import TriggerEvent, TriggerSource, watch_in_task

from .exceptions import LightflowFilesystemConfigError
from .file_task import Argument, FileTask

if TYPE_CHECKING:
    from lightflow.models import Action, MultiTaskData, TaskContext, TaskParameters


class WatchTask(FileTask):
    """Base of the trigger tasks; subclasses implement :meth:`source`.

    Args:
        name: The task's name, unique within a DAG.
        callback: ``f(values, data, store, signal, context)`` per batch, or ``None``.
        signature: How the callback is called, for the error about a bad callback.
        **arguments: The task's arguments (``aggregate``, ``use_existing``,
            ``flush_existing``, the 1.x tuning numbers, the source's own), evaluated
            at run time, plus the common keywords of every task.
    """

    def __init__(
        self,
        name: str,
        callback: Callable[..., Any] | None,
        signature: str,
        **arguments: Argument,
    ) -> None:
        super().__init__(name, **arguments)
        self._callback = self.checked_callback(callback, signature)

    def apply(
        self,
        params: TaskParameters,
        data: MultiTaskData,
        store: Any,
        signal: Any,
        context: TaskContext,
    ) -> Action | None:
        """Watch until the DAG or the workflow is stopped, calling back per batch."""
        for compatible in ("event_trigger_time", "stop_polling_rate"):
            self._number(params[compatible], compatible, optional=True)
        aggregate = params.aggregate
        if aggregate is not None and (self._number(aggregate, "aggregate") < 1 or aggregate % 1):
            raise LightflowFilesystemConfigError(
                f"task '{self.name}': aggregate must be a whole number >= 1 or None, "
                f"got {aggregate!r}"
            )
        try:
            source = self.source(params)
        except ConfigError as error:
            raise LightflowFilesystemConfigError(f"task '{self.name}': {error}") from None
        (parameter,) = source.parameters

        def values(events: Sequence[TriggerEvent]) -> list[Any]:
            return source.arguments(events)[parameter]

        def handle(batch: list[TriggerEvent]) -> None:
            if self._callback is not None:
                self._callback(values(batch), data, store, signal, context)

        watch_in_task(
            source,
            signal,
            handle,
            aggregate=None if aggregate is None else int(aggregate),
            skip_duplicates=bool(params.get("skip_duplicate", False)),
            existing=bool(params.use_existing),
            flush_existing=bool(params.flush_existing),
            describe=lambda events: ", ".join(repr(value) for value in values(list(events))),
        )
        return None

    def source(self, params: TaskParameters) -> TriggerSource:
        """The source to watch, built from the evaluated arguments."""
        raise NotImplementedError(f"{type(self).__name__} does not implement source()")

    def _number(self, value: Any, argument: str, *, optional: bool = False) -> float:
        if value is None and optional:
            return 0.0
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise LightflowFilesystemConfigError(
                f"task '{self.name}': {argument} must be a number >= 0"
                f"{' or None' if optional else ''}, got {value!r}"
            )
        return float(value)
