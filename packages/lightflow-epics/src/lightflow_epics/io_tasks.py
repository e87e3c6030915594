"""PvGetTask and PvPutTask: read PVs into a run's data, write a value to a PV.

Both are one-shot and bounded: a PV that does not connect, refuses access or does not
confirm a write within the task's ``timeout`` fails the task with one line naming the
PV (and, for a PV that did not connect, the EPICS address settings in force); they
never hang a worker. Channel Access and PV Access (``pva://NAME``) behave alike
(:mod:`lightflow_epics.channel`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lightflow.exceptions import ConfigError
from lightflow.models import BaseTask, TaskParameters
from lightflow.models.task import DEFAULT_QUEUE

from . import channel

if TYPE_CHECKING:
    from lightflow.models import Action, MultiTaskData, TaskContext

#: Seconds a PV task waits for its PVs by default.
DEFAULT_TIMEOUT = 5.0

PvNames = str | Sequence[str] | Mapping[str, str]


class PvGetTask(BaseTask):
    """Reads one or more PVs into the task's data.

    ``pvs`` says which PVs and under which keys of the data their values go: a name
    (``'BL:ENERGY'`` -> ``data['BL:ENERGY']``), a list of names (each under its own
    name), or a mapping from data key to PV (``{'energy': 'BL:ENERGY'}`` ->
    ``data['energy']``). All PVs are read together, within ``timeout`` seconds in all.

    ``pvs``, ``timeout`` and ``metadata`` may be callables ``f(data, store)``
    evaluated when the task runs.

    Args:
        name: The task's name, unique within a DAG.
        pvs: The PVs to read (see above); ``pva://NAME`` goes through PV Access.
        timeout: Seconds for connecting and reading all of them.
        metadata: Store ``{'value', 'timestamp', 'severity', 'status'}`` per PV instead
            of the bare value.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called before the read.
        callback_finally: ``f(status, data, store, signal, context)`` called after it.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.
    """

    def __init__(
        self,
        name: str,
        pvs: PvNames | Callable[[Any, Any], PvNames],
        timeout: float | Callable[[Any, Any], float] = DEFAULT_TIMEOUT,
        metadata: bool | Callable[[Any, Any], bool] = False,
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
        self.params = TaskParameters(pvs=pvs, timeout=timeout, metadata=metadata)

    def run(
        self, data: MultiTaskData, store: Any, signal: Any, context: TaskContext, **kwargs: Any
    ) -> Action | None:
        """Read the PVs and put their values into ``data``.

        Raises:
            PvError: A PV did not connect or answer within the timeout.
            ConfigError: ``pvs`` or ``timeout`` evaluated to something unusable.
        """
        params = self.params.eval(data, store)
        keys = _keys(params.pvs)
        results = channel.read(list(dict.fromkeys(keys.values())), params.timeout)
        for key, pv in keys.items():
            got = results[pv]
            data[key] = (
                {field: got[field] for field in ("value", "timestamp", "severity", "status")}
                if params.metadata
                else got["value"]
            )
        return None


class PvPutTask(BaseTask):
    """Writes a value to a PV, for instance a result or a status for the operators.

    ``pv_name``, ``value``, ``wait`` and ``timeout`` may be callables ``f(data,
    store)`` evaluated when the task runs (``value=lambda data, store:
    data['fit']['centre']``).

    Args:
        name: The task's name, unique within a DAG.
        pv_name: The PV to write; ``pva://NAME`` goes through PV Access.
        value: What to write: a number, a string, or a list for a waveform.
        wait: Wait until the IOC reports the record's processing done
            (put-completion), e.g. a motor that has arrived.
        timeout: Seconds for connecting and, with ``wait``, for the processing.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called before the write.
        callback_finally: ``f(status, data, store, signal, context)`` called after it.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.
    """

    def __init__(
        self,
        name: str,
        pv_name: str | Callable[[Any, Any], str],
        value: Any,
        wait: bool | Callable[[Any, Any], bool] = False,
        timeout: float | Callable[[Any, Any], float] = DEFAULT_TIMEOUT,
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
        self.params = TaskParameters(pv_name=pv_name, value=value, wait=wait, timeout=timeout)

    def run(
        self, data: MultiTaskData, store: Any, signal: Any, context: TaskContext, **kwargs: Any
    ) -> Action | None:
        """Write the value; pass ``data`` on unchanged.

        Raises:
            PvError: The PV did not connect in time, is read-only, refused the value,
                or (with ``wait``) did not report the processing done in time.
        """
        params = self.params.eval(data, store)
        if params.value is None:
            raise ConfigError(
                f"task '{self.name}': the value to write to {params.pv_name} is None; "
                "give a number, a string or a list"
            )
        channel.write(params.pv_name, params.value, wait=bool(params.wait), timeout=params.timeout)
        return None


def _keys(pvs: Any) -> dict[str, str]:
    """Data key -> PV name for ``PvGetTask``'s ``pvs``.

    Raises:
        ConfigError: ``pvs`` is none of a name, a list of names or a mapping.
    """
    if isinstance(pvs, str):
        return {pvs: pvs}
    if isinstance(pvs, Mapping) and pvs:
        return {str(key): pv for key, pv in pvs.items()}
    if isinstance(pvs, Sequence) and pvs:
        return {pv: pv for pv in pvs}
    raise ConfigError(
        f"'pvs' is a PV name, a list of PV names or a mapping from data key to PV name, got {pvs!r}"
    )
