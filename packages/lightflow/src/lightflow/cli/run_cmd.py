"""``lightflow run``: run a workflow in this process, showing progress as it goes."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..api import RunResult
    from ..events import RunEvent
    from .main import CliState

# Symbol per task event, in a Unicode and an ASCII form (for terminals that cannot
# show the first), and the word that follows the duration.
_MARKS = {
    "task_started": ("▸", ">", ""),
    "task_succeeded": ("✓", "+", ""),
    "task_skipped": ("↷", "-", "skipped"),
    "task_stopped": ("■", "=", "stopped"),
    "task_failed": ("✗", "x", "failed"),
    "task_aborted": ("✗", "!", "aborted"),
    "task_cancelled": ("○", "-", "cancelled"),
}
_STATE_ORDER = ("succeeded", "skipped", "stopped", "failed", "aborted", "cancelled")


@click.command("run")
@click.argument("workflow")
@click.argument("arguments", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    default=None,
    help="Tasks that may run at once (default: CPU count + 4, at most 32).",
)
@click.option(
    "--quiet", "-q", is_flag=True, help="No progress lines: only what tasks print, and the summary."
)
@click.pass_obj
def run_command(
    state: CliState, workflow: str, arguments: tuple[str, ...], workers: int | None, quiet: bool
) -> None:
    """Run WORKFLOW (a file or a name) here, on the embedded engine.

    No broker, store or worker is needed. Arguments set the workflow's parameters,
    e.g. `lightflow run scan.py exposure=0.5 sample=Fe2O3`. Exits 0 when the run
    succeeds, 1 when it fails, stops or aborts. Ctrl-C (or SIGTERM) stops the run as
    `workflow stop` would and exits 130 (143); a second Ctrl-C ends it at once.
    """
    from .. import api
    from ..local.engine import stop_on_signals

    config = state.apply_logging()
    values = api.parse_arguments(arguments)
    progress = None if quiet else ProgressPrinter(unicode=_stdout_takes_unicode())
    with stop_on_signals():
        result = api.run_workflow(
            workflow, values, config=config, workers=workers, on_event=progress
        )
    report(result)


def report(result: RunResult) -> None:
    """Print the run's summary; raise (exit 1, reason and traceback) unless it succeeded.

    A run interrupted by a signal exits ``128 + signal`` instead, as a shell reports a
    command that a signal ended.
    """
    from ..exceptions import RunFailedError
    from .main import CommandError

    click.echo(summary(result))
    if result.outcome == "succeeded":
        return
    error = RunFailedError(
        failure_reason(result),
        task=result.failed_task,
        dag=result.failed_dag,
        traceback=result.traceback,
    )
    if result.interrupted_by is None:
        raise error
    CommandError(error).show()
    raise click.exceptions.Exit(128 + result.interrupted_by)


class ProgressPrinter:
    """Turns task events into one line each, e.g. ``  ✓ main/lane1  0.12s``.

    Engines call it from their threads, so lines are written under a lock.
    """

    def __init__(self, unicode: bool = True) -> None:
        self._unicode = unicode
        self._lock = threading.Lock()

    def __call__(self, event: RunEvent) -> None:
        mark = _MARKS.get(event.kind.value)
        if mark is None:
            return
        symbol = mark[0] if self._unicode else mark[1]
        parts = [f"  {symbol} {event.dag}/{event.task}"]
        if event.duration is not None and event.kind.value != "task_started":
            parts.append(format_duration(event.duration))
        note = mark[2]
        if note and event.message:
            note = f"{note}: {event.message}"
        if note:
            parts.append(note)
        with self._lock:
            click.echo("  ".join(parts))


def summary(result: RunResult) -> str:
    """Two lines: outcome, time and task counts per state; the run id."""
    counts = Counter(record.state for record in result.tasks)
    states = [*_STATE_ORDER, *sorted(set(counts) - set(_STATE_ORDER))]
    tally = ", ".join(f"{counts[state]} {state}" for state in states if counts[state])
    return (
        f"Workflow {result.workflow} {result.outcome} in "
        f"{format_duration(result.duration)}: {tally or 'no tasks ran'}\n"
        f"Run id: {result.workflow_id}"
    )


def failure_reason(result: RunResult) -> str:
    """One line naming the task responsible and its error."""
    error = result.error or "no reason given"
    if result.failed_task is None:
        return f"workflow {result.workflow} {result.outcome}: {error}"
    task = f"{result.failed_dag}/{result.failed_task}" if result.failed_dag else result.failed_task
    if result.outcome == "aborted":
        return f"task {task} aborted the workflow: {error}"
    return f"task {task} failed: {error}"


def format_duration(seconds: float) -> str:
    """``0.12s``, ``12.3s``, ``4m05s``."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _stdout_takes_unicode() -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "".join(mark[0] for mark in _MARKS.values()).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True
