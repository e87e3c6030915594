"""The extension points of Lightflow: the single list of hooks an extension may implement.

Each hook is called on every registered plugin (the core's own first, then each
extension found through the ``lightflow`` entry-point group); the caller combines the
results. A hook that returns ``None`` contributes nothing; a hook that raises is
reported with the plugin's name and its result left out; it never stops Lightflow.
Extensions implement any subset of these, marking each function with
:data:`lightflow.plugins.hookimpl`.
"""

from __future__ import annotations

from typing import Any

import pluggy

from . import PROJECT_NAME

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def lightflow_cli_commands() -> list[Any] | None:
    """Add command groups or commands to the ``lightflow`` command line.

    Called once per process when the root command lists or resolves its commands,
    which includes ``lightflow --help``: keep this function and the modules it imports
    light, and import heavy libraries inside the commands' functions.

    Returns:
        A list of :class:`click.Command` (usually :class:`click.Group`) objects; each is
        added under its own name (``lightflow fs ...``). A name already taken by a core
        command or by an earlier extension is reported and ignored.
    """


@hookspec
def lightflow_task_types() -> list[type] | None:
    """Register task classes so that ``lightflow tasks`` can list them.

    Called when the task types are listed (``lightflow tasks``, the REST API); it does
    not change how workflows import tasks, which is plain Python.

    Returns:
        A list of :class:`lightflow.models.BaseTask` subclasses. Each is listed by class
        name, module and the first line of its docstring.
    """


@hookspec
def lightflow_config_defaults() -> dict[str, Any] | None:
    """Contribute default settings to the configuration.

    Called when a configuration is loaded (``Config.load``) and when the default file
    is written (``lightflow config default``). The user's file and ``LIGHTFLOW_*``
    overrides take precedence over these defaults.

    Returns:
        A dict laid out like ``lightflow.cfg``: section name to settings, usually
        ``{"extensions": {"<your name>": {...}}}``. Mappings are merged with the core's
        defaults key by key.
    """


@hookspec
def lightflow_trigger_sources() -> list[type] | None:
    """Contribute kinds of trigger source to the trigger runtime.

    Called when triggers are built (``lightflow triggers run``, an extension's
    ``watch`` command, ``lightflow triggers list``). Each class's ``kind`` is the
    ``source:`` value of a ``triggers:`` entry in ``lightflow.cfg``.

    Returns:
        A list of :class:`lightflow.triggers.TriggerSource` subclasses. A kind already
        provided by an earlier extension is reported and ignored.
    """
