"""The hooks lightflow-filesystem implements (entry point ``lightflow``, name ``filesystem``).

Kept light: ``lightflow --help`` calls :func:`lightflow_cli_commands`, so the click
group is imported here but watchdog and the tasks only when asked for.
"""

from __future__ import annotations

from typing import Any

from lightflow.plugins import hookimpl

#: The ``extensions.filesystem`` section: the defaults of ``lightflow fs watch``.
CONFIG_DEFAULTS = {"poll": False, "poll_interval": 1.0}


@hookimpl
def lightflow_cli_commands() -> list[Any]:
    """``lightflow fs ...``."""
    from .cli import fs_group

    return [fs_group]


@hookimpl
def lightflow_task_types() -> list[type]:
    """The file tasks and the two 1.x trigger tasks, for ``lightflow tasks``."""
    from . import (
        ChmodTask,
        ChownTask,
        CopyTask,
        GlobTask,
        MakeDirTask,
        MoveTask,
        NewLineTriggerTask,
        NotifyTriggerTask,
        RemoveTask,
        WalkTask,
    )

    return [
        MakeDirTask,
        CopyTask,
        MoveTask,
        RemoveTask,
        ChownTask,
        ChmodTask,
        GlobTask,
        WalkTask,
        NotifyTriggerTask,
        NewLineTriggerTask,
    ]


@hookimpl
def lightflow_config_defaults() -> dict[str, Any]:
    """``extensions: filesystem: {poll: false, poll_interval: 1.0}``."""
    return {"extensions": {"filesystem": dict(CONFIG_DEFAULTS)}}


@hookimpl
def lightflow_trigger_sources() -> list[type]:
    """The ``folder`` kind of trigger source."""
    from .folder_source import FolderSource

    return [FolderSource]
