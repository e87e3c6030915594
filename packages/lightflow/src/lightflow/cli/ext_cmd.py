"""``lightflow ext`` and ``lightflow tasks``: what extensions and task types are installed."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import click


@click.group("ext")
def ext_group() -> None:
    """Installed extensions."""


@ext_group.command("list")
def ext_list() -> None:
    """List the installed extensions with their versions."""
    from ..plugins import manager

    extensions = manager.installed_extensions()
    broken = [p for p in manager.problems() if p.distribution is not None]
    if not extensions and not broken:
        click.echo("No extensions installed.")
        return
    rows = [(e.name, e.distribution, e.version, "") for e in extensions]
    rows += [
        (p.plugin, p.distribution or "?", p.version or "?", f"BROKEN: {p.message}")
        for p in broken
        if p.plugin not in {e.name for e in extensions}
    ]
    _echo_table(rows)
    # The broken ones are in the table already; do not repeat them as warnings.
    from .main import report_plugin_problems

    report_plugin_problems(echo=False)


@click.command("tasks")
@click.argument("name", required=False)
def tasks_command(name: str | None) -> None:
    """List the task types that core and extensions provide, with their docs.

    With NAME (a class name), show that task type's whole docstring.
    """
    from ..plugins import manager

    task_types = manager.task_types()
    _report_problems()
    if name is not None:
        matches = [cls for _, cls in task_types if cls.__name__ == name]
        if not matches:
            from ..exceptions import LightflowError

            known = ", ".join(sorted(cls.__name__ for _, cls in task_types)) or "none"
            raise LightflowError(f"no task type named '{name}' (known: {known})")
        for cls in matches:
            click.echo(f"{cls.__name__}  ({cls.__module__})\n")
            click.echo(inspect.getdoc(cls) or "(no documentation)")
        return
    if not task_types:
        click.echo("No task types registered.")
        return
    _echo_table([(cls.__name__, cls.__module__, _summary(cls)) for _, cls in task_types])


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _echo_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*padded, row[-1]]).rstrip())


def _report_problems() -> None:
    from .main import report_plugin_problems

    report_plugin_problems()
