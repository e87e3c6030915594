"""The root ``lightflow`` group: options, extension commands and error rendering.

Start-up must stay fast (``lightflow --help`` is the first thing a user runs), so
nothing here or in the command modules imports the models, networkx, YAML, Celery or
the store at import time: commands import what they need when they run. The
configuration is read on first use (so ``lightflow run --help`` works even with a
broken file) and its ``logging`` section applied only by the commands that run or
follow work (:meth:`CliState.apply_logging`). Extensions are loaded only when the root
lists its commands or is asked for one that is not a core command.
"""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Any

import click

from ..exceptions import LightflowError
from ..version import __version__

if TYPE_CHECKING:
    from ..config import Config

COMPLETE_VAR = "_LIGHTFLOW_COMPLETE"

#: The core commands, imported only when used: a command pays for its own module.
CORE_COMMANDS = {
    "config": ("config_cmd", "config_group"),
    "workflow": ("workflow_cmd", "workflow_group"),
    "run": ("run_cmd", "run_command"),
    "worker": ("worker_cmd", "worker_group"),
    "monitor": ("monitor_cmd", "monitor_command"),
    "triggers": ("triggers_cmd", "triggers_group"),
    "ext": ("ext_cmd", "ext_group"),
    "tasks": ("ext_cmd", "tasks_command"),
}

_EPILOG = """\b
Shell completion: add this line to ~/.bashrc (zsh: zsh_source, fish: fish_source)
  eval "$(_LIGHTFLOW_COMPLETE=bash_source lightflow)"
"""


class CliState:
    """What the root group hands to every command: the config, read once on first use."""

    def __init__(self, config_path: str | None = None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        """The effective configuration; deprecation notes go to stderr once."""
        if self._config is None:
            from ..config import Config

            self._config = Config.load(self.config_path)
            for note in self._config.deprecations:
                click.echo(f"Note: {note}", err=True)
        return self._config

    def apply_logging(self) -> Config:
        """Apply the config's ``logging`` section; return the config.

        Commands that run or follow work call it before they start (``run``,
        ``worker start``, ``workflow start --wait``, ``monitor``); the others leave
        logging alone, so ``config list`` still shows a section that cannot be applied.

        Raises:
            ConfigError: The section cannot be applied (one line, naming the file).
        """
        from ..log_config import apply_logging

        apply_logging(self.config)
        return self.config


def get_config(ctx: click.Context | None = None) -> Config:
    """The configuration of the running ``lightflow`` command (for extension commands)."""
    ctx = ctx or click.get_current_context()
    # Outside the root group (a command invoked on its own) the lookup rules apply.
    return ctx.ensure_object(CliState).config


class CommandError(click.ClickException):
    """A :class:`LightflowError` on its way to the user: one line, plus details.

    ``details`` is shown under the line, e.g. the failing task's own traceback.
    """

    exit_code = 1

    def __init__(self, error: LightflowError) -> None:
        lines = str(error).strip().splitlines() or [type(error).__name__]
        super().__init__(" ".join(line.strip() for line in lines))
        self.details: str | None = getattr(error, "traceback", None)

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``Error: <message>`` and the details to stderr."""
        click.echo(f"Error: {self.format_message()}", file=file, err=file is None)
        if self.details:
            click.echo(self.details.rstrip("\n"), file=file, err=file is None)


class LightflowGroup(click.Group):
    """The root group: core commands plus the commands of extensions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._extension_commands: dict[str, click.Command] | None = None

    def extension_commands(self) -> dict[str, click.Command]:
        """Commands added by extensions, by name (loads the extensions once)."""
        if self._extension_commands is None:
            from ..plugins import manager

            commands: dict[str, click.Command] = {}
            for plugin, command in manager.cli_commands():
                name = command.name or ""
                if name in CORE_COMMANDS or name in commands:
                    click.echo(
                        f"Warning: extension '{plugin}' adds a command '{name}' "
                        "that already exists; ignored",
                        err=True,
                    )
                    continue
                commands[name] = command
            report_plugin_problems()
            self._extension_commands = commands
        return self._extension_commands

    def core_command(self, name: str) -> click.Command | None:
        """A core command by name, imported on first use."""
        if name not in self.commands and name in CORE_COMMANDS:
            import importlib

            module, attribute = CORE_COMMANDS[name]
            command = getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
            self.add_command(command, name)
        return self.commands.get(name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*CORE_COMMANDS, *sorted(self.extension_commands())]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self.core_command(cmd_name) or self.extension_commands().get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        extensions = self.extension_commands()
        for title, names in (
            ("Commands", list(CORE_COMMANDS)),
            ("Extension commands", sorted(extensions)),
        ):
            rows = []
            for name in names:
                command = self.get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(formatter.width - 30)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LightflowError as error:
            raise CommandError(error) from error


_reported_problems = 0


def report_plugin_problems(echo: bool = True) -> None:
    """Print one ``Warning:`` line per extension problem not reported yet.

    With ``echo=False`` the problems are only marked as reported (for a command that
    shows them its own way).
    """
    global _reported_problems
    from ..plugins import manager

    found = manager.problems()
    if not echo or os.environ.get(COMPLETE_VAR):  # completion output must stay clean
        _reported_problems = len(found)
        return
    for problem in found[_reported_problems:]:
        click.echo(f"Warning: {problem}", err=True)
    _reported_problems = len(found)


@click.group(
    cls=LightflowGroup,
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", "-V", prog_name="lightflow")
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    help="Configuration file (default: the first of $LIGHTFLOW_CONFIG, ./lightflow.cfg, "
    "~/.config/lightflow/lightflow.cfg, ~/lightflow.cfg).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Lightflow: run workflows of Python tasks, on this machine or on Celery workers.

    Start with `lightflow config examples ./examples` and
    `lightflow run ./examples/<file>.py`.
    """
    ctx.obj = CliState(config_path)


def main(args: list[str] | None = None) -> Any:
    """Entry point of the ``lightflow`` script."""
    return cli.main(args=args, prog_name="lightflow")
