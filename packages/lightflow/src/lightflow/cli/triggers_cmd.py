"""``lightflow triggers``: run the triggers of lightflow.cfg, list triggers and their state.

Extensions' watch commands (``lightflow fs watch``, ``lightflow epics watch``) build
their trigger from command-line options and run it the same way: they take the options
every trigger has with :func:`watch_options` (``--arg``, ``--name``, ``--queue``,
``--keep-data`` and the runtime's ``--embedded/--cluster``, ``--workers``,
``--state-dir``), build their specs with :meth:`WatchOptions.spec` and run them with
:meth:`WatchOptions.run`, so every watcher takes the same options and logs the same
lines.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..triggers.settings import TriggerSpec
    from ..triggers.source import TriggerSource
    from .main import CliState


def runtime_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--embedded/--cluster``, ``--workers`` and ``--state-dir`` to a command.

    The command receives them as ``engine``, ``workers`` and ``state_dir``, to pass on
    to :func:`run_specs`.
    """

    @click.option(
        "--cluster/--embedded",
        "engine",
        default=None,
        help="Start runs on the cluster, or each in a process here (default: the cluster "
        "if a broker is configured).",
    )
    @click.option(
        "--workers",
        "-w",
        type=click.IntRange(min=1),
        default=None,
        help="Embedded engine: runs at once per trigger (default 1).",
    )
    @click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Embedded engine: where what was handed off is recorded "
        "(default: $LIGHTFLOW_STATE_DIR or ~/.local/state/lightflow/triggers).",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, engine: bool | None, **kwargs: Any) -> Any:
        chosen = None if engine is None else ("cluster" if engine else "embedded")
        return command(*args, engine=chosen, **kwargs)

    return wrapper


@dataclass
class WatchOptions:
    """The options every watch command has, as :func:`watch_options` parsed them."""

    arguments: dict[str, Any]
    name: str | None
    queue: str
    keep_data: bool
    engine: str | None
    workers: int | None
    state_dir: Path | None

    def spec(
        self,
        source: TriggerSource,
        workflow: str,
        *,
        watched: str,
        aggregate: int | None = None,
        debounce: float = 0.0,
    ) -> TriggerSpec:
        """The trigger of ``source``; named ``--name`` or ``WORKFLOW@WATCHED``."""
        from ..triggers.settings import TriggerSpec

        return TriggerSpec(
            name=self.name or f"{workflow}@{watched}",
            source=source,
            workflow=workflow,
            arguments=dict(self.arguments),
            aggregate=aggregate,
            debounce=debounce,
            queue=self.queue,
            keep_data=self.keep_data,
        )

    def run(self, state: CliState, specs: Sequence[TriggerSpec]) -> None:
        """Run the triggers until Ctrl-C or SIGTERM (see :func:`run_specs`)."""
        run_specs(state, specs, engine=self.engine, workers=self.workers, state_dir=self.state_dir)


def watch_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options of every watch command; the command receives ``watch``.

    ``watch`` is a :class:`WatchOptions`: ``--arg KEY=VALUE`` (parsed), ``--name``,
    ``--queue``, ``--keep-data`` and the runtime's options (:func:`runtime_options`).
    """

    @click.option(
        "--arg",
        "-a",
        "arguments",
        multiple=True,
        metavar="KEY=VALUE",
        help="A further workflow argument, the same for every run. Repeat for several.",
    )
    @click.option(
        "--name",
        default=None,
        help="The trigger's name, under which what was handed off is recorded (default: "
        "WORKFLOW@what it watches). Keep it to continue where a watch stopped.",
    )
    @click.option(
        "--queue", "-q", default="workflow", help="Cluster: the queue of the workflow job."
    )
    @click.option("--keep-data", is_flag=True, help="Cluster: keep each run's store data.")
    @runtime_options
    @functools.wraps(command)
    def wrapper(
        *args: Any,
        arguments: tuple[str, ...],
        name: str | None,
        queue: str,
        keep_data: bool,
        engine: str | None,
        workers: int | None,
        state_dir: Path | None,
        **kwargs: Any,
    ) -> Any:
        from ..api import parse_arguments

        watch = WatchOptions(
            parse_arguments(arguments), name, queue, keep_data, engine, workers, state_dir
        )
        return command(*args, watch=watch, **kwargs)

    return wrapper


def run_specs(
    state: CliState,
    specs: Sequence[TriggerSpec],
    *,
    engine: str | None,
    workers: int | None,
    state_dir: Path | None,
) -> None:
    """Run triggers until Ctrl-C or SIGTERM, logging one line per started run."""
    from ..triggers.runtime import run_triggers

    config = state.apply_logging()
    _show_trigger_log()
    run_triggers(specs, config=config, engine=engine, workers=workers, state_dir=state_dir)


def _show_trigger_log() -> None:
    """Print the runtime's INFO lines on stderr, unless logging is configured for them."""
    logger = logging.getLogger("lightflow.triggers")
    if logger.handlers or logging.getLogger().handlers or logging.getLogger("lightflow").handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


@click.group("triggers")
def triggers_group() -> None:
    """Start workflows when something happens, without holding a worker.

    Triggers are declared in the 'triggers' section of lightflow.cfg; extensions add
    the kinds of source (folders, PVs) and their own watch commands.
    """


@triggers_group.command("run")
@click.argument("names", nargs=-1)
@runtime_options
@click.pass_obj
def run_command(
    state: CliState,
    names: tuple[str, ...],
    engine: str | None,
    workers: int | None,
    state_dir: Path | None,
) -> None:
    """Run the triggers of lightflow.cfg (all, or NAMES) until Ctrl-C or SIGTERM."""
    from ..triggers.settings import specs_from_config

    specs = specs_from_config(state.config, names)
    run_specs(state, specs, engine=engine, workers=workers, state_dir=state_dir)


@triggers_group.command("list")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Embedded engine: the state folder the triggers run with.",
)
@click.pass_obj
def list_command(state: CliState, state_dir: Path | None) -> None:
    """List the triggers of lightflow.cfg and those running, with their state."""
    from .. import api

    triggers = api.list_triggers(config=state.config, state_dir=state_dir)
    if not triggers:
        click.echo("No triggers are declared or running.")
        return
    for trigger in triggers:
        line = f"{trigger['name']}  {trigger['state']}  {trigger.get('source') or trigger['kind']}"
        line += f"  -> {trigger.get('workflow') or '?'}"
        if trigger.get("runs") is not None:
            line += f"  runs: {trigger['runs']}"
        if trigger.get("last_run"):
            line += f"  last: {trigger['last_run']}"
        if trigger.get("error"):
            line += f"  error: {trigger['error']}"
        click.echo(line)
    kinds = api.trigger_kinds()
    click.echo(f"Source kinds installed: {', '.join(kinds) or 'none'}")
