"""``lightflow epics``: the EPICS extension's commands.

``lightflow epics watch PV --workflow NAME`` is a trigger like those of the
``triggers:`` section of ``lightflow.cfg`` (``source: pv``), built from options: one
:class:`~lightflow_epics.source.PvSource` and :class:`~lightflow.triggers.TriggerSpec`
per PV, all run in this process by the core's trigger runtime with its own options
(``--cluster/--embedded``, ``--workers``, ``--state-dir``). ``lightflow epics get``
reads PVs once, to check that this machine reaches them. Nothing is imported from
pyepics, p4p or the runtime until a command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from lightflow.cli.triggers_cmd import watch_options

if TYPE_CHECKING:
    from lightflow.cli.main import CliState
    from lightflow.cli.triggers_cmd import WatchOptions


@click.group("epics")
def epics_group() -> None:
    """EPICS PVs: start a workflow when a PV changes, read PVs."""


@epics_group.command("watch")
@click.argument("pvs", nargs=-1, required=True, metavar="PV...")
@click.option("--workflow", required=True, help="The workflow to start (a name or a file).")
@click.option(
    "--when",
    default=None,
    metavar="EXPR",
    help="Start a run for updates where EXPR is true, e.g. 'value == 1' or "
    "'1 < value < 5 and severity < MAJOR'.",
)
@click.option(
    "--rising",
    type=float,
    default=None,
    metavar="X",
    help="Start a run when the value goes from below X to X or above.",
)
@click.option(
    "--falling",
    type=float,
    default=None,
    metavar="X",
    help="Start a run when the value goes from above X to X or below.",
)
@click.option(
    "--changes", is_flag=True, help="Start a run when the value differs from the last one."
)
@click.option(
    "--debounce",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="At most one run per window of SECONDS; the updates in between are folded into "
    "the window's last one (default 0: every update).",
)
@click.option(
    "--skip-initial/--no-skip-initial",
    default=True,
    help="Whether the value read when the PV first connects is left out (default) or "
    "counts as an update.",
)
@click.option(
    "--connection-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="A PV not connected after SECONDS is reported (default: "
    "extensions.epics.connection_timeout).",
)
@click.option(
    "--on-timeout",
    type=click.Choice(["wait", "fail"]),
    default=None,
    help="What a PV that does not connect in time does: keep waiting, or fail the watch "
    "(default: extensions.epics.on_timeout).",
)
@watch_options
@click.pass_obj
def watch_command(
    state: CliState,
    pvs: tuple[str, ...],
    workflow: str,
    when: str | None,
    rising: float | None,
    falling: float | None,
    changes: bool,
    debounce: float,
    skip_initial: bool,
    connection_timeout: float | None,
    on_timeout: str | None,
    watch: WatchOptions,
) -> None:
    """Start WORKFLOW when a PV updates (and --when, --rising, --falling or --changes).

    PVs named pva://NAME are read through PV Access (pip install
    'lightflow-epics[pva]'). The run gets the parameters pvname, value, timestamp and
    severity (those its workflow declares, e.g. Option('value', type=float)). Several
    PVs are watched in one process, each as its own trigger. Runs until Ctrl-C or
    SIGTERM, logging one line per started run; a PV that disconnects is logged, and
    watched again when its IOC is back.
    """
    from lightflow.exceptions import ConfigError

    from .source import PvSource

    if watch.name is not None and len(pvs) > 1:
        raise ConfigError(
            f"--name names one trigger, but {len(pvs)} PVs are given: watch them with one "
            "command each to name them, or leave --name out"
        )
    defaults = _defaults(state)
    specs = [
        watch.spec(
            PvSource.from_settings(
                {
                    "pv": pv,
                    "when": when,
                    "rising": rising,
                    "falling": falling,
                    "changes": changes,
                    "skip_initial": skip_initial,
                    "connection_timeout": connection_timeout or defaults["connection_timeout"],
                    "on_timeout": on_timeout or defaults["on_timeout"],
                }
            ),
            workflow,
            watched=pv,
            debounce=debounce,
        )
        for pv in pvs
    ]
    watch.run(state, specs)


@epics_group.command("get")
@click.argument("pvs", nargs=-1, required=True, metavar="PV...")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Seconds to connect and read them all (default: extensions.epics.connection_timeout).",
)
@click.pass_obj
def get_command(state: CliState, pvs: tuple[str, ...], timeout: float | None) -> None:
    """Read PVs once and print one line each: name, value, severity, time.

    A quick check that this machine reaches the PVs with the EPICS settings in force
    (EPICS_CA_ADDR_LIST...): a PV that does not answer is one error line naming them.
    """
    import time

    from .channel import read
    from .values import plain

    results = read(list(pvs), timeout or _defaults(state)["connection_timeout"])
    for pv, got in results.items():
        stamp = got["timestamp"]
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"
        click.echo(f"{pv}  {plain(got['value'])!r}  severity {got['severity']}  {when}")


def _defaults(state: CliState) -> dict[str, Any]:
    """The ``extensions.epics`` settings over the built-in defaults."""
    from .plugin import CONFIG_DEFAULTS

    return {**CONFIG_DEFAULTS, **(state.config.extensions.get("epics") or {})}
