"""``lightflow monitor``: the live event stream of every workflow run, or of one."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import click

from .workflow_cmd import distributed_config, short_id

if TYPE_CHECKING:
    from ..events import RunEvent
    from .main import CliState

_FINISHED = ("workflow_finished", "dag_finished")


@click.command("monitor")
@click.argument("run_id", required=False)
@click.option("--details", "-d", is_flag=True, help="Show full run ids and the workers.")
@click.pass_obj
def monitor_command(state: CliState, run_id: str | None, details: bool) -> None:
    """Show run events as they happen: of all runs, or of one.

    One line per event: time, run id, DAG/task, event, duration. With RUN_ID (a unique
    prefix will do), that run's past events come first and monitoring ends with the
    run. Ctrl-C ends it.
    """
    from .. import api

    config = distributed_config(state)
    state.apply_logging()
    # An unknown run id or an unreachable state server is the error alone, no header.
    if run_id:
        run_id = api.run_status(run_id, config=config)["id"]
    else:
        api.check_state_server(config)
    which = f"run {run_id}" if run_id else "all workflow runs"
    click.echo(f"Events of {which} (Ctrl-C to end):", err=True)
    try:
        api.follow_events(config=config, run_id=run_id, on_event=EventPrinter(details))
    except KeyboardInterrupt:
        pass


class EventPrinter:
    """Turns any run event into one line, e.g.
    ``14:02:11  3f2a9c1b  main/fit  task succeeded  0.52s``.
    """

    def __init__(self, details: bool = False) -> None:
        self._details = details
        self._lock = threading.Lock()

    def __call__(self, event: RunEvent) -> None:
        from .run_cmd import format_duration

        scope, _, what = event.kind.value.partition("_")
        if event.kind.value in _FINISHED and event.outcome:
            what = event.outcome
        if event.task is not None:
            subject = f"{event.dag}/{event.task}"
        elif event.dag is not None:
            subject = event.dag
        else:
            subject = event.workflow
        fields = [
            time.strftime("%H:%M:%S", time.localtime(event.time)),
            event.workflow_id if self._details else short_id(event.workflow_id),
            f"{subject:<24}",
            f"{scope} {what}".ljust(18),
            format_duration(event.duration).rjust(6) if event.duration is not None else " " * 6,
        ]
        if self._details:
            fields.append(event.worker or "")
        if event.message:
            fields.append(event.message)
        with self._lock:
            click.echo("  ".join(fields).rstrip())
