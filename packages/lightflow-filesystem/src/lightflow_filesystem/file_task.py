"""What every file task shares: run-time arguments, checked paths and one-line errors.

The file tasks (MakeDir, Copy, Move, Remove, Chown, Chmod, Glob, Walk and the two
triggers) keep the 1.x contract: every argument but the name, the callbacks and the
keyword-only ones may be a callable ``f(data, store)`` evaluated when the task runs,
paths may be one path or a list, and paths must be absolute (a relative path would
depend on the worker's working directory). This module owns that contract once:
:class:`FileTask` evaluates the arguments and hands them to the subclass's
:meth:`FileTask.apply`; :meth:`FileTask.path_list` / :meth:`FileTask.absolute_path`
check paths; :meth:`FileTask.failure` turns an ``OSError`` into the task's one-line
error naming the path and the reason. Nothing is ever swallowed. Two families share
their 1.x signature too: :class:`PathsTask` (``paths`` alone: MakeDir, Remove) and
:class:`TransferTask` (``sources`` to a ``destination``, where each one goes as
``cp``/``mv`` decide: Copy, Move).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lightflow.exceptions import TaskDefinitionError
from lightflow.models import BaseTask, TaskParameters
from lightflow.models.task import DEFAULT_QUEUE

from .exceptions import (
    LightflowFilesystemConfigError,
    LightflowFilesystemError,
    LightflowFilesystemPathError,
)

if TYPE_CHECKING:
    from lightflow.models import Action, MultiTaskData, TaskContext

logger = logging.getLogger("lightflow.filesystem")

#: A task argument: its value, or ``f(data, store)`` returning it when the task runs.
Argument = Any


class FileTask(BaseTask):
    """Base of the file tasks: subclasses implement :meth:`apply`.

    Args:
        name: The task's name, unique within a DAG.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called before the task's work.
        callback_finally: ``f(status, data, store, signal, context)`` called after it
            however it ended.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.
        **arguments: The task's own arguments; callables are evaluated with
            ``(data, store)`` when the task runs.
    """

    def __init__(
        self,
        name: str,
        *,
        queue: str = DEFAULT_QUEUE,
        callback_init: Callable[..., Any] | None = None,
        callback_finally: Callable[..., Any] | None = None,
        force_run: bool = False,
        propagate_skip: bool = True,
        **arguments: Argument,
    ) -> None:
        super().__init__(
            name,
            queue=queue,
            callback_init=callback_init,
            callback_finally=callback_finally,
            force_run=force_run,
            propagate_skip=propagate_skip,
        )
        self.params = TaskParameters(arguments)

    def run(
        self, data: MultiTaskData, store: Any, signal: Any, context: TaskContext, **kwargs: Any
    ) -> Action | None:
        """Evaluate the arguments for this run and do the task's work."""
        return self.apply(self.params.eval(data, store), data, store, signal, context)

    def apply(
        self,
        params: TaskParameters,
        data: MultiTaskData,
        store: Any,
        signal: Any,
        context: TaskContext,
    ) -> Action | None:
        """Do the work with the evaluated arguments; ``None`` passes ``data`` on."""
        raise NotImplementedError(f"{type(self).__name__} does not implement apply()")

    # -- checks shared by the subclasses ---------------------------------------------------
    def checked_callback(self, callback: Any, signature: str) -> Callable[..., Any] | None:
        """``callback`` if it is callable or ``None``; else a definition error at once."""
        if callback is not None and not callable(callback):
            raise TaskDefinitionError(
                f"task '{self.name}': callback must be a function taking ({signature}), "
                f"got {type(callback).__name__}"
            )
        return callback

    def path_list(self, value: Any, argument: str) -> list[str]:
        """One path or a list of paths, as a list of absolute paths.

        Raises:
            LightflowFilesystemConfigError: ``value`` is neither a path nor a list of them.
            LightflowFilesystemPathError: A path is not absolute.
        """
        if isinstance(value, (str, os.PathLike)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise LightflowFilesystemConfigError(
                f"task '{self.name}': {argument} must be a path or a list of paths, "
                f"got {type(value).__name__} ({value!r})"
            )
        return [self.absolute_path(item, argument) for item in value]

    def absolute_path(self, value: Any, argument: str) -> str:
        """One absolute path as a str.

        Raises:
            LightflowFilesystemConfigError: ``value`` is not a path.
            LightflowFilesystemPathError: It is not absolute.
        """
        if not isinstance(value, (str, os.PathLike)):
            raise LightflowFilesystemConfigError(
                f"task '{self.name}': {argument} must be a path, got {type(value).__name__} "
                f"({value!r})"
            )
        path = os.fspath(value)
        if not isinstance(path, str) or not os.path.isabs(path):
            raise LightflowFilesystemPathError(
                f"task '{self.name}': {argument} '{path!s}' is not an absolute path; "
                "give the full path (a relative one would depend on the worker's folder)"
            )
        return path

    def readable_folder(self, path: str) -> None:
        """Check that ``path`` is a folder this process may list.

        Raises:
            LightflowFilesystemPathError: It is missing, not a folder, or unreadable.
        """
        try:
            with os.scandir(path):
                pass
        except OSError as error:
            raise self.failure(LightflowFilesystemPathError, "read folder", path, error) from None

    def failure(
        self,
        error_type: type[LightflowFilesystemError],
        action: str,
        path: str,
        error: OSError | LookupError,
    ) -> LightflowFilesystemError:
        """The task's one-line error for an operation on ``path`` that failed.

        Names the path the system refused when it is another one (a file deep inside a
        folder being removed) and the system's reason.
        """
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        culprit = getattr(error, "filename", None)
        where = f" (at {culprit})" if culprit and os.fspath(culprit) != path else ""
        return error_type(f"task '{self.name}': cannot {action} {path}{where}: {reason}")


class PathsTask(FileTask):
    """Base of the tasks that act on ``paths`` alone (MakeDirTask, RemoveTask).

    Args:
        name: The task's name, unique within a DAG.
        paths: An absolute path or a list of them (or ``f(data, store)`` returning one).
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called first.
        callback_finally: ``f(status, data, store, signal, context)`` called last.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.
    """

    def __init__(
        self,
        name: str,
        paths: Argument,
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
        )


class TransferTask(FileTask):
    """Base of CopyTask and MoveTask: ``sources`` go to a ``destination``, as ``cp``/``mv``.

    Args:
        name: The task's name, unique within a DAG.
        sources: An absolute path or a list of them (or ``f(data, store)``).
        destination: An absolute path (or ``f(data, store)``).
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called first.
        callback_finally: ``f(status, data, store, signal, context)`` called last.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.
    """

    def __init__(
        self,
        name: str,
        sources: Argument,
        destination: Argument,
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
            sources=sources,
            destination=destination,
        )

    def destinations(self, params: TaskParameters) -> list[tuple[str, str]]:
        """Where each source goes when copied or moved to ``destination`` (as ``cp``/``mv``).

        Into ``destination`` under its own name when that is an existing folder;
        otherwise ``destination`` is the new path of the one source.

        Raises:
            LightflowFilesystemPathError: A path is not absolute, or several sources but
                ``destination`` is not an existing folder.
        """
        sources = self.path_list(params.sources, "sources")
        destination = self.absolute_path(params.destination, "destination")
        if os.path.isdir(destination):
            return [
                (source, os.path.join(destination, os.path.basename(source.rstrip(os.sep))))
                for source in sources
            ]
        if len(sources) > 1:
            raise LightflowFilesystemPathError(
                f"task '{self.name}': destination {destination} is not an existing folder, "
                f"and {len(sources)} sources can only go into a folder; create it first "
                "(MakeDirTask)"
            )
        return [(source, destination) for source in sources]
