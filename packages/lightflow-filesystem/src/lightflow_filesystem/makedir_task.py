"""MakeDirTask: create folders (and their parents) that do not exist yet."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .exceptions import LightflowFilesystemMkdirError
from .file_task import PathsTask, logger

if TYPE_CHECKING:
    from lightflow.models import Action, MultiTaskData, TaskContext, TaskParameters


class MakeDirTask(PathsTask):
    """Creates one or more folders, with their missing parents.

    A folder that already exists is left as it is. A path that exists but is not a
    folder fails the task (1.x skipped it silently).

    Args:
        name: The task's name, unique within a DAG.
        paths: An absolute path or a list of them (or ``f(data, store)`` returning one).
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called first.
        callback_finally: ``f(status, data, store, signal, context)`` called last.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    Raises:
        LightflowFilesystemPathError: A path is not absolute.
        LightflowFilesystemMkdirError: A folder cannot be created (permission denied,
            a file in the way...); the message names it and the reason.
    """

    def apply(
        self,
        params: TaskParameters,
        data: MultiTaskData,
        store: Any,
        signal: Any,
        context: TaskContext,
    ) -> Action | None:
        """Create each folder that is missing."""
        for path in self.path_list(params.paths, "paths"):
            if os.path.isdir(path):
                logger.info("task '%s': folder %s exists already", self.name, path)
                continue
            try:
                os.makedirs(path)
            except OSError as error:
                raise self.failure(
                    LightflowFilesystemMkdirError, "create folder", path, error
                ) from None
        return None
