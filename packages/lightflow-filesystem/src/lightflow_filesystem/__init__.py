"""Lightflow extension: file tasks, folder triggers and a folder watcher that starts workflows.

The names a 1.x workflow imports from ``lightflow_filesystem`` are all here, with
their 1.x signatures: the file tasks, the two trigger tasks and the exceptions. The
watcher is the ``lightflow fs watch`` command and the ``folder`` kind of trigger
source (:class:`FolderSource`).
"""

from .chmod_task import ChmodTask
from .chown_task import ChownTask
from .copy_task import CopyTask
from .exceptions import (
    LightflowFilesystemChmodError,
    LightflowFilesystemChownError,
    LightflowFilesystemConfigError,
    LightflowFilesystemCopyError,
    LightflowFilesystemError,
    LightflowFilesystemMkdirError,
    LightflowFilesystemMoveError,
    LightflowFilesystemPathError,
    LightflowFilesystemPermissionError,
    LightflowFilesystemRemoveError,
)
from .folder_source import FolderSource
from .glob_task import GlobTask
from .line_source import LineSource
from .makedir_task import MakeDirTask
from .move_task import MoveTask
from .newline_trigger_task import NewLineTriggerTask
from .notify_trigger_task import NotifyTriggerTask
from .remove_task import RemoveTask
from .version import __version__
from .walk_task import WalkTask

__all__ = [
    "ChmodTask",
    "ChownTask",
    "CopyTask",
    "FolderSource",
    "GlobTask",
    "LightflowFilesystemChmodError",
    "LightflowFilesystemChownError",
    "LightflowFilesystemConfigError",
    "LightflowFilesystemCopyError",
    "LightflowFilesystemError",
    "LightflowFilesystemMkdirError",
    "LightflowFilesystemMoveError",
    "LightflowFilesystemPathError",
    "LightflowFilesystemPermissionError",
    "LightflowFilesystemRemoveError",
    "LineSource",
    "MakeDirTask",
    "MoveTask",
    "NewLineTriggerTask",
    "NotifyTriggerTask",
    "RemoveTask",
    "WalkTask",
    "__version__",
]
