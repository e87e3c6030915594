"""Lightflow extension: EPICS PV tasks, PV triggers and a PV watcher that starts workflows.

Workflows import the tasks from here, as in 1.x::

    from lightflow_epics import PvTriggerTask, PvGetTask, PvPutTask

Importing this package does not start Channel Access: pyepics (and p4p for
``pva://`` PVs) are loaded when a task or trigger first talks to a PV.
"""

from .channel import PvError
from .io_tasks import PvGetTask, PvPutTask
from .source import PvEvent, PvSource
from .trigger_task import PvTriggerTask
from .version import __version__

__all__ = [
    "PvError",
    "PvEvent",
    "PvGetTask",
    "PvPutTask",
    "PvSource",
    "PvTriggerTask",
    "__version__",
]
