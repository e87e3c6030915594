"""CopyTask: copy files and folders, as ``cp -r`` does."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Any

from .exceptions import LightflowFilesystemCopyError, LightflowFilesystemPathError
from .file_task import TransferTask, logger

if TYPE_CHECKING:
    from lightflow.models import Action, MultiTaskData, TaskContext, TaskParameters


class CopyTask(TransferTask):
    """Copies files and folders to a destination.

    When ``destination`` is an existing folder each source is copied into it under its
    own name; a folder is merged into a folder of the same name that is already there
    (1.x always failed in that case), and files already there are overwritten.
    Otherwise ``destination`` is the path of the copy (of the one source). File
    metadata (times, permissions) is copied too; symbolic links inside a copied folder
    stay links.

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
        LightflowFilesystemPathError: A path is not absolute, several sources go to a
            destination that is not a folder, or a folder would be copied into itself.
        LightflowFilesystemCopyError: A copy failed (missing source, permission
            denied, disk full...); the message names the path and the reason.
    """

    def apply(
        self,
        params: TaskParameters,
        data: MultiTaskData,
        store: Any,
        signal: Any,
        context: TaskContext,
    ) -> Action | None:
        """Copy every source, in order."""
        for source, target in self.destinations(params):
            logger.info("task '%s': copy %s to %s", self.name, source, target)
            try:
                if os.path.isdir(source):
                    self._check_not_inside(source, target)
                    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
                else:
                    shutil.copy2(source, target)
            except shutil.Error as error:
                raise self._tree_failure(source, error) from None
            except OSError as error:
                raise self.failure(LightflowFilesystemCopyError, "copy", source, error) from None
        return None

    def _check_not_inside(self, source: str, target: str) -> None:
        inside = os.path.commonpath([os.path.realpath(source), os.path.realpath(target)])
        if inside == os.path.realpath(source):
            raise LightflowFilesystemPathError(
                f"task '{self.name}': cannot copy folder {source} into itself ({target})"
            )

    def _tree_failure(self, source: str, error: shutil.Error) -> LightflowFilesystemCopyError:
        """One line for ``copytree``'s list of failures (or a same-file copy)."""
        failures = error.args[0] if error.args and isinstance(error.args[0], list) else None
        if not failures:
            return LightflowFilesystemCopyError(
                f"task '{self.name}': cannot copy {source}: {error}"
            )
        path, _, reason = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return LightflowFilesystemCopyError(
            f"task '{self.name}': cannot copy {source} (at {path}): {reason}{more}"
        )
