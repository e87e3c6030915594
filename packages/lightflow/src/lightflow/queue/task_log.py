"""Task output in the worker log and the run's log: tagging, per-task attribution, shipping."""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import state as rs
from .background import BackgroundWork
from .cluster import Cluster

if TYPE_CHECKING:
    pass

logger = logging.getLogger("lightflow.worker")


@dataclass
class _RunningTask:
    """A task running in this process, for tagging what its threads write."""

    tag: tuple[str, str, str]  # run id, DAG instance, task
    cluster: Cluster
    #: Threads alive when the task started: none of them was started by the task.
    older: set[threading.Thread]


class task_logging:
    """While a task runs, tag log records with run/DAG/task and keep them per run.

    Records from threads the task started (a BashTask's output callbacks) count as
    the task's too when it is the only task running in the process, as it always is
    in a prefork pool process; a thread that was there before the task (one an
    earlier task left running) is not the task's. A task run by a task waiting in
    ``join_dags`` (:mod:`.joining`) has the thread while it runs; the waiting task's
    tag is back after it. Lines reach the run's log within
    :attr:`LogShipper.INTERVAL` seconds (so ``workflow logs --follow`` shows a long
    task as it goes), and all of them before the task's end is recorded.
    """

    def __init__(self, cluster: Cluster, run_id: str, instance: str, task: str) -> None:
        self._tag = (run_id, instance, task)
        self._cluster = cluster
        self._outer: _RunningTask | None = None  # the task waiting for this one

    def __enter__(self) -> None:
        entry = _RunningTask(self._tag, self._cluster, set(threading.enumerate()))
        with _running_lock:
            self._outer = _running_tasks.get(threading.get_ident())
            _running_tasks[threading.get_ident()] = entry

    def __exit__(self, *exc: object) -> None:
        for stream in (sys.stdout, sys.stderr):  # a last line without its newline
            stream.flush()
        with _running_lock:
            if self._outer is None:
                _running_tasks.pop(threading.get_ident(), None)
            else:
                _running_tasks[threading.get_ident()] = self._outer
        log_shipper.flush()


#: The tasks running in this process, by the thread running each.
_running_tasks: dict[int, _RunningTask] = {}
_running_lock = threading.Lock()


def _current_task() -> _RunningTask | None:
    entry = _running_tasks.get(threading.get_ident())
    if entry is None:  # perhaps a thread the task started
        running = list(_running_tasks.values())  # one copy: tasks come and go meanwhile
        if len(running) == 1 and threading.current_thread() not in running[0].older:
            entry = running[0]
    return entry


def current_task_tag() -> tuple[str, str, str] | None:
    """``(run_id, dag, task)`` of the task this thread works for, if any."""
    entry = _current_task()
    return entry.tag if entry is not None else None


def keep_log_line(line: str) -> None:
    """Queue a formatted log line for the run log of the task this thread works for."""
    entry = _current_task()
    if entry is not None:
        log_shipper.add(entry.cluster, entry.tag[0], line)


class LogShipper(BackgroundWork):
    """Appends tasks' log lines to their runs' logs (``lf:run:<id>:logs``) in batches.

    A line is written by a background thread at most :attr:`INTERVAL` seconds after
    the task wrote it, together with every other line written meanwhile: one round
    trip per batch, not per line. A task's end flushes at once. One flush at a time, so
    a run's lines keep their order.
    """

    INTERVAL = 0.25
    THREAD_NAME = "lightflow-logs"

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[str, tuple[Cluster, list[str]]] = {}
        self._wake = threading.Condition()
        self._flushing = threading.Lock()

    def add(self, cluster: Cluster, run_id: str, line: str) -> None:
        """Queue a line of a run; it is written within :attr:`INTERVAL` seconds."""
        with self._wake:
            self._pending.setdefault(run_id, (cluster, []))[1].append(line)
            self._ensure_thread()
            self._wake.notify()

    def flush(self) -> None:
        """Write every queued line now (the run's log keeps the newest ones)."""
        with self._flushing:
            with self._wake:
                pending, self._pending = self._pending, {}
            while pending:
                run_id, (cluster, lines) = next(iter(pending.items()))
                key = rs.run_key(run_id, "logs")
                pipe = cluster.redis.pipeline(transaction=False)
                for line in lines:
                    pipe.xadd(key, {"line": line}, maxlen=rs.LOG_LINES_KEPT, approximate=True)
                try:
                    pipe.execute()
                except Exception:  # keep what is unsent, ahead of newer lines, for next time
                    with self._wake:
                        for unsent, (owner, older) in pending.items():
                            newer = self._pending.pop(unsent, (owner, []))[1]
                            self._pending[unsent] = (owner, older + newer)
                    raise
                del pending[run_id]

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
            time.sleep(self.INTERVAL)  # gather the lines that follow close behind
            try:
                self.flush()
            except Exception:  # the task's own end flushes again
                logger.warning("could not write task log lines", exc_info=True)


log_shipper = LogShipper()
