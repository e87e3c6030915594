"""Workflows for API callers: load one, list the configured ones, describe, draw.

Descriptions are plain data (JSON-able), the form the REST API serves and the CLI
prints: a workflow's parameters with their types, defaults and help, its DAGs, and
the graph of each DAG as nodes and edges. Nothing here runs a task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..workflows import Workflow, load_workflow
from ..workflows import list_workflows as _list_files

if TYPE_CHECKING:
    from ..config import Config
    from ..models.parameters import Option


def load(name_or_path: str | Workflow, config: Config | None = None) -> Workflow:
    """Load a workflow by file path or by name from the configured workflow paths.

    A :class:`Workflow` already loaded is returned as it is, so a caller that starts
    the same workflow many times (a trigger) loads and checks it once.

    Raises:
        LightflowError: The workflow cannot be found or loaded (one line).
    """
    if isinstance(name_or_path, Workflow):
        return name_or_path
    if config is None:
        return load_workflow(name_or_path)
    return load_workflow(
        name_or_path, config.workflows, config.libraries, config_file=config.file_name
    )


def list_workflows(*, config: Config) -> list[dict[str, Any]]:
    """Every workflow file in the configured folders, described (see :func:`describe`).

    A file that cannot be loaded is listed with ``error`` (one line) instead of its
    parameters and DAGs.
    """
    described = []
    for listing in _list_files(config.workflows, config.libraries):
        if listing.error is not None:
            described.append(
                {"name": listing.name, "path": str(listing.path), "error": listing.error}
            )
        else:
            described.append(describe(load(str(listing.path), config), name=listing.name))
    return described


def describe(workflow: Workflow, *, name: str | None = None) -> dict[str, Any]:
    """A loaded workflow as plain data: name, path, docstring, parameters, DAGs.

    Args:
        workflow: The workflow.
        name: Its name in the workflow folders, when it was listed from one (a file
            loaded by path is named after its stem).
    """
    return {
        "name": name or workflow.name,
        "path": str(workflow.path),
        "summary": workflow.summary,
        "docstring": workflow.docstring.strip(),
        "parameters": [describe_option(option) for option in workflow.parameters],
        "dags": [
            {"name": dag.name, "autostart": dag.autostart, "queue": dag.queue}
            for dag in workflow.dags.values()
        ],
    }


def describe_option(option: Option) -> dict[str, Any]:
    """One parameter as plain data; a default that is not JSON data is shown as text."""
    default = option.default
    if default is not None and not isinstance(default, (str, int, float, bool, list, dict)):
        default = repr(default)
    return {
        "name": option.name,
        "type": getattr(option.type, "__name__", repr(option.type)),
        "default": default,
        "required": option.required,
        "help": option.help or "",
    }


def workflow_graph(name_or_path: str | Workflow, *, config: Config) -> dict[str, Any]:
    """The DAGs of a workflow as nodes and edges, for drawing.

    Returns:
        ``{"name", "dags": [{"name", "queue", "autostart", "tasks": [{"name", "type",
        "queue", "force_run", "propagate_skip"}], "edges": [{"from", "to", "slot"}]}]}``;
        tasks in definition order, an edge's ``slot`` ``None`` unless the schema named
        one.

    Raises:
        LightflowError: The workflow cannot be found or loaded.
    """
    workflow = load(name_or_path, config)
    dags = []
    for dag in workflow.dags.values():
        tasks = [
            {
                "name": name,
                "type": type(task).__name__,
                "queue": task.queue,
                "force_run": task.force_run,
                "propagate_skip": task.propagate_skip,
            }
            for name, task in dag.tasks.items()
        ]
        edges = [
            {"from": predecessor, "to": name, "slot": slot}
            for name in dag.tasks
            for predecessor, slot in dag.predecessors(name)
        ]
        dags.append(
            {
                "name": dag.name,
                "queue": dag.queue,
                "autostart": dag.autostart,
                "tasks": tasks,
                "edges": edges,
            }
        )
    return {"name": workflow.name, "dags": dags}


def render_graph(name_or_path: str | Workflow, fmt: str, *, config: Config | None = None) -> str:
    """The workflow drawn as Graphviz DOT (``dot``) or Mermaid (``mermaid``) text.

    Raises:
        LightflowError: The workflow cannot be found or loaded.
        ValueError: ``fmt`` is neither.
    """
    from ..graph import render

    return render(load(name_or_path, config), fmt)
