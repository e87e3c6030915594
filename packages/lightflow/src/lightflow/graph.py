"""Drawing a workflow's DAGs as Graphviz DOT or Mermaid text.

Each DAG becomes a subgraph (a DOT cluster, a Mermaid ``subgraph``) holding its tasks;
an edge carries its slot label when the schema gave one. A task's queue is shown in
its label when it is not the default ``task`` queue, and a DAG's queue in the
subgraph's title when it is not ``dag``. Only the structure is read (``Dag.graph``
and ``Dag.tasks``), so drawing never runs anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .models.dag import DEFAULT_QUEUE as DAG_QUEUE
from .models.task import DEFAULT_QUEUE as TASK_QUEUE

if TYPE_CHECKING:
    from .models.dag import Dag
    from .workflows import Workflow

FORMATS = ("dot", "mermaid")


def render(workflow: Workflow, fmt: str) -> str:
    """The workflow drawn in ``fmt`` (``dot`` or ``mermaid``)."""
    if fmt == "dot":
        return to_dot(workflow)
    if fmt == "mermaid":
        return to_mermaid(workflow)
    raise ValueError(f"unknown graph format {fmt!r}; use one of {', '.join(FORMATS)}")


def to_dot(workflow: Workflow) -> str:
    """Graphviz DOT text: one ``cluster_`` subgraph per DAG."""
    lines = [
        f"digraph {_dot_quote(workflow.name)} {{",
        "  compound=true;",
        "  node [shape=box, style=rounded];",
    ]
    for index, dag in enumerate(workflow.dags.values()):
        lines.append(f"  subgraph {_dot_quote(f'cluster_{index}')} {{")
        lines.append(f"    label={_dot_quote(_dag_label(dag))};")
        for task in _task_names(dag):
            lines.append(
                f"    {_dot_quote(_node_id(dag, task))} "
                f"[label={_dot_quote(_task_label(dag, task))}];"
            )
        for parent, child, slot in _edges(dag):
            attributes = f" [label={_dot_quote(slot)}]" if slot else ""
            lines.append(
                f"    {_dot_quote(_node_id(dag, parent))} -> "
                f"{_dot_quote(_node_id(dag, child))}{attributes};"
            )
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(workflow: Workflow) -> str:
    """Mermaid ``flowchart`` text: one ``subgraph`` per DAG."""
    lines = ["flowchart TD"]
    for dag_index, dag in enumerate(workflow.dags.values()):
        ids = {task: f"d{dag_index}t{i}" for i, task in enumerate(_task_names(dag))}
        lines.append(f"  subgraph d{dag_index}[{_mermaid_quote(_dag_label(dag))}]")
        for task, node in ids.items():
            lines.append(f"    {node}[{_mermaid_quote(_task_label(dag, task))}]")
        for parent, child, slot in _edges(dag):
            arrow = f"-->|{_mermaid_quote(slot)}|" if slot else "-->"
            lines.append(f"    {ids[parent]} {arrow} {ids[child]}")
        lines.append("  end")
    return "\n".join(lines) + "\n"


def _task_names(dag: Dag) -> list[str]:
    names = list(dag.tasks)
    return names + [node for node in dag.graph.nodes if node not in dag.tasks]


def _edges(dag: Dag) -> Iterable[tuple[str, str, str | None]]:
    for parent, child, attributes in dag.graph.edges(data=True):
        yield parent, child, attributes.get("slot")


def _dag_label(dag: Dag) -> str:
    if dag.queue != DAG_QUEUE:
        return f"{dag.name} (queue: {dag.queue})"
    return dag.name


def _task_label(dag: Dag, task: str) -> str:
    queue = getattr(dag.tasks.get(task), "queue", TASK_QUEUE)
    if queue != TASK_QUEUE:
        return f"{task}\nqueue: {queue}"
    return task


def _node_id(dag: Dag, task: str) -> str:
    return f"{dag.name}/{task}"


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _mermaid_quote(text: str) -> str:
    # Inside a quoted Mermaid label, '#' starts an entity, '"' ends the label and
    # '<' '>' would be read as HTML.
    escaped = (
        text.replace("#", "#35;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("\n", "<br/>")
    )
    return f'"{escaped}"'
