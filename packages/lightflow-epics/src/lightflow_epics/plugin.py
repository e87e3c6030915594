"""The hooks lightflow-epics implements (entry point ``lightflow``, name ``epics``).

Kept light: ``lightflow --help`` calls :func:`lightflow_cli_commands`, so only the
click group is imported here; pyepics and p4p load when a PV is first used.
"""

from __future__ import annotations

from typing import Any

from lightflow.plugins import hookimpl

#: The ``extensions.epics`` section: the defaults of ``lightflow epics watch`` and ``get``.
CONFIG_DEFAULTS = {"connection_timeout": 5.0, "on_timeout": "wait"}


@hookimpl
def lightflow_cli_commands() -> list[Any]:
    """``lightflow epics ...``."""
    from .cli import epics_group

    return [epics_group]


@hookimpl
def lightflow_task_types() -> list[type]:
    """The PV tasks, for ``lightflow tasks``."""
    from . import PvGetTask, PvPutTask, PvTriggerTask

    return [PvTriggerTask, PvGetTask, PvPutTask]


@hookimpl
def lightflow_config_defaults() -> dict[str, Any]:
    """``extensions: epics: {connection_timeout: 5.0, on_timeout: wait}``."""
    return {"extensions": {"epics": dict(CONFIG_DEFAULTS)}}


@hookimpl
def lightflow_trigger_sources() -> list[type]:
    """The ``pv`` kind of trigger source."""
    from .source import PvSource

    return [PvSource]
