"""A thread pool whose threads may block in ``join_dags`` without starving the run.

A task that waits for sub-DAGs holds a thread but does no work; with a fixed-size pool,
enough such tasks would leave no thread for the sub-DAGs they wait for (deadlock).
:class:`TaskPool` keeps ``size`` threads *working*: a thread entering
:meth:`TaskPool.blocking` lets the pool start a replacement, and surplus threads exit
once the blocked ones return.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator

_STOP = object()


class TaskPool:
    """Runs submitted callables on at most ``size`` non-blocked threads."""

    def __init__(self, size: int, name: str = "lightflow-task") -> None:
        if size < 1:
            raise ValueError("the pool needs at least one worker thread")
        self._size = size
        self._name = name
        self._jobs: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._blocked = 0
        self._closed = False

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; it runs as soon as a working thread is free."""
        self._jobs.put(job)
        self._grow()

    @contextlib.contextmanager
    def blocking(self) -> Iterator[None]:
        """Mark the calling pool thread as waiting, so another thread may work."""
        with self._lock:
            self._blocked += 1
        self._grow()
        try:
            yield
        finally:
            with self._lock:
                self._blocked -= 1

    def close(self) -> None:
        """Let every thread finish its current job and exit."""
        with self._lock:
            self._closed = True
            count = self._threads
        for _ in range(count):
            self._jobs.put(_STOP)

    def _grow(self) -> None:
        with self._lock:
            if self._closed or self._threads - self._blocked >= self._size:
                return
            self._threads += 1
            number = self._threads
        threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                break
            job()  # type: ignore[operator]
            with self._lock:
                surplus = self._threads - self._blocked > self._size
                if surplus:
                    self._threads -= 1
            if surplus:
                return
        with self._lock:
            self._threads -= 1
