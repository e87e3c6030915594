"""GlobTask: find files by a glob pattern and hand the list to a callback."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lightflow.models import Action
from lightflow.models.task import DEFAULT_QUEUE

from .file_task import Argument, FileTask

if TYPE_CHECKING:
    from lightflow.models import MultiTaskData, TaskContext, TaskParameters


class GlobTask(FileTask):
    """Lists the paths matching a glob pattern in one or more folders.

    Calls ``callback(files, data, store, signal, context)`` once with the matches of
    every folder, in the order of ``paths``, each folder's matches sorted by name (1.x
    gave them in the filesystem's arbitrary order). The callback may change ``data``,
    or return an :class:`~lightflow.models.Action` to choose the successors. A folder
    that is missing or unreadable fails the task (1.x returned no files for it, which
    looks the same as an empty folder on an unmounted share).

    Args:
        name: The task's name, unique within a DAG.
        paths: An absolute folder path or a list of them (or ``f(data, store)``).
        callback: ``f(files, data, store, signal, context)``.
        pattern: The glob pattern (``*.h5``); with ``recursive``, ``**`` matches any
            number of subfolders.
        recursive: Let ``**`` in ``pattern`` descend into subfolders.
        return_abs: Give absolute paths; with ``False`` file names only.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called first.
        callback_finally: ``f(status, data, store, signal, context)`` called last.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    Raises:
        LightflowFilesystemPathError: A path is not absolute, or not a readable folder.
    """

    def __init__(
        self,
        name: str,
        paths: Argument,
        callback: Callable[..., Action | None] | None,
        pattern: Argument = "*",
        recursive: Argument = False,
        return_abs: Argument = True,
        *,
        queue: str = DEFAULT_QUEUE,
        callback_init: Callable[..., Any] | None = None,
        callback_finally: Callable[..., Any] | None = None,
        force_run: bool = False,
        propagate_skip: bool = True,
    ) -> None:
        super().__init__(
            name,
            queue=queue,
            callback_init=callback_init,
            callback_finally=callback_finally,
            force_run=force_run,
            propagate_skip=propagate_skip,
            paths=paths,
            pattern=pattern,
            recursive=recursive,
            return_abs=return_abs,
        )
        self._callback = self.checked_callback(callback, "files, data, store, signal, context")

    def apply(
        self,
        params: TaskParameters,
        data: MultiTaskData,
        store: Any,
        signal: Any,
        context: TaskContext,
    ) -> Action | None:
        """Glob every folder, then call the callback with all the matches."""
        files: list[str] = []
        for path in self.path_list(params.paths, "paths"):
            self.readable_folder(path)
            matches = sorted(
                glob.glob(os.path.join(path, params.pattern), recursive=params.recursive)
            )
            files.extend(matches if params.return_abs else [os.path.basename(m) for m in matches])
        if self._callback is None:
            return None
        result = self._callback(files, data, store, signal, context)
        return result if isinstance(result, Action) else None
