"""Lightflow extension: file tasks, folder triggers and a folder watcher that starts workflows.

The names a 1.x workflow imports from ``lightflow_filesystem`` are all here, with
their 1.x signatures: the file tasks, the two trigger tasks and the exceptions. The
watcher is the ``lightflow fs watch`` command and the ``folder`` kind of trigger
source (:class:`FolderSource`).
"""

from typing import TYPE_CHECKING

from lightflow.plugins import lazy_exports

from .version import __version__

#: Where each public name lives. They are imported when first used, not with the
#: package: ``lightflow --help`` loads every extension's plugin module, and with it
#: this package, and must not pay for the task classes (and the core's models).
_HOMES = {
    "ChmodTask": "chmod_task",
    "ChownTask": "chown_task",
    "CopyTask": "copy_task",
    "FolderSource": "folder_source",
    "GlobTask": "glob_task",
    "LineSource": "line_source",
    "MakeDirTask": "makedir_task",
    "MoveTask": "move_task",
    "NewLineTriggerTask": "newline_trigger_task",
    "NotifyTriggerTask": "notify_trigger_task",
    "RemoveTask": "remove_task",
    "WalkTask": "walk_task",
    **dict.fromkeys(
        [
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
        ],
        "exceptions",
    ),
}

if TYPE_CHECKING:
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
    from .walk_task import WalkTask


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())

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
