"""``lightflow workflow``: list and draw workflows; start, stop and inspect their runs.

``list`` and ``graph`` read workflow files only. ``start``, ``stop``, ``status``,
``logs`` and ``prune`` work on the distributed engine and need a broker
(``celery.broker_url``); :func:`distributed_config` asks the API for that check
first, so a command fails on it before it asks anything else (such as a
confirmation).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from ..exceptions import LightflowError

if TYPE_CHECKING:
    from ..config import Config
    from .main import CliState

SHORT_ID = 8


def distributed_config(state: CliState) -> Config:
    """The configuration, for a command of the distributed engine.

    Raises:
        NoBrokerError: No broker is configured (:func:`lightflow.api.require_broker`).
    """
    from .. import api

    return api.require_broker(state.config)


def short_id(run_id: str) -> str:
    """The first characters of a run id, as tables and event lines show it."""
    return run_id[:SHORT_ID]


def confirm_all(what: str, yes: bool) -> None:
    """Ask before acting on every run or worker, as 1.x did (Enter confirms).

    Only a person at a terminal is asked: scripts (stdin not a terminal) and ``--yes``
    go ahead.
    """
    if not yes and sys.stdin.isatty():
        click.confirm(f"{what}?", default=True, abort=True)


@click.group("workflow")
def workflow_group() -> None:
    """List, draw, start, stop and inspect workflows."""


@workflow_group.command("list")
@click.pass_obj
def workflow_list(state: CliState) -> None:
    """List the workflows in the configured workflow folders.

    A file that cannot be loaded is listed with the reason.
    """
    from .. import api

    config = state.config
    if not config.workflows:
        click.echo(
            "No workflow folders are configured: add them to 'workflows' in "
            f"{config.file_name} or set LIGHTFLOW_WORKFLOWS."
        )
        return
    listings = api.list_workflows(config=config)
    if not listings:
        folders = ", ".join(str(p) for p in config.workflows)
        click.echo(f"No workflows found in {folders}.")
        return
    width = max(len(listing["name"]) for listing in listings)
    for listing in listings:
        if listing.get("error") is not None:
            click.echo(f"{listing['name']:<{width}}  [broken] {listing['error']}")
        else:
            click.echo(f"{listing['name']:<{width}}  {listing['summary']}".rstrip())


@workflow_group.command("graph")
@click.argument("workflow")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(["dot", "mermaid"]),
    default="dot",
    show_default=True,
    help="Graphviz DOT or Mermaid flowchart text.",
)
@click.pass_obj
def workflow_graph(state: CliState, workflow: str, fmt: str) -> None:
    """Print the DAGs of WORKFLOW (a file or a name) as a graph.

    Every DAG is a subgraph; edges show slot labels, nodes their queue when it is
    not the default. Render with e.g. `lightflow workflow graph FILE | dot -Tpng -o g.png`.
    """
    from .. import api

    click.echo(api.render_graph(workflow, fmt, config=state.config), nl=False)


# -- runs on the distributed engine --------------------------------------------------------
@workflow_group.command("start")
@click.argument("workflow")
@click.argument("arguments", nargs=-1, metavar="[KEY=VALUE]...")
@click.option(
    "--queue",
    "-q",
    default="workflow",
    show_default=True,
    help="Queue the run's workflow job is sent to.",
)
@click.option(
    "--keep-data", "-k", is_flag=True, help="Keep the run's data in the store after it ends."
)
@click.option(
    "--wait",
    "-w",
    is_flag=True,
    help="Follow the run with progress lines until it ends; exit 1 unless it succeeds.",
)
@click.pass_obj
def workflow_start(
    state: CliState,
    workflow: str,
    arguments: tuple[str, ...],
    queue: str,
    keep_data: bool,
    wait: bool,
) -> None:
    """Queue a workflow for the workers; print the run id.

    WORKFLOW is a file or a name. The workflow and its KEY=VALUE arguments are checked
    before anything is queued. Only the run id goes to stdout, so scripts can capture
    it: `run=$(lightflow workflow start scan exposure=0.5)`.
    """
    from .. import api

    config = distributed_config(state)
    if wait:
        state.apply_logging()
    values = api.parse_arguments(arguments)
    run_id = api.start_workflow(workflow, values, config=config, queue=queue, keep_data=keep_data)
    click.echo(run_id)
    if wait:
        _wait_for(run_id, config)


class _Terminated(BaseException):
    """SIGTERM arrived while ``--wait`` followed a run (like KeyboardInterrupt for SIGINT)."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While active, SIGTERM raises :class:`_Terminated` in the main thread.

    So that ``--wait`` ends on SIGTERM as on Ctrl-C: it stops following, not the run.
    The previous handler is restored after; off the main thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


#: Seconds a run followed with ``--wait`` may have work queued before the command looks
#: for live workers that consume its queues (and says so once per queue none consumes).
QUEUED_NOTE_AFTER = 3.0
#: Seconds between two such looks after the first, while the run is followed.
QUEUED_LOOK_EVERY = 2.0
#: Pieces of work a note names before it counts the rest.
QUEUED_NAMED = 3


def _wait_for(run_id: str, config: Config) -> None:
    """Show the run's progress as ``lightflow run`` does; fail unless it succeeds."""
    from .. import api
    from .run_cmd import ProgressPrinter, _stdout_takes_unicode, report

    progress = ProgressPrinter(unicode=_stdout_takes_unicode())
    watch = _QueuedWatch(run_id, config)
    watch.start()
    try:
        with _sigterm_interrupts():
            result = api.wait_for_run(run_id, config=config, on_event=progress)
    except (KeyboardInterrupt, _Terminated) as interrupted:
        click.echo(
            f"Stopped following run {short_id(run_id)}; it goes on "
            f"(`lightflow workflow stop {run_id}` stops it).",
            err=True,
        )
        sys.exit(128 + (signal.SIGTERM if isinstance(interrupted, _Terminated) else signal.SIGINT))
    finally:
        watch.stop()
    report(result)


class _QueuedWatch:
    """Says once per queue, on stderr, when a followed run has work no worker will take.

    Work on a queue no live worker consumes never starts, and ``--wait`` would wait in
    silence: the run itself (its workflow queue), a DAG instance (its DAG's queue) or a
    task (``queue=`` of the task). From :data:`QUEUED_NOTE_AFTER` seconds on, every
    :data:`QUEUED_LOOK_EVERY` seconds, a thread asks the live workers for their queues
    (``worker status``) and the run for its queued work on the others
    (:func:`lightflow.api.queued_work`); only ``--wait`` pays for that, never a plain
    ``workflow start``. Following goes on either way; a look that fails is only a
    note not given.
    """

    def __init__(self, run_id: str, config: Config) -> None:
        self._run_id = run_id
        self._config = config
        self._noted: set[str] = set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="lightflow-queued", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        if self._done.wait(QUEUED_NOTE_AFTER):
            return
        while True:
            with contextlib.suppress(Exception):  # the note is advice: following goes on
                self._look()
            if self._done.wait(QUEUED_LOOK_EVERY):
                return

    def _look(self) -> None:
        from .. import api

        workers = api.list_workers(config=self._config, timeout=1.0)
        live = {
            queue
            for worker in workers
            if worker.get("state", "running") == "running"
            for queue in worker.get("queues") or []
        }
        waiting: dict[str, list[dict[str, Any]]] = {}
        for work in api.queued_work(
            self._run_id, config=self._config, leave_out=live | self._noted
        ):
            waiting.setdefault(work["queue"], []).append(work)
        for queue, works in waiting.items():
            if self._done.is_set():
                return
            self._noted.add(queue)
            click.echo(self._note(queue, works), err=True)

    def _note(self, queue: str, works: list[dict[str, Any]]) -> str:
        import shlex

        names = [
            f"DAG {work['dag']}" if work["task"] is None else f"task {work['dag']}/{work['task']}"
            for work in works
            if work["dag"] is not None
        ]
        if names:
            more = len(names) - QUEUED_NAMED
            named = ", ".join(names[:QUEUED_NAMED]) + (f" and {more} more" if more > 0 else "")
            what = f"has {named} queued"
        else:
            what = "is still queued"
        return (
            f"Note: run {short_id(self._run_id)} {what} on queue '{queue}' and no live "
            "worker consumes it; start one with "
            f"`lightflow worker start -q {shlex.quote(queue)}` (still waiting)."
        )


@workflow_group.command("stop")
@click.argument("targets", nargs=-1, metavar="[RUN_ID|WORKFLOW]...")
@click.option("--yes", "-y", is_flag=True, help="Stop all runs without asking.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Seconds running tasks get to end before their processes are terminated "
    "(default: signal.stop_grace, 10).",
)
@click.option(
    "--force", is_flag=True, help="Terminate the processes of running tasks at once (no grace)."
)
@click.option(
    "--wait", is_flag=True, help="Return once every run asked to stop is recorded stopped."
)
@click.pass_obj
def workflow_stop(
    state: CliState,
    targets: tuple[str, ...],
    yes: bool,
    grace: float | None,
    force: bool,
    wait: bool,
) -> None:
    """Stop runs by id or workflow name (none given: all).

    With no RUN_ID or WORKFLOW, every queued and running run is stopped. Running tasks
    are asked to stop (they see is_stopped, a BashTask ends its command) and nothing
    more is queued. A task still running after the grace period is recorded stopped
    and its worker terminates its process and starts a new one. Prints the ids of the
    runs asked to stop; with --wait, returns once they are recorded stopped.
    """
    from .. import api

    if force and grace is not None:
        raise click.UsageError("give --force or --grace, not both (--force is --grace 0)")
    config = distributed_config(state)
    if not targets:
        confirm_all("Stop all queued and running workflows", yes)
    stopped = api.stop_workflows(list(targets), config=config, grace=grace, force=force)
    if not stopped:
        which = ", ".join(targets) if targets else "any workflow"
        click.echo(f"No queued or running runs of {which}: nothing to stop.", err=True)
        return
    for run_id in stopped:
        click.echo(run_id)
    if wait:  # the grace period bounds it, on workers that can terminate tasks
        for run_id in stopped:
            api.wait_for_run(run_id, config=config)


@workflow_group.command("status")
@click.argument("run_id", required=False)
@click.option(
    "--details", "-d", is_flag=True, help="Add errors and the tasks' log lines (with RUN_ID)."
)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Newest runs to list; 0 lists all.",
)
@click.pass_obj
def workflow_status(state: CliState, run_id: str | None, details: bool, limit: int) -> None:
    """List the runs, or show one run's DAGs and tasks.

    Without RUN_ID, a table of runs, newest first. With RUN_ID (a unique prefix will
    do), that run's state and times, and per DAG the state, duration and worker of
    every task; a DAG or task still queued shows the queue it waits on.
    """
    from .. import api

    config = distributed_config(state)
    time_format = str(config.cli.get("time_format") or "%Y-%m-%d %H:%M:%S")
    if run_id is None:
        records = api.list_runs(config=config, limit=limit or None)
        _echo_run_table(records, time_format)
        if limit and len(records) == limit:
            click.echo(f"(the {limit} newest runs; --limit 0 lists all)", err=True)
        return
    record = api.run_status(run_id, config=config)
    _echo_run(record, time_format, details)
    if details:
        lines = api.run_logs(record["id"], config=config)
        click.echo("\nLog:" if lines else "\nLog: (no lines)")
        for line in lines:
            click.echo(f"  {line}")


@workflow_group.command("logs")
@click.argument("run_id")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help="Keep printing lines as the tasks write them, until the run ends.",
)
@click.pass_obj
def workflow_logs(state: CliState, run_id: str, follow: bool) -> None:
    """Print the log lines of a run's tasks.

    The lines the tasks of RUN_ID (a unique prefix will do) wrote with print or
    logging, in the order they were written; a line is there within a second of
    being written. With --follow, new lines are printed as they come and the command
    ends with the run (Ctrl-C ends it earlier).
    """
    from .. import api

    config = distributed_config(state)
    if follow:
        try:
            api.follow_logs(run_id, config=config, on_line=click.echo)
        except KeyboardInterrupt:
            pass
        return
    lines = api.run_logs(run_id, config=config)
    if not lines:
        click.echo(f"Run {run_id} has no log lines.", err=True)
    for line in lines:
        click.echo(line)


@workflow_group.command("prune")
@click.option(
    "--older-than",
    "older_than",
    metavar="DURATION",
    default=None,
    help="Prune runs that ended longer ago than this (90s, 30m, 12h, 7d). "
    "Default: signal.keep_finished_runs (7d).",
)
@click.option("--dry-run", is_flag=True, help="List the runs that would go; delete nothing.")
@click.pass_obj
def workflow_prune(state: CliState, older_than: str | None, dry_run: bool) -> None:
    """Delete the state of runs that finished long ago.

    Removes the record, events and log lines of every run that ended (succeeded,
    failed, stopped or aborted) longer ago than DURATION from the state server; queued
    and running runs are never touched, nor data kept in the store with --keep-data.
    Workers do this on their own once an hour. Prints the ids of the runs pruned.
    """
    from .. import api

    config = distributed_config(state)
    if older_than is None:
        seconds = api.finished_run_retention(config)  # None when off: prune_runs says so
    else:
        try:
            seconds = api.parse_duration(older_than)
        except LightflowError as error:
            raise LightflowError(f"--older-than: {error}") from None
    pruned = api.prune_runs(config=config, older_than=seconds, dry_run=dry_run)
    for run_id in pruned:
        click.echo(run_id)
    age = _format_age(seconds or 0.0)
    if not pruned:
        click.echo(f"No runs finished more than {age} ago: nothing to prune.", err=True)
    else:
        verb = "Would prune" if dry_run else "Pruned"
        runs = "run" if len(pruned) == 1 else "runs"
        click.echo(f"{verb} {len(pruned)} {runs} that finished more than {age} ago.", err=True)


def _format_age(seconds: float) -> str:
    """A retention in the largest unit that states it exactly: ``7d``, ``90m``, ``1.5s``."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _echo_run_table(records: list[dict[str, Any]], time_format: str) -> None:
    from .ext_cmd import _echo_table

    if not records:
        click.echo("No workflow runs recorded.")
        return
    rows = [("ID", "WORKFLOW", "STATE", "STARTED", "DURATION")]
    for record in records:
        rows.append((
            short_id(record["id"]),
            str(record.get("workflow", "?")),
            str(record.get("state", "?")),
            _format_time(record.get("started"), time_format),
            _format_run_duration(record),
        ))  # fmt: skip
    _echo_table(rows)


def _echo_run(record: dict[str, Any], time_format: str, details: bool) -> None:
    from .ext_cmd import _echo_table

    arguments = " ".join(f"{k}={v}" for k, v in (record.get("arguments") or {}).items())
    rows = [
        ("Run", record["id"]),
        ("Workflow", str(record.get("workflow", "?"))),
        ("State", str(record.get("state", "?"))),
        ("Arguments", arguments or "-"),
        ("Queue", str(record.get("queue") or "-")),
        ("Keep data", "yes" if record.get("keep_data") else "no"),
        ("Created", _format_time(record.get("created"), time_format)),
        ("Started", _format_time(record.get("started"), time_format)),
        ("Ended", _format_time(record.get("ended"), time_format)),
        ("Duration", _format_run_duration(record)),
    ]
    if record.get("failed_task"):
        dag = record.get("failed_dag")
        rows.append(
            ("Failed task", f"{dag}/{record['failed_task']}" if dag else record["failed_task"])
        )
    if details and record.get("error"):
        rows.append(("Error", str(record["error"])))
    _echo_table(rows)
    for instance, dag in (record.get("dags") or {}).items():
        duration = _format_seconds(dag.get("duration")) or _on_queue(dag)
        click.echo(f"\nDAG {instance}  {dag.get('state', '?')}  {duration}".rstrip())
        task_rows = []
        for name, task in dag.get("tasks", {}).items():
            message = task.get("message") if details else None
            task_rows.append((
                f"  {name}",
                str(task.get("state", "?")),
                _format_seconds(task.get("duration")),
                str(task.get("worker") or _on_queue(task)),
                str(message or ""),
            ))  # fmt: skip
        if task_rows:
            _echo_table(task_rows)
    if details:
        _echo_failures(record)


def _on_queue(entry: dict[str, Any]) -> str:
    """Where a queued DAG or task waits (``on queue gpu``), for the status table."""
    return f"on queue {entry['queue']}" if entry.get("queue") else ""


def _echo_failures(record: dict[str, Any]) -> None:
    """Each failed task's message, then its traceback indented under it."""
    for instance, dag in (record.get("dags") or {}).items():
        for name, task in dag.get("tasks", {}).items():
            if task.get("state") != "failed":
                continue
            click.echo(f"\nTask {instance}/{name} failed: {task.get('message') or '?'}")
            for line in str(task.get("traceback") or "").rstrip("\n").splitlines():
                click.echo(f"  {line}")


def _format_run_duration(record: dict[str, Any]) -> str:
    from .. import api

    text = _format_seconds(api.run_duration(record))
    return f"{text}+" if text and record.get("state") in api.UNFINISHED_STATES else text or "-"


def _format_seconds(seconds: float | None) -> str:
    from .run_cmd import format_duration

    return "" if seconds is None else format_duration(float(seconds))


def _format_time(timestamp: float | None, time_format: str) -> str:
    if not timestamp:
        return "-"
    return time.strftime(time_format, time.localtime(float(timestamp)))
