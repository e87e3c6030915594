"""The task types that ship with Lightflow (1.x import path ``lightflow.tasks``)."""

from .python_task import PythonTask

__all__ = ["PythonTask"]
