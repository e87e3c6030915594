"""What ChownTask and ChmodTask share: which paths of a folder they change, and in what order.

For a folder the 1.x rules hold: the folder itself, and with ``recursive`` everything
below it, without it only the files directly in it; ``only_dirs`` leaves files out. A
path that is not a folder is changed itself. Symbolic links inside a folder are
neither followed nor changed (changing one would change what it points to, possibly
outside the folder).

Each folder is listed *before* it is changed and changed *after* everything in it,
so a mode that takes away the owner's own access (``'400'`` on a folder) still
reaches the whole tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .exceptions import LightflowFilesystemError
from .file_task import FileTask, logger

if TYPE_CHECKING:
    from lightflow.models import Action, MultiTaskData, TaskContext, TaskParameters


class TreeTask(FileTask):
    """Base of ChownTask and ChmodTask: changes every path of the tree of each path.

    Subclasses pass the arguments ``paths``, ``recursive`` and ``only_dirs`` (with
    their own), set :attr:`action` and :attr:`error_type`, and implement
    :meth:`prepare` (check their own arguments once; return the change of one path).
    """

    #: What the task does to a path, for messages (``change the owner of``).
    action = ""
    #: The error raised when the system refuses a change.
    error_type: type[LightflowFilesystemError] = LightflowFilesystemError

    def apply(
        self,
        params: TaskParameters,
        data: MultiTaskData,
        store: Any,
        signal: Any,
        context: TaskContext,
    ) -> Action | None:
        """Change every path's tree, in order."""
        paths = self.path_list(params.paths, "paths")
        change = self.prepare(params)
        for path in paths:
            logger.info("task '%s': %s %s", self.name, self.action, path)
            try:
                for target in tree(path, bool(params.recursive), bool(params.only_dirs)):
                    change(target)
            except OSError as error:
                raise self.failure(self.error_type, self.action, path, error) from None
        return None

    def prepare(self, params: TaskParameters) -> Callable[[str], None]:
        """Check the task's own arguments; return the change to make to one path."""
        raise NotImplementedError(f"{type(self).__name__} does not implement prepare()")


def tree(path: str, recursive: bool, only_dirs: bool) -> Iterator[str]:
    """The paths to change for ``path``, each folder after its content."""
    if os.path.isdir(path):
        yield from _inside(path, recursive, only_dirs)
    yield path


def _inside(folder: str, recursive: bool, only_dirs: bool) -> Iterator[str]:
    with os.scandir(folder) as listing:
        entries = sorted(listing, key=lambda entry: entry.name)
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.is_dir():
            if recursive:
                yield from _inside(entry.path, recursive, only_dirs)
                yield entry.path
        elif not only_dirs:
            yield entry.path
