"""Signals from a running task to its workflow: start, join and stop DAGs.

Tasks receive a :class:`TaskSignal` as their third argument (1.x API). It forwards each
request to a :class:`SignalChannel` provided by the engine running the task: an
in-process channel for the embedded engine, a broker-backed one for the distributed
engine. The task-facing API stays the same on both, and so do the checks of what a
task asks for and their messages (:func:`dag_to_start`, :func:`dags_to_join`, the stop
reasons), written here once for both channels.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ..exceptions import SignalError
from ..models.dag import Dag

if TYPE_CHECKING:
    from ..workflows import Workflow


def stop_dag_reason(dag: str, requested_by: str) -> str:
    """Why a run stopped when a task stopped a DAG (the same words on both engines)."""
    return f"DAG '{dag}' stopped by signal.stop_dag() in DAG '{requested_by}'"


def stop_workflow_reason(requested_by: str) -> str:
    """Why a run stopped when a task stopped the workflow."""
    return f"stopped by signal.stop_workflow() in DAG '{requested_by}'"


def dag_to_start(dag: Dag | str, workflow: Workflow) -> Dag:
    """The DAG ``start_dag`` asks for: the one given, or the workflow's of that name.

    Raises:
        SignalError: The workflow has no DAG of that name.
    """
    if not isinstance(dag, str):
        return dag
    if dag not in workflow.dags:
        known = ", ".join(workflow.dags)
        raise SignalError(
            f"start_dag: no DAG named '{dag}' in workflow '{workflow.name}' (DAGs: {known})"
        )
    return workflow.dags[dag]


def dags_to_join(
    names: list[str] | None, requested_by: str, instances: Collection[str]
) -> list[str]:
    """The DAG instances ``join_dags`` waits for: ``names``, or every other one.

    Args:
        names: The instances asked for (``None``: all of ``instances`` but the asking one).
        requested_by: The instance of the task that asks.
        instances: The run's instances now.

    Raises:
        SignalError: A DAG would wait for itself, or a name is no instance of the run.
    """
    wanted = names if names is not None else [name for name in instances if name != requested_by]
    if requested_by in wanted:
        raise SignalError(
            f"join_dags: DAG '{requested_by}' cannot wait for itself to finish; "
            "join other DAGs only"
        )
    unknown = [name for name in wanted if name not in instances]
    if unknown:
        raise SignalError(
            f"join_dags: no DAG instance named '{unknown[0]}' in this run; pass names "
            "returned by start_dag"
        )
    return wanted


class SignalChannel(Protocol):
    """What an engine implements so tasks can steer their workflow run."""

    def start_dag(self, dag: Dag | str, data: Any, requested_by: str) -> str:
        """Start a DAG of the workflow (or the given Dag); return its instance name."""

    def join_dags(self, names: list[str] | None, requested_by: str) -> bool:
        """Block until the named DAG instances (all others if ``None``) are done."""

    def stop_dag(self, name: str) -> bool:
        """Stop a DAG instance; ``False`` if there is no such DAG."""

    def stop_workflow(self, requested_by: str) -> None:
        """Stop the whole workflow run (``requested_by``: the asking DAG instance)."""

    def is_stopped(self, dag_name: str) -> bool:
        """Whether the DAG instance or the workflow has been asked to stop."""


class TaskSignal:
    """The ``signal`` argument of task callbacks.

    Args:
        channel: The engine's signal channel.
        dag_name: The DAG instance the task runs in.
    """

    def __init__(self, channel: SignalChannel, dag_name: str) -> None:
        self._channel = channel
        self._dag_name = dag_name

    def start_dag(self, dag: Dag | str, *, data: Any = None) -> str:
        """Start a DAG (object or name) with optional start data; return its name.

        A DAG started several times gets distinct names (``name``, ``name:2``, ...). On a
        cluster, a task re-run after its worker died gets the same names back from the
        same calls: the DAGs its earlier attempt started, not new copies.
        """
        return self._channel.start_dag(dag, data, self._dag_name)

    def join_dags(self, names: Iterable[str] | None = None) -> bool:
        """Wait until the given DAGs (default: every other DAG of the run) are done.

        The wait never starves them: the embedded engine does not count a waiting task
        against its workers, and on a cluster the waiting process runs their tasks
        meanwhile (those on its worker's queues). Returns whether all succeeded.
        """
        return self._channel.join_dags(None if names is None else list(names), self._dag_name)

    def stop_dag(self, name: str | None = None) -> bool:
        """Stop a DAG (default: the task's own DAG)."""
        return self._channel.stop_dag(name or self._dag_name)

    def stop_workflow(self) -> None:
        """Stop the whole workflow run: nothing more is queued, running tasks see it."""
        self._channel.stop_workflow(self._dag_name)

    @property
    def is_stopped(self) -> bool:
        """Whether the task's DAG or the workflow was asked to stop."""
        return self._channel.is_stopped(self._dag_name)
