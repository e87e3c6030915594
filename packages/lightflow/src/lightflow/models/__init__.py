"""The 1.x-compatible public workflow API: what workflow files import."""

from ..exceptions import AbortWorkflow, StopTask
from .action import Action
from .context import TaskContext
from .dag import Dag
from .datastore import DataStoreDocumentSection
from .parameters import Option, Parameters
from .task import BaseTask, TaskStatus
from .task_data import MultiTaskData, TaskData
from .task_parameters import TaskParameters

__all__ = [
    "AbortWorkflow",
    "Action",
    "BaseTask",
    "Dag",
    "DataStoreDocumentSection",
    "MultiTaskData",
    "Option",
    "Parameters",
    "StopTask",
    "TaskContext",
    "TaskData",
    "TaskParameters",
    "TaskStatus",
]
