"""ChmodTask: change the permissions of files and folder trees."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from lightflow.models import TaskParameters
from lightflow.models.task import DEFAULT_QUEUE

from .exceptions import LightflowFilesystemChmodError, LightflowFilesystemPermissionError
from .file_task import Argument
from .tree_task import TreeTask


class ChmodTask(TreeTask):
    """Sets the POSIX permissions of files and folders.

    Which paths of a folder change, and in which order, is :mod:`.tree_task`'s rule
    (the 1.x one; each folder changes after its content, so ``'500'`` on a tree works).
    A path the system refuses fails the task naming it and the reason (1.x built that
    error and dropped it).

    Args:
        name: The task's name, unique within a DAG.
        paths: An absolute path or a list of them (or ``f(data, store)``).
        permission: The mode in octal, as a string (``'755'``, ``'0o640'``) as in 1.x,
            or as a number (``0o755``).
        recursive: For a folder, change everything below it (default), not only the
            files directly in it.
        only_dirs: Change folders only, not files.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called first.
        callback_finally: ``f(status, data, store, signal, context)`` called last.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    Raises:
        LightflowFilesystemPermissionError: ``permission`` is not an octal mode.
        LightflowFilesystemPathError: A path is not absolute.
        LightflowFilesystemChmodError: A path is missing or may not be changed.
    """

    action = "change the permissions of"
    error_type = LightflowFilesystemChmodError

    def __init__(
        self,
        name: str,
        paths: Argument,
        permission: Argument,
        recursive: Argument = True,
        only_dirs: Argument = False,
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
            recursive=recursive,
            only_dirs=only_dirs,
            permission=permission,
        )

    def prepare(self, params: TaskParameters) -> Callable[[str], None]:
        """Read the mode once, for every path."""
        mode = self._mode(params.permission)
        return lambda path: os.chmod(path, mode)

    def _mode(self, permission: Any) -> int:
        mode = None
        if isinstance(permission, int) and not isinstance(permission, bool):
            mode = permission
        elif isinstance(permission, str):
            try:
                mode = int(permission.strip(), 8)
            except ValueError:
                mode = None
        if mode is None or not 0 <= mode <= 0o7777:
            raise LightflowFilesystemPermissionError(
                f"task '{self.name}': permission {permission!r} is not a POSIX mode in octal; "
                "write it like '755' or '0o640'"
            )
        return mode
