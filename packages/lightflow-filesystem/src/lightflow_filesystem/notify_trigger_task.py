"""NotifyTriggerTask: call back with the files that land in a folder, batch by batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightflow.models import TaskParameters
from lightflow.models.task import DEFAULT_QUEUE

from .exceptions import LightflowFilesystemConfigError
from .file_task import Argument
from .folder_source import DEFAULT_POLL_INTERVAL, FolderSource
from .watch_task import WatchTask


class NotifyTriggerTask(WatchTask):
    """Watches a folder and calls ``callback(files, data, store, signal, context)``.

    ``files`` is a list of absolute paths, one batch of ``aggregate`` of them, in the
    order the events happened. The task runs until its DAG or workflow is stopped
    (``workflow stop``, Ctrl-C, ``signal.stop_workflow()``); the callback typically
    starts a DAG with the files (``signal.start_dag('process', data=data)``). Files of a
    partial batch at the stop are logged by name. What counts as an event is
    :class:`~lightflow_filesystem.folder_source.FolderSource`'s rule: "closed" is a
    file written and closed (or, with ``settle``/``poll``, a file that stopped
    changing).

    Every argument but the name, the callbacks and the keyword-only ones may be a
    callable ``f(data, store)`` evaluated when the task runs.

    Args:
        name: The task's name, unique within a DAG.
        path: The folder to watch, an absolute path.
        callback: ``f(files, data, store, signal, context)``, once per batch.
        recursive: Watch the subfolders too.
        aggregate: Files per batch; ``None`` or 1: every file on its own.
        skip_duplicate: Leave out a file already in the open batch.
        use_existing: Start with the files already in the folder.
        flush_existing: With ``use_existing``: hand them over at once as one batch,
            whatever ``aggregate`` says.
        exclude_mask: A regular expression; files whose path it matches are left out.
        on_file_create: Report files when they are created.
        on_file_close: Report files when they are closed after writing (default).
        on_file_delete: Report files when they are deleted.
        on_file_move: Report files moved into or within the folder (their new path)
            and out of it (their old path).
        event_trigger_time: Accepted for 1.x compatibility (see
            :mod:`~lightflow_filesystem.watch_task`).
        stop_polling_rate: Accepted for 1.x compatibility.
        poll: Scan the folder instead of using inotify: for network filesystems (NFS,
            GPFS), where inotify misses other hosts' writes.
        poll_interval: Seconds between two scans when polling.
        settle: Seconds a file must stay unchanged to count as closed (for writers
            that reopen files; by default one ``poll_interval`` when polling).
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called first.
        callback_finally: ``f(status, data, store, signal, context)`` called last.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    Raises:
        LightflowFilesystemPathError: ``path`` is not absolute or not a readable folder.
        LightflowFilesystemConfigError: An argument is invalid (``aggregate`` of 0, a
            bad ``exclude_mask``, no event selected...).
    """

    def __init__(
        self,
        name: str,
        path: Argument,
        callback: Callable[..., Any] | None,
        recursive: Argument = True,
        aggregate: Argument = None,
        skip_duplicate: Argument = False,
        use_existing: Argument = False,
        flush_existing: Argument = True,
        exclude_mask: Argument = None,
        on_file_create: Argument = False,
        on_file_close: Argument = True,
        on_file_delete: Argument = False,
        on_file_move: Argument = False,
        event_trigger_time: Argument = None,
        stop_polling_rate: Argument = 2,
        *,
        poll: Argument = False,
        poll_interval: Argument = DEFAULT_POLL_INTERVAL,
        settle: Argument = None,
        queue: str = DEFAULT_QUEUE,
        callback_init: Callable[..., Any] | None = None,
        callback_finally: Callable[..., Any] | None = None,
        force_run: bool = False,
        propagate_skip: bool = True,
    ) -> None:
        super().__init__(
            name,
            callback,
            "files, data, store, signal, context",
            queue=queue,
            callback_init=callback_init,
            callback_finally=callback_finally,
            force_run=force_run,
            propagate_skip=propagate_skip,
            path=path,
            recursive=recursive,
            aggregate=aggregate,
            skip_duplicate=skip_duplicate,
            use_existing=use_existing,
            flush_existing=flush_existing,
            exclude_mask=exclude_mask,
            on_file_create=on_file_create,
            on_file_close=on_file_close,
            on_file_delete=on_file_delete,
            on_file_move=on_file_move,
            event_trigger_time=event_trigger_time,
            stop_polling_rate=stop_polling_rate,
            poll=poll,
            poll_interval=poll_interval,
            settle=settle,
        )

    def source(self, params: TaskParameters) -> FolderSource:
        """The folder source for the evaluated arguments."""
        path = self.absolute_path(params.path, "path")
        self.readable_folder(path)
        flags = {
            "created": params.on_file_create,
            "closed": params.on_file_close,
            "deleted": params.on_file_delete,
            "moved_in": params.on_file_move,
            "moved_out": params.on_file_move,
        }
        report = [event for event, wanted in flags.items() if wanted]
        if not report:
            raise LightflowFilesystemConfigError(
                f"task '{self.name}': no event selected; set on_file_close (the default), "
                "on_file_create, on_file_delete or on_file_move"
            )
        return FolderSource(
            path,
            exclude_regex=params.exclude_mask,
            recursive=bool(params.recursive),
            settle=params.settle,
            poll=bool(params.poll),
            poll_interval=params.poll_interval,
            report=report,
        )
