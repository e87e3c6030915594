"""Lightflow extension: EPICS PV tasks, PV triggers and a PV watcher that starts workflows.

Workflows import the tasks from here, as in 1.x::

    from lightflow_epics import PvTriggerTask, PvGetTask, PvPutTask

Importing this package does not start Channel Access: pyepics (and p4p for
``pva://`` PVs) are loaded when a task or trigger first talks to a PV.
"""

from typing import TYPE_CHECKING

from lightflow.plugins import lazy_exports

from .version import __version__

#: Where each public name lives; imported on first use (see ``lazy_exports``).
_HOMES = {
    "PvError": "channel",
    "PvGetTask": "io_tasks",
    "PvPutTask": "io_tasks",
    "PvEvent": "source",
    "PvSource": "source",
    "PvTriggerTask": "trigger_task",
}

if TYPE_CHECKING:
    from .channel import PvError
    from .io_tasks import PvGetTask, PvPutTask
    from .source import PvEvent, PvSource
    from .trigger_task import PvTriggerTask

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())

__all__ = [
    "PvError",
    "PvEvent",
    "PvGetTask",
    "PvPutTask",
    "PvSource",
    "PvTriggerTask",
    "__version__",
]
