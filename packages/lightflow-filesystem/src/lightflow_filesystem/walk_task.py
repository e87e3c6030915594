"""WalkTask: call a callback for every file in a folder (tree)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from lightflow.models.task import DEFAULT_QUEUE

from .exceptions import LightflowFilesystemPathError
from .file_task import Argument, FileTask

if TYPE_CHECKING:
    from lightflow.models import Action, MultiTaskData, TaskContext, TaskParameters


class WalkTask(FileTask):
    """Calls ``callback(entry, data, store, signal, context)`` for each file in a folder.

    ``entry`` is the file's :class:`os.DirEntry` (``entry.path``, ``entry.name``,
    ``entry.stat()``, ``entry.is_symlink()``). Everything that is not a folder is a
    file here, symbolic links included (to folders too: they are not followed).
    Entries come sorted by name, a folder's files before its subfolders' (1.x gave the
    filesystem's arbitrary order). The callback's return value is ignored.

    Args:
        name: The task's name, unique within a DAG.
        path: An absolute folder path (or ``f(data, store)``).
        callback: ``f(entry, data, store, signal, context)``.
        recursive: Walk the subfolders too.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called first.
        callback_finally: ``f(status, data, store, signal, context)`` called last.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    Raises:
        LightflowFilesystemPathError: ``path`` is not absolute, or it or a subfolder
            is not a readable folder.
    """

    def __init__(
        self,
        name: str,
        path: Argument,
        callback: Callable[..., Any] | None,
        recursive: Argument = False,
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
            path=path,
            recursive=recursive,
        )
        self._callback = self.checked_callback(callback, "entry, data, store, signal, context")

    def apply(
        self,
        params: TaskParameters,
        data: MultiTaskData,
        store: Any,
        signal: Any,
        context: TaskContext,
    ) -> Action | None:
        """Call the callback for every file entry."""
        path = self.absolute_path(params.path, "path")
        for entry in self._files(path, bool(params.recursive)):
            if self._callback is not None:
                self._callback(entry, data, store, signal, context)
        return None

    def _files(self, folder: str, recursive: bool) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            raise self.failure(LightflowFilesystemPathError, "read folder", folder, error) from None
        folders = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            else:
                yield entry
        if recursive:
            for subfolder in folders:
                yield from self._files(subfolder, recursive)
