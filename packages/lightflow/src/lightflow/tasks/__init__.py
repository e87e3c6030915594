"""The task types that ship with Lightflow (1.x import path ``lightflow.tasks``)."""

from .bash_task import BashTask
from .python_task import PythonTask

__all__ = ["BashTask", "PythonTask"]
