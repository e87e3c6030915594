"""``lightflow triggers``: run the triggers of lightflow.cfg, list triggers and their state.

Extensions' watch commands (``lightflow fs watch``, ``lightflow epics watch``) build
their trigger from command-line options and run it the same way: they take the
runtime's options with :func:`runtime_options` and call :func:`run_specs`, so every
watcher accepts ``--embedded/--cluster``, ``--workers`` and ``--state-dir`` and logs
the same lines.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..triggers.settings import TriggerSpec
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
