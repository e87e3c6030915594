"""MoveTask: move files and folders, as ``mv`` does."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

from .exceptions import LightflowFilesystemMoveError
from .file_task import TransferTask, logger

if TYPE_CHECKING:
    from lightflow.models import Action, MultiTaskData, TaskContext, TaskParameters


class MoveTask(TransferTask):
    """Moves files and folders to a destination.

    When ``destination`` is an existing folder each source moves into it under its own
    name (a file there of the same name is replaced; a folder there of the same name
    fails the task rather than nesting the source inside it). Otherwise
    ``destination`` is the new path of the one source. Across filesystems the source
    is copied, then removed.

    Args:
        name: The task's name, unique within a DAG.
        sources: An absolute path or a list of them (or ``f(data, store)``).
        destination: An absolute path (or ``f(data, store)``).
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called first.
        callback_finally: ``f(status, data, store, signal, context)`` called last.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    Raises:
        LightflowFilesystemPathError: A path is not absolute, or several sources go to
            a destination that is not a folder.
        LightflowFilesystemMoveError: A move failed (missing source, permission
            denied...); the message names the path and the reason.
    """

    def apply(
        self,
        params: TaskParameters,
        data: MultiTaskData,
        store: Any,
        signal: Any,
        context: TaskContext,
    ) -> Action | None:
        """Move every source, in order."""
        for source, target in self.destinations(params):
            logger.info("task '%s': move %s to %s", self.name, source, target)
            try:
                if os.path.isdir(target) and not os.path.samefile(source, target):
                    raise LightflowFilesystemMoveError(
                        f"task '{self.name}': cannot move {source} to {target}: "
                        "a folder of that name is already there"
                    )
                shutil.move(source, target)
            except OSError as error:
                raise self.failure(LightflowFilesystemMoveError, "move", source, error) from None
        return None
