"""ChownTask: change the owner and group of files and folder trees."""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Callable
from typing import Any

from lightflow.models import TaskParameters
from lightflow.models.task import DEFAULT_QUEUE

from .exceptions import LightflowFilesystemChownError, LightflowFilesystemConfigError
from .file_task import Argument
from .tree_task import TreeTask


class ChownTask(TreeTask):
    """Sets the owner and/or group of files and folders.

    Which paths of a folder change is :mod:`.tree_task`'s rule (the 1.x one). A path
    the system refuses fails the task naming it and the reason (1.x built that error
    and dropped it). Changing the owner needs privileges (root, or ``CAP_CHOWN``).

    Args:
        name: The task's name, unique within a DAG.
        paths: An absolute path or a list of them (or ``f(data, store)``).
        user: The new owner, a user name or a uid; ``None`` keeps it.
        group: The new group, a group name or a gid; ``None`` keeps it.
        recursive: For a folder, change everything below it (default), not only the
            files directly in it.
        only_dirs: Change folders only, not files.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called first.
        callback_finally: ``f(status, data, store, signal, context)`` called last.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    Raises:
        LightflowFilesystemConfigError: Neither user nor group is given, or one is
            unknown on the machine running the task.
        LightflowFilesystemPathError: A path is not absolute.
        LightflowFilesystemChownError: A path is missing or may not be changed.
    """

    action = "change the owner of"
    error_type = LightflowFilesystemChownError

    def __init__(
        self,
        name: str,
        paths: Argument,
        user: Argument = None,
        group: Argument = None,
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
            user=user,
            group=group,
        )

    def prepare(self, params: TaskParameters) -> Callable[[str], None]:
        """Resolve the user and group once, for every path."""
        if params.user is None and params.group is None:
            raise LightflowFilesystemConfigError(
                f"task '{self.name}': give a user, a group or both to change ownership to"
            )
        uid = self._resolve(params.user, "user", lambda name: pwd.getpwnam(name).pw_uid)
        gid = self._resolve(params.group, "group", lambda name: grp.getgrnam(name).gr_gid)
        return lambda path: os.chown(path, uid, gid)

    def _resolve(self, value: Any, kind: str, lookup: Callable[[str], int]) -> int:
        """A uid or gid from a name or number; -1 (unchanged) for ``None``."""
        if value is None:
            return -1
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and value:
            try:
                return lookup(value)
            except KeyError:
                raise LightflowFilesystemConfigError(
                    f"task '{self.name}': unknown {kind} '{value}' on this machine"
                ) from None
        raise LightflowFilesystemConfigError(
            f"task '{self.name}': {kind} must be a name or a number, got {value!r}"
        )
