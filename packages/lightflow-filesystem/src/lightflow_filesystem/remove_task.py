"""RemoveTask: remove files, links and whole folders."""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING, Any

from .exceptions import LightflowFilesystemRemoveError
from .file_task import PathsTask, logger

if TYPE_CHECKING:
    from lightflow.models import Action, MultiTaskData, TaskContext, TaskParameters


class RemoveTask(PathsTask):
    """Removes files and folders (a folder with everything in it).

    A symbolic link is removed itself, never what it points to. A path that does not
    exist, or that cannot be removed, fails the task naming it and the reason (1.x
    built that error and dropped it, so the run went on as if the data were gone).

    Args:
        name: The task's name, unique within a DAG.
        paths: An absolute path or a list of them (or ``f(data, store)``).
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called first.
        callback_finally: ``f(status, data, store, signal, context)`` called last.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    Raises:
        LightflowFilesystemPathError: A path is not absolute.
        LightflowFilesystemRemoveError: A path is missing or cannot be removed.
    """

    def apply(
        self,
        params: TaskParameters,
        data: MultiTaskData,
        store: Any,
        signal: Any,
        context: TaskContext,
    ) -> Action | None:
        """Remove every path, in order."""
        for path in self.path_list(params.paths, "paths"):
            logger.info("task '%s': remove %s", self.name, path)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    _remove_tree(path)
                else:
                    os.remove(path)
            except OSError as error:
                raise self.failure(LightflowFilesystemRemoveError, "remove", path, error) from None
        return None


def _remove_tree(path: str) -> None:
    """``shutil.rmtree``, whose errors name the full path of what could not go.

    (rmtree works relative to open folders, so its own errors name only the entry.)
    """

    def full_path(function: Any, failed: str, error: Any) -> None:
        error = error[1] if isinstance(error, tuple) else error
        raise OSError(getattr(error, "errno", None), getattr(error, "strerror", None), failed)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=full_path)
    else:
        shutil.rmtree(path, onerror=full_path)
