"""``lightflow fs``: the filesystem extension's commands.

``lightflow fs watch DIR --workflow NAME`` is a trigger like those of the ``triggers:``
section of ``lightflow.cfg``, built from options: a :class:`FolderSource` and a
:class:`~lightflow.triggers.TriggerSpec`, run by the core's trigger runtime with the
runtime's own options (``--cluster/--embedded``, ``--workers``, ``--state-dir``).
Without ``DIR`` it runs the ``folder`` triggers declared in ``lightflow.cfg``.
Nothing is imported from watchdog or the runtime until the command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click
from lightflow.cli.triggers_cmd import watch_options

if TYPE_CHECKING:
    from lightflow.cli.main import CliState
    from lightflow.cli.triggers_cmd import WatchOptions
    from lightflow.triggers import TriggerSpec


@click.group("fs")
def fs_group() -> None:
    """Files and folders: start a workflow for every file that lands in a folder."""


@fs_group.command("watch")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--workflow", help="The workflow to start (a name or a file); needed with FOLDER.")
@click.option(
    "--pattern",
    "-p",
    "patterns",
    multiple=True,
    help="Only files matching this glob (on the name; on the path below FOLDER when it has "
    "a '/'). Repeat for several; default: every file.",
)
@click.option("--exclude", "-x", multiple=True, help="Leave out files matching this glob.")
@click.option("--recursive", "-r", is_flag=True, help="Watch the subfolders too.")
@click.option(
    "--aggregate",
    "-n",
    type=click.IntRange(min=1),
    default=None,
    help="Files per run (default: one run per file).",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=None,
    help="A file is complete once unchanged for this many seconds, not when closed "
    "(writers that reopen files; default with --poll: one poll interval).",
)
@click.option(
    "--poll/--no-poll",
    default=None,
    help="Scan the folder instead of using inotify: needed on NFS/GPFS, where inotify "
    "misses other hosts' writes (default: extensions.filesystem.poll).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds between two scans with --poll (default: extensions.filesystem.poll_interval).",
)
@watch_options
@click.pass_obj
def watch_command(
    state: CliState,
    folder: Path,
    workflow: str | None,
    patterns: tuple[str, ...],
    exclude: tuple[str, ...],
    recursive: bool,
    aggregate: int | None,
    settle: float | None,
    poll: bool | None,
    poll_interval: float | None,
    watch: WatchOptions,
) -> None:
    """Start WORKFLOW for every file (or --aggregate files) that lands in FOLDER.

    A file lands when it is closed after writing, moved into FOLDER, or (--settle,
    --poll) unchanged for a while. The run gets the absolute paths as its parameter
    'files' (a list, in order): the workflow declares Option('files', type=list).
    Files that arrived while no watch ran are handed off when it starts, and nothing
    already handed off under the same --name is started again. Runs until Ctrl-C or
    SIGTERM, logging one line per started run.

    Without FOLDER, watches every folder trigger ('source: folder') of the
    'triggers' section of lightflow.cfg, in this one process.
    """
    if folder is None:
        given = {"--workflow": workflow, "--pattern": patterns, "--exclude": exclude,
                 "--recursive": recursive, "--aggregate": aggregate, "--settle": settle,
                 "--arg": watch.arguments, "--poll/--no-poll": poll is not None,
                 "--poll-interval": poll_interval, "--name": watch.name}  # fmt: skip
        misplaced = [option for option, value in given.items() if value]
        if misplaced:
            raise click.UsageError(
                f"{misplaced[0]} describes a FOLDER given on the command line; without "
                "FOLDER the folder triggers of lightflow.cfg are watched as declared there"
            )
        specs = _configured_triggers(state)
    else:
        if not workflow:
            raise click.UsageError("Missing option '--workflow': the workflow FOLDER starts.")
        from .folder_source import FolderSource
        from .plugin import CONFIG_DEFAULTS

        defaults = {**CONFIG_DEFAULTS, **(state.config.extensions.get("filesystem") or {})}
        path = os.path.abspath(folder)
        source = FolderSource.from_settings(
            {
                "path": path,
                "patterns": list(patterns),
                "exclude": list(exclude),
                "recursive": recursive,
                "settle": settle,
                "poll": defaults["poll"] if poll is None else poll,
                "poll_interval": poll_interval or defaults["poll_interval"],
            }
        )
        specs = [watch.spec(source, workflow, watched=path, aggregate=aggregate)]
    watch.run(state, specs)


def _configured_triggers(state: CliState) -> list[TriggerSpec]:
    """The ``folder`` triggers of the ``triggers`` section."""
    from lightflow.exceptions import ConfigError
    from lightflow.triggers import specs_from_config

    from .folder_source import FolderSource

    config = state.config
    names = [
        name
        for name, settings in config.triggers.items()
        if isinstance(settings, dict) and settings.get("source") == FolderSource.kind
    ]
    if not names:
        raise ConfigError(
            f"no folder triggers in the 'triggers' section of "
            f"{config.source or 'the configuration'}: give a FOLDER and --workflow, or "
            "declare them there (source: folder)"
        )
    return specs_from_config(config, names)
