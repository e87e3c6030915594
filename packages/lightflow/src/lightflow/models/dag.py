"""The DAG: tasks and the edges along which their data flows.

``Dag.define(schema)`` takes the 1.x schema: each key is a task, each value its
successors as a task, a list of tasks, ``None`` (no successors) or a dict mapping each
successor to a slot label (an alias under which the successor finds this task's data)
or ``None``. :attr:`Dag.graph` is a :mod:`networkx` ``DiGraph`` over task names with
the task objects kept beside it. The DAG also keeps its own plain adjacency lists,
which is what scheduling reads, so that starting a workflow or running a task never
pays networkx's import time (about 0.15 s); the networkx graph is built on first use.
Errors in the schema (cycles, two tasks with one name, values that are not tasks) are
reported when ``define`` is called, so the user sees them at the line that made them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import DagDefinitionError
from .task import BaseTask

if TYPE_CHECKING:
    import networkx as nx


#: The queue of a DAG's management jobs unless it names another.
DEFAULT_QUEUE = "dag"


class Dag:
    """A directed acyclic graph of tasks.

    Args:
        name: The DAG's name, unique within a workflow.
        autostart: Start this DAG when the workflow starts. DAGs with ``False`` are
            started by tasks through ``signal.start_dag``.
        queue: The queue the DAG's management job is routed to (distributed engine).
        schema: A schema to :meth:`define` right away.
    """

    def __init__(
        self,
        name: str,
        *,
        autostart: bool = True,
        queue: str = DEFAULT_QUEUE,
        schema: Mapping[Any, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise DagDefinitionError(f"a DAG name must be a non-empty string, got {name!r}")
        self._name = name
        self._autostart = autostart
        self._queue = queue
        self._tasks: dict[str, BaseTask] = {}
        self._successors: dict[str, list[str]] = {}
        self._predecessors: dict[str, list[tuple[str, str | None]]] = {}
        self._graph: nx.DiGraph | None = None
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
        if self._graph is None:
            import networkx as nx

            graph = nx.DiGraph()
            graph.add_nodes_from(self._tasks)
            for child, parents in self._predecessors.items():
                for parent, slot in parents:
                    graph.add_edge(parent, child, slot=slot)
            self._graph = graph
        return self._graph

    def successors(self, name: str) -> list[str]:
        """Names of the tasks that receive ``name``'s output, in definition order."""
        return list(self._successors[name])

    def predecessors(self, name: str) -> list[tuple[str, str | None]]:
        """``(task, slot label)`` of the tasks feeding ``name``, in definition order."""
        return list(self._predecessors[name])

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
                f"got {type(schema).__name__}"
            )
        tasks: dict[str, BaseTask] = {}
        successors: dict[str, list[str]] = {}
        predecessors: dict[str, list[tuple[str, str | None]]] = {}
        # Where each edge is in its child's predecessors: a join of thousands of lanes
        # is defined in time linear in its edges.
        edges: dict[tuple[str, str], int] = {}
        for parent, children in schema.items():
            parent_name = self._add_task(tasks, successors, predecessors, parent)
            for child, slot in self._children(parent_name, children):
                child_name = self._add_task(tasks, successors, predecessors, child)
                if slot is not None and not isinstance(slot, str):
                    raise DagDefinitionError(
                        f"Dag '{self._name}': slot label for '{parent_name}' -> "
                        f"'{child_name}' must be a string or None, got {slot!r}"
                    )
                known = edges.get((parent_name, child_name))
                if known is not None:  # the same edge again: the last label wins, as in a graph
                    predecessors[child_name][known] = (parent_name, slot or None)
                else:
                    edges[(parent_name, child_name)] = len(predecessors[child_name])
                    successors[parent_name].append(child_name)
                    predecessors[child_name].append((parent_name, slot or None))
        self._check_acyclic(successors)
        self._tasks, self._successors, self._predecessors = tasks, successors, predecessors
        self._graph = None

    def _children(self, parent: str, children: Any) -> Iterable[tuple[Any, str | None]]:
        if children is None:
            return []
        if isinstance(children, Mapping):
            return list(children.items())
        if isinstance(children, (list, tuple, set, frozenset)):
            return [(child, None) for child in children]
        return [(children, None)]

    def _add_task(
        self,
        tasks: dict[str, BaseTask],
        successors: dict[str, list[str]],
        predecessors: dict[str, list[tuple[str, str | None]]],
        task: Any,
    ) -> str:
        if not isinstance(task, BaseTask):
            raise DagDefinitionError(
                f"Dag '{self._name}': schema entries must be tasks, got {task!r}"
            )
        known = tasks.get(task.name)
        if known is not None and known is not task:
            raise DagDefinitionError(
                f"Dag '{self._name}': two different tasks are named '{task.name}'; "
                "give each task a unique name"
            )
        tasks[task.name] = task
        successors.setdefault(task.name, [])
        predecessors.setdefault(task.name, [])
        return task.name

    def _check_acyclic(self, successors: dict[str, list[str]]) -> None:
        """Raise naming the first cycle found (iterative depth-first search)."""
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        for root in successors:
            if root in state:
                continue
            path, stack = [root], [iter(successors[root])]
            state[root] = 1
            while stack:
                child = next(stack[-1], None)
                if child is None:
                    state[path.pop()] = 2
                    stack.pop()
                elif state.get(child) == 1:
                    cycle = [*path[path.index(child) :], child]
                    raise DagDefinitionError(
                        f"Dag '{self._name}' has a cycle: {' -> '.join(cycle)}; "
                        "a DAG must not loop back"
                    )
                elif child not in state:
                    state[child] = 1
                    path.append(child)
                    stack.append(iter(successors[child]))

    def __repr__(self) -> str:
        return f"Dag({self._name!r}, tasks={list(self._tasks)})"
