"""NewLineTriggerTask: call back with the lines appended to a text file, batch by batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightflow.models import TaskParameters
from lightflow.models.task import DEFAULT_QUEUE

from .file_task import Argument
from .line_source import DEFAULT_POLL_INTERVAL, LineSource
from .watch_task import WatchTask


class NewLineTriggerTask(WatchTask):
    """Watches a text file and calls ``callback(lines, data, store, signal, context)``.

    ``lines`` is a list of ``aggregate`` complete lines (each with its newline), in
    the order they were written. The task runs until its DAG or workflow is stopped;
    lines of a partial batch at the stop are logged. How lines are read is
    :class:`~lightflow_filesystem.line_source.LineSource`'s rule.

    Every argument but the name, the callbacks and the keyword-only ones may be a
    callable ``f(data, store)`` evaluated when the task runs.

    Args:
        name: The task's name, unique within a DAG.
        path: The file to watch, an absolute path.
        callback: ``f(lines, data, store, signal, context)``, once per batch.
        aggregate: Lines per batch; ``None`` or 1: every line on its own.
        use_existing: Start with the lines already in the file.
        flush_existing: With ``use_existing``: hand them over at once as one batch,
            whatever ``aggregate`` says.
        event_trigger_time: With ``poll``, seconds between two looks at the file (1.x
            always polled at this rate); otherwise accepted for compatibility.
        stop_polling_rate: Accepted for 1.x compatibility (see
            :mod:`~lightflow_filesystem.watch_task`).
        poll: Look at the file every ``event_trigger_time`` seconds instead of using
            inotify: for network filesystems, where inotify misses other hosts' writes.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called first.
        callback_finally: ``f(status, data, store, signal, context)`` called last.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    Raises:
        LightflowFilesystemPathError: ``path`` is not absolute.
        LightflowFilesystemConfigError: An argument is invalid.
        lightflow.exceptions.LightflowError: The file does not exist or is unreadable.
    """

    def __init__(
        self,
        name: str,
        path: Argument,
        callback: Callable[..., Any] | None,
        aggregate: Argument = None,
        use_existing: Argument = False,
        flush_existing: Argument = True,
        event_trigger_time: Argument = 0.5,
        stop_polling_rate: Argument = 2,
        *,
        poll: Argument = False,
        queue: str = DEFAULT_QUEUE,
        callback_init: Callable[..., Any] | None = None,
        callback_finally: Callable[..., Any] | None = None,
        force_run: bool = False,
        propagate_skip: bool = True,
    ) -> None:
        super().__init__(
            name,
            callback,
            "lines, data, store, signal, context",
            queue=queue,
            callback_init=callback_init,
            callback_finally=callback_finally,
            force_run=force_run,
            propagate_skip=propagate_skip,
            path=path,
            aggregate=aggregate,
            use_existing=use_existing,
            flush_existing=flush_existing,
            event_trigger_time=event_trigger_time,
            stop_polling_rate=stop_polling_rate,
            poll=poll,
        )

    def source(self, params: TaskParameters) -> LineSource:
        """The line source for the evaluated arguments."""
        return LineSource(
            self.absolute_path(params.path, "path"),
            poll=bool(params.poll),
            poll_interval=params.event_trigger_time or DEFAULT_POLL_INTERVAL,
        )
