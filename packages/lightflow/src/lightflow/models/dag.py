"""The DAG: tasks and the edges along which their data flows.

``Dag.define(schema)`` takes the 1.x schema: each key is a task, each value its
successors as a task, a list of tasks, ``None`` (no successors) or a dict mapping each
successor to a slot label (an alias under which the successor finds this task's data)
or ``None``. The graph is a :mod:`networkx` ``DiGraph`` over task names; the task
objects are kept beside it. Errors in the schema (cycles, two tasks with one name,
values that are not tasks) are reported when ``define`` is called, so the user sees
them at the line that made them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx

from ..exceptions import DagDefinitionError
from .task import BaseTask


class Dag:
    """A directed acyclic graph of tasks.

    Args:
        name: The DAG's name, unique within a workflow.
        autostart: Start this DAG when the workflow starts. DAGs with ``False`` are
            started by tasks through ``signal.start_dag``.
        queue: The queue the DAG's management job is routed to (distributed engine).
        schema: A schema to :meth:`define` right away.
    """

    def __init__(self, name: str, *, autostart: bool = True, queue: str = "dag",
                 schema: Mapping[Any, Any] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise DagDefinitionError(f"a DAG name must be a non-empty string, got {name!r}")
        self._name = name
        self._autostart = autostart
        self._queue = queue
        self._graph: nx.DiGraph = nx.DiGraph()
        self._tasks: dict[str, BaseTask] = {}
        if schema is not None:
            self.define(schema)

    @property
    def name(self) -> str:
        """The DAG's name."""
        return self._name

    @property
    def autostart(self) -> bool:
        """Whether the DAG starts with the workflow."""
        return self._autostart

    @property
    def queue(self) -> str:
        """The queue of the DAG's management job."""
        return self._queue

    @property
    def graph(self) -> nx.DiGraph:
        """The graph over task names; edges carry a ``slot`` label or ``None``."""
        return self._graph

    @property
    def tasks(self) -> dict[str, BaseTask]:
        """The DAG's tasks by name, in the order they were first mentioned."""
        return dict(self._tasks)

    def task(self, name: str) -> BaseTask:
        """Return the task called ``name``."""
        return self._tasks[name]

    def define(self, schema: Mapping[Any, Any]) -> None:
        """Build the graph from a 1.x schema, replacing any previous definition.

        Raises:
            DagDefinitionError: The schema is not a dict of tasks, names a task twice
                with different objects, or has a cycle (the cycle is named).
        """
        if not isinstance(schema, Mapping):
            raise DagDefinitionError(
                f"Dag '{self._name}': define() takes a dict like {{task: [next, ...]}}, "
                f"got {type(schema).__name__}")
        graph: nx.DiGraph = nx.DiGraph()
        tasks: dict[str, BaseTask] = {}
        for parent, children in schema.items():
            parent_name = self._add_task(tasks, graph, parent)
            for child, slot in self._children(parent_name, children):
                child_name = self._add_task(tasks, graph, child)
                if slot is not None and not isinstance(slot, str):
                    raise DagDefinitionError(
                        f"Dag '{self._name}': slot label for '{parent_name}' -> "
                        f"'{child_name}' must be a string or None, got {slot!r}")
                graph.add_edge(parent_name, child_name, slot=slot or None)
        self._check_acyclic(graph)
        self._graph = graph
        self._tasks = tasks

    def _children(self, parent: str, children: Any) -> Iterable[tuple[Any, str | None]]:
        if children is None:
            return []
        if isinstance(children, Mapping):
            return list(children.items())
        if isinstance(children, (list, tuple, set, frozenset)):
            return [(child, None) for child in children]
        return [(children, None)]

    def _add_task(self, tasks: dict[str, BaseTask], graph: nx.DiGraph, task: Any) -> str:
        if not isinstance(task, BaseTask):
            raise DagDefinitionError(
                f"Dag '{self._name}': schema entries must be tasks, got {task!r}")
        known = tasks.get(task.name)
        if known is not None and known is not task:
            raise DagDefinitionError(
                f"Dag '{self._name}': two different tasks are named '{task.name}'; "
                "give each task a unique name")
        tasks[task.name] = task
        graph.add_node(task.name)
        return task.name

    def _check_acyclic(self, graph: nx.DiGraph) -> None:
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            return
        path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
        raise DagDefinitionError(
            f"Dag '{self._name}' has a cycle: {path}; a DAG must not loop back")

    def __repr__(self) -> str:
        return f"Dag({self._name!r}, tasks={list(self._tasks)})"
