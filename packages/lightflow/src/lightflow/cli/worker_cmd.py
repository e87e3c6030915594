"""``lightflow worker``: start a Celery worker on the Lightflow queues, stop and list them.

``start`` turns this process into a worker (:func:`lightflow.queue.worker.start_worker`);
``stop`` and ``status`` call the API. Like every distributed command they need a
configured broker (:func:`~lightflow.cli.workflow_cmd.distributed_config`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from .workflow_cmd import confirm_all, distributed_config, short_id

if TYPE_CHECKING:
    from .main import CliState
_DEFAULT_QUEUES = "workflow,dag,task"  # queue.worker.DEFAULT_QUEUES, without importing Celery


@click.group("worker")
def worker_group() -> None:
    """Start, stop and list workers."""


@worker_group.command("start", context_settings={"ignore_unknown_options": True})
@click.option(
    "--queues",
    "-q",
    default=_DEFAULT_QUEUES,
    show_default=True,
    help="Comma-separated queues this worker consumes.",
)
@click.option("--name", "-n", default=None, help="Worker name (Celery's -n, e.g. gpu1@%h).")
@click.option(
    "--wait-for-broker",
    is_flag=True,
    help="Wait until the broker answers, logging each try, instead of refusing to start.",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def worker_start(
    state: CliState,
    queues: str,
    name: str | None,
    wait_for_broker: bool,
    celery_args: tuple[str, ...],
) -> None:
    """Run a worker here until it is stopped (Ctrl-C, or `lightflow worker stop`).

    CELERY_ARGS are passed to the Celery worker, e.g.
    `lightflow worker start -q task,gpu --concurrency 4`. A worker refuses to start
    when the state server or the broker does not answer within the connect timeout
    (celery.broker_connection_timeout, 4 s); once running it waits out outages of
    either. It exits with a non-zero status only when it failed.
    """
    from ..queue.worker import start_worker

    config = distributed_config(state)
    names = [queue.strip() for queue in queues.split(",") if queue.strip()]
    if not names:
        raise click.BadParameter("name at least one queue", param_hint="'--queues'")
    state.apply_logging()
    status = start_worker(
        config,
        queues=names,
        name=name,
        celery_args=list(celery_args),
        wait_for_broker=wait_for_broker,
    )
    if status:
        # The real stderr: Celery's redirection of sys.stderr would log it as INFO.
        click.echo(
            f"Error: the worker stopped with exit status {status}; its log above says why",
            file=sys.__stderr__,
        )
        sys.exit(status)


@worker_group.command("stop")
@click.argument("names", nargs=-1)
@click.option("--yes", "-y", is_flag=True, help="Stop all workers without asking.")
@click.pass_obj
def worker_stop(state: CliState, names: tuple[str, ...], yes: bool) -> None:
    """Shut down the named workers (all when none is named) after their current jobs.

    Prints the names of the workers that answered.
    """
    from .. import api

    config = distributed_config(state)
    if not names:
        confirm_all("Stop all workers", yes)
    stopped = api.stop_workers(list(names), config=config)
    if not stopped:
        if names:
            click.echo(f"No answer from {', '.join(names)}: nothing was stopped.", err=True)
        else:
            click.echo("No worker answered: nothing was stopped.", err=True)
        return
    for worker in stopped:
        click.echo(worker)


@worker_group.command("status")
@click.option("--details", "-d", is_flag=True, help="List the jobs each worker runs now.")
@click.option(
    "--filter-queues", "-f", default=None, help="Only workers consuming one of these queues."
)
@click.pass_obj
def worker_status(state: CliState, details: bool, filter_queues: str | None) -> None:
    """List the live workers: name, pid, queues, concurrency, jobs running now, state.

    A worker told to stop finishes its jobs first and answers nothing meanwhile; it is
    listed as stopping until it exits.
    """
    from .. import api
    from .ext_cmd import _echo_table

    config = distributed_config(state)
    workers = api.list_workers(config=config)
    if not workers:
        click.echo("No workers are running.")
        return
    if filter_queues:
        wanted = {queue.strip() for queue in filter_queues.split(",")}
        workers = [w for w in workers if wanted & set(w.get("queues") or [])]
        if not workers:
            click.echo(f"No worker consumes {', '.join(sorted(wanted))}.")
            return
    rows = [("NAME", "PID", "QUEUES", "CONCURRENCY", "RUNNING", "STATE")]
    for worker in workers:
        running = worker.get("running")
        rows.append((
            str(worker["name"]),
            str(worker.get("pid") or "?"),
            ",".join(worker.get("queues") or []) or "-",
            str(worker.get("concurrency") or "?"),
            "?" if running is None else str(len(running)),
            str(worker.get("state") or "running"),
        ))  # fmt: skip
    _echo_table(rows)
    if details:
        for worker in workers:
            if worker.get("running") is None:
                click.echo(f"\n{worker['name']}: {worker.get('state')}, its jobs are not known")
                continue
            jobs = worker.get("running") or []
            click.echo(
                f"\n{worker['name']}: {len(jobs) or 'no'} running job{'s' * (len(jobs) != 1)}"
            )
            for job in jobs:
                click.echo(f"  {_describe_job(job)}")


def _describe_job(job: dict[str, Any]) -> str:
    """``task  3f2a9c1b  main/fit`` for Lightflow's jobs, the raw name and args otherwise."""
    name, args = str(job.get("job") or "?"), list(job.get("args") or [])
    kind = name.removeprefix("lightflow.")
    if kind != name and args and isinstance(args[0], str):
        where = "/".join(str(part) for part in args[1:3])
        return f"{kind:<8}  {short_id(args[0])}  {where}".rstrip()
    return f"{name}  {args}"
