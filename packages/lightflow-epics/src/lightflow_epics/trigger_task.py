"""PvTriggerTask: the 1.x task that calls a callback on every update of a PV.

Workflows written for lightflow-epics 1.x run unchanged: the task watches a PV for as
long as its DAG runs and calls ``callback(data, store, signal, context, **event)`` per
update, where ``event`` holds the monitor keywords (``pvname``, ``value``,
``char_value``, ``timestamp``, ``severity``, ``status``, ...); the callback usually
calls ``signal.start_dag(...)``. It drives the same :class:`~lightflow_epics.source.PvSource`
as the trigger runtime through :func:`lightflow.triggers.watch_in_task`, which is
where it differs from 1.x:

* updates reach the callback in the order they happened (1.x took the newest first);
* the task sleeps until an update arrives, so an idle trigger costs ~0% CPU (1.x
  spun at 100% with the default ``event_trigger_time=None``), and a stop
  (``workflow stop``, Ctrl-C) ends it within 1 s;
* ``skip_initial_callback`` skips exactly the value read when the PV first connects
  (1.x skipped whichever update it happened to take first);
* a PV that does not connect in time is logged once with the EPICS address settings,
  and a lost IOC is logged and picked up again when it returns (see the source).

``event_trigger_time`` and ``stop_polling_rate`` tuned 1.x's polling loop (how long
to sleep between looks at the queue; how many looks between checks of the stop
flag). There is no such loop any more, so both are accepted and have no effect:
updates are handled as they arrive and stops are seen within 1 s whatever they say.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from lightflow.exceptions import TaskDefinitionError
from lightflow.models import BaseTask, TaskParameters
from lightflow.models.task import DEFAULT_QUEUE
from lightflow.triggers import TriggerEvent, watch_in_task

from .source import DEFAULT_CONNECTION_TIMEOUT, PvEvent, PvSource

if TYPE_CHECKING:
    from lightflow.models import Action, MultiTaskData, TaskContext


class PvTriggerTask(BaseTask):
    """Calls a callback on every update of a PV until the DAG is stopped.

    Every argument except ``name``, ``callback`` and the keyword-only task options may
    be a callable ``f(data, store)`` evaluated when the task starts (typically
    ``pv_name=lambda data, store: store.get('pvname')``).

    Args:
        name: The task's name, unique within a DAG.
        pv_name: The PV to watch; ``pva://NAME`` goes through PV Access.
        callback: ``f(data, store, signal, context, **event)`` called per update, in
            order, in the task's thread; ``event`` holds the monitor keywords. It may
            change ``data`` (passed on when the task ends) and raise ``StopTask`` to
            end the watch.
        event_trigger_time: 1.x polling interval; accepted, no effect (see the module
            docstring).
        stop_polling_rate: 1.x stop-check period; accepted, no effect.
        skip_initial_callback: Do not call ``callback`` for the value read when the PV
            first connects.
        connection_timeout: Seconds before a PV that has not connected is logged
            (with ``on_timeout='fail'``: fails the task).
        on_timeout: ``'wait'`` (log it once and keep waiting) or ``'fail'``.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called before the watch.
        callback_finally: ``f(status, data, store, signal, context)`` called after it.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    Raises:
        TaskDefinitionError: ``callback`` is not callable.
    """

    def __init__(
        self,
        name: str,
        pv_name: str | Callable[[Any, Any], str],
        callback: Callable[..., Any] | None,
        event_trigger_time: float | None = None,
        stop_polling_rate: float = 2,
        skip_initial_callback: bool | Callable[[Any, Any], bool] = True,
        *,
        connection_timeout: float | Callable[[Any, Any], float] = DEFAULT_CONNECTION_TIMEOUT,
        on_timeout: str | Callable[[Any, Any], str] = "wait",
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
                f"(data, store, signal, context, **event), got {type(callback).__name__}"
            )
        self.params = TaskParameters(
            pv_name=pv_name,
            skip_initial_callback=skip_initial_callback,
            connection_timeout=connection_timeout,
            on_timeout=on_timeout,
        )
        self._callback = callback

    def run(
        self, data: MultiTaskData, store: Any, signal: Any, context: TaskContext, **kwargs: Any
    ) -> Action | None:
        """Watch the PV until the DAG or the workflow is stopped; pass ``data`` on.

        Raises:
            ConfigError: An argument evaluated to something unusable (a ``pv_name``
                that is not a PV name...).
            PvError: With ``on_timeout='fail'``, the PV did not connect in time.
        """
        params = self.params.eval(data, store)
        source = PvSource(
            params.pv_name,
            skip_initial=bool(params.skip_initial_callback),
            connection_timeout=params.connection_timeout,
            on_timeout=params.on_timeout,
        )

        def handle(events: list[TriggerEvent]) -> None:
            if self._callback is None:
                return
            for event in events:
                self._callback(data, store, signal, context, **cast(PvEvent, event).keywords)

        watch_in_task(source, signal, handle, describe=_describe)
        return None


def _describe(events: Iterable[TriggerEvent]) -> str:
    """Updates left unhandled at a stop, for the log: their values."""
    return ", ".join(repr(event.values.get("value")) for event in events)
