"""The record of a workflow run: META entries in the store and the event stream.

Every engine reports the life of a run through a :class:`RunRecorder`, which writes
the 1.x META layout (``log.<dag>.tasks.<task>.{start_time,end_time,duration,worker,
status}``, ``log.<dag>.{start_time,...}`` and the run's own ``start_time``, ``end_time``,
``duration``, ``status`` at the top of META) and emits :class:`RunEvent` to an
optional listener. Keeping both in one place means ``lightflow run``, ``workflow
status`` and the REST API all read the same facts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from .events import EventKind, RunEvent
from .store.base import META, DataStoreDocument

EventListener = Callable[[RunEvent], None]
logger = logging.getLogger(__name__)

_FINISHED_TASK_EVENTS = {
    "succeeded": EventKind.TASK_SUCCEEDED,
    "stopped": EventKind.TASK_STOPPED,
    "failed": EventKind.TASK_FAILED,
    "aborted": EventKind.TASK_ABORTED,
}


class RunRecorder:
    """Writes the META record of one run and emits its events (thread-safe)."""

    def __init__(
        self,
        document: DataStoreDocument,
        workflow: str,
        workflow_id: str,
        listener: EventListener | None = None,
        *,
        deferred: bool = False,
    ) -> None:
        """Args:
        deferred: Hold META writes until :meth:`flush` or :meth:`take` (events still
            go out at once), so the distributed engine can send a task's successors
            before it spends a store round trip on the task's record.
        """
        self._document = document
        self._deferred = deferred
        self._pending: dict[str, Any] = {}
        self._workflow = workflow
        self._workflow_id = workflow_id
        self._listener = listener
        self._lock = threading.Lock()
        self._starts: dict[tuple[str | None, str | None], float] = {}
        self.durations: dict[tuple[str, str], float] = {}

    def workflow_started(self, arguments: dict[str, Any]) -> None:
        """Record the start of the run with its (consolidated) arguments."""
        self._started(
            None,
            None,
            "",
            EventKind.WORKFLOW_STARTED,
            extra={
                "name": self._workflow,
                "workflow_id": self._workflow_id,
                "arguments": _plain(arguments),
            },
        )

    def workflow_finished(
        self, outcome: str, message: str | None = None, *, started_at: float | None = None
    ) -> float:
        """Record the end of the run; returns its duration.

        ``started_at`` is needed when another process recorded the start.
        """
        return self._finished(
            None,
            None,
            "",
            EventKind.WORKFLOW_FINISHED,
            outcome=outcome,
            message=message,
            started_at=started_at,
        )

    def dag_started(self, dag: str) -> None:
        """Record the start of a DAG instance."""
        self._started(dag, None, f"log.{dag}", EventKind.DAG_STARTED)

    def dag_finished(self, dag: str, outcome: str, *, started_at: float | None = None) -> None:
        """Record the end of a DAG instance with its outcome."""
        self._finished(
            dag, None, f"log.{dag}", EventKind.DAG_FINISHED, outcome=outcome, started_at=started_at
        )

    def task_started(self, dag: str, task: str, worker: str) -> float:
        """Record that a task began running on ``worker``.

        Its META entry (start time, worker, status ``running``) is there while it runs,
        as in 1.x: a task that reads the log sees itself and the tasks still running.
        Returns the start time, for a recorder in another process that records the end.
        """
        key = f"log.{dag}.tasks.{task}"
        return self._started(dag, task, key, EventKind.TASK_STARTED, worker=worker)

    def task_finished(
        self,
        dag: str,
        task: str,
        state: str,
        *,
        worker: str | None = None,
        message: str | None = None,
        traceback: str | None = None,
        started_at: float | None = None,
    ) -> None:
        """Record how a task that ran ended (succeeded/stopped/failed/aborted).

        ``started_at`` is needed when another recorder noted the start.
        """
        duration = self._finished(
            dag,
            task,
            f"log.{dag}.tasks.{task}",
            _FINISHED_TASK_EVENTS[state],
            outcome=state,
            message=message,
            traceback=traceback,
            worker=worker,
            started_at=started_at,
        )
        with self._lock:
            self.durations[(dag, task)] = duration

    def task_not_run(self, dag: str, task: str, state: str) -> None:
        """Record a task that was skipped or cancelled without running."""
        self._write(f"log.{dag}.tasks.{task}", {"status": state})
        kind = EventKind.TASK_SKIPPED if state == "skipped" else EventKind.TASK_CANCELLED
        self._emit(
            RunEvent(kind, self._workflow_id, self._workflow, time.time(), dag=dag, task=task)
        )

    # -- internals ----------------------------------------------------------------------
    def _started(
        self,
        dag: str | None,
        task: str | None,
        key: str,
        kind: EventKind,
        worker: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> float:
        now = time.time()
        with self._lock:
            self._starts[(dag, task)] = now
        entry = {**(extra or {}), "start_time": _utc(now), "status": "running"}
        if worker:
            entry["worker"] = worker
        self._write(key, entry)
        self._emit(
            RunEvent(
                kind, self._workflow_id, self._workflow, now, dag=dag, task=task, worker=worker
            )
        )
        return now

    def _finished(
        self,
        dag: str | None,
        task: str | None,
        key: str,
        kind: EventKind,
        *,
        outcome: str,
        message: str | None = None,
        traceback: str | None = None,
        worker: str | None = None,
        started_at: float | None = None,
    ) -> float:
        now = time.time()
        with self._lock:
            start = self._starts.pop((dag, task), started_at or now)
        duration = now - start
        entry: dict[str, Any] = {
            "start_time": _utc(start),
            "end_time": _utc(now),
            "duration": duration,
            "status": outcome,
        }
        if worker:
            entry["worker"] = worker
        if message:
            entry["error"] = message
        self._write(key, entry)
        self._emit(
            RunEvent(
                kind,
                self._workflow_id,
                self._workflow,
                now,
                dag=dag,
                task=task,
                duration=duration,
                outcome=outcome,
                message=message,
                traceback=traceback,
                worker=worker,
            )
        )
        return duration

    def _write(self, key: str, fields: dict[str, Any]) -> None:
        """Write fields under ``key`` in META (the run's own fields at the top level).

        A task's entry has no children, so it is written whole; run and DAG entries hold
        the entries below them and are written field by field. Either way one update.
        """
        if ".tasks." in key:
            values: dict[str, Any] = {key: fields}
        else:
            values = {f"{key}.{name}" if key else name: value for name, value in fields.items()}
        if self._deferred:
            with self._lock:
                self._pending.update(values)
        else:
            self._document.set_many(values, section=META)

    def take(self) -> dict[str, Any]:
        """Hand over the META values a deferred recorder holds (dot-notation keys).

        The distributed engine queues them in Redis with the state transition they
        describe and writes them to the store in batches.
        """
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def flush(self) -> None:
        """Write the META values a deferred recorder holds, in one update."""
        pending = self.take()
        if pending:
            self._document.set_many(pending, section=META)

    def _emit(self, event: RunEvent) -> None:
        if self._listener is None:
            return
        with self._lock:
            try:
                self._listener(event)
            except Exception:
                logger.exception("run event listener failed on %s", event.kind.value)


def _utc(timestamp: float) -> datetime:
    # Whole milliseconds: the precision of a BSON date, so MongoDB stores it natively.
    milliseconds = round(timestamp * 1000)
    return datetime.fromtimestamp(milliseconds // 1000, tz=timezone.utc) + timedelta(
        milliseconds=milliseconds % 1000
    )


def _plain(arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)
        for key, value in arguments.items()
    }
