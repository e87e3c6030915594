"""The public API that the CLI, the REST service and extensions call.

Commands stay thin: they parse input, call a function here, and render the result.
Nothing here prints or exits; errors are :class:`~lightflow.exceptions.LightflowError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .exceptions import ParameterError
from .local.engine import LocalRun, RunResult, TaskRecord
from .records import EventListener
from .store.memory import MemoryDataStore
from .workflows import Workflow, load_workflow

if TYPE_CHECKING:
    from .config import Config

__all__ = ["RunResult", "TaskRecord", "load", "parse_arguments", "run_workflow"]


def parse_arguments(items: Sequence[str]) -> dict[str, str]:
    """Turn ``['key=value', ...]`` into a dict.

    Raises:
        ParameterError: An item has no ``=`` or an empty key.
    """
    arguments: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ParameterError(
                f"malformed argument {item!r}: workflow arguments are written key=value")
        arguments[key.strip()] = value
    return arguments


def load(name_or_path: str, config: Config | None = None) -> Workflow:
    """Load a workflow by file path or by name from the configured workflow paths."""
    if config is None:
        return load_workflow(name_or_path)
    return load_workflow(name_or_path, config.workflows, config.libraries)


def run_workflow(name_or_path: str, arguments: Mapping[str, str] | None = None, *,
                 config: Config | None = None, workers: int | None = None,
                 on_event: EventListener | None = None) -> RunResult:
    """Run a workflow to its end on the embedded engine (in this process).

    The workflow and its arguments are validated before anything runs.

    Args:
        name_or_path: A workflow file or a workflow name.
        arguments: ``key=value`` arguments for the workflow's parameters.
        config: The configuration (workflow and library paths).
        workers: Tasks that may run at once (default: CPU count + 4, at most 32).
        on_event: Called with every run event, for progress display.

    Raises:
        LightflowError: The workflow or the arguments are invalid.
    """
    workflow = load(name_or_path, config)
    values: dict[str, Any] = workflow.parameters.consolidate(dict(arguments or {}))
    store = MemoryDataStore()
    return LocalRun(workflow, values, store=store, workers=workers, listener=on_event).run()
