"""Deciding that a file is complete because it stopped changing.

Some files never announce their end: a writer on another host of a network
filesystem (inotify sees nothing of it, so the folder is polled), a writer that
closes and reopens the file, or a file that was already there when watching started.
Such a file is *tracked*: it counts as complete once its size, modification time and
inode have not changed for its quiet period, checked with ``stat`` when the period
ends (so a file that grew meanwhile is tracked for another period, and one that
vanished is dropped). Any sign of activity (:meth:`SettleTracker.track` again)
starts the period over.

One thread waits for the earliest deadline and sleeps without a timeout while
nothing is tracked (an idle watcher costs no CPU). The callbacks run in that thread,
never under the tracker's lock, in the order the files settle.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable

#: What must stay the same for a file to count as settled.
Signature = tuple[int, int, int]


def signature(stat: os.stat_result) -> Signature:
    """The part of a ``stat`` that changes when a file is written or replaced."""
    return (stat.st_size, stat.st_mtime_ns, stat.st_ino)


class SettleTracker:
    """Reports files once they have not changed for their quiet period.

    Args:
        on_settled: ``f(path, stat)``, called when a file settled.
        on_vanished: ``f(path)``, called when a tracked file disappeared before it
            settled.
    """

    def __init__(
        self,
        on_settled: Callable[[str, os.stat_result], None],
        on_vanished: Callable[[str], None],
    ) -> None:
        self._on_settled = on_settled
        self._on_vanished = on_vanished
        self._condition = threading.Condition()
        # path -> (deadline, quiet period, signature at the last look)
        self._tracked: dict[str, tuple[float, float, Signature | None]] = {}
        # (deadline, sequence, path); entries whose deadline no longer matches
        # self._tracked are stale and skipped.
        self._deadlines: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._running = False
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        with self._condition:
            return len(self._tracked)

    def start(self) -> None:
        """Start the thread that checks the files when their periods end."""
        with self._condition:
            self._running = True
        self._thread = threading.Thread(target=self._run, name="lightflow-settle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop checking; no callback runs after this returns (within 1 s)."""
        with self._condition:
            self._running = False
            self._condition.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)

    def track(self, path: str, quiet: float) -> None:
        """Start, or start over, the quiet period of ``path``."""
        try:
            current: Signature | None = signature(os.stat(path))
        except OSError:
            current = None  # looked at again when the period ends
        with self._condition:
            self._arm(path, quiet, current)
            self._condition.notify()

    def discard(self, path: str) -> bool:
        """Stop tracking ``path``; whether it was tracked."""
        with self._condition:
            return self._tracked.pop(path, None) is not None

    def _arm(self, path: str, quiet: float, current: Signature | None) -> None:
        """Set the deadline of ``path`` (under the lock)."""
        deadline = time.monotonic() + quiet
        self._tracked[path] = (deadline, quiet, current)
        heapq.heappush(self._deadlines, (deadline, next(self._sequence), path))

    def _run(self) -> None:
        while True:
            with self._condition:
                due = self._next_due()
                while self._running and due is None:
                    self._condition.wait(self._wait_time())
                    due = self._next_due()
                if not self._running:
                    return
            self._look_at(*due)

    def _wait_time(self) -> float | None:
        """Seconds until the earliest deadline; ``None`` (no timeout) when idle."""
        if not self._deadlines:
            return None
        return max(self._deadlines[0][0] - time.monotonic(), 0.0)

    def _next_due(self) -> tuple[str, float, Signature | None] | None:
        """Pop the file whose period ended, if any (under the lock)."""
        now = time.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, path = heapq.heappop(self._deadlines)
            entry = self._tracked.get(path)
            if entry is None or entry[0] != deadline:
                continue  # discarded, or started over since
            return path, entry[1], entry[2]
        return None

    def _look_at(self, path: str, quiet: float, before: Signature | None) -> None:
        try:
            stat = os.stat(path)
        except OSError:
            if self.discard(path):
                self._on_vanished(path)
            return
        if signature(stat) != before:
            with self._condition:
                if path in self._tracked:  # still changing: another period
                    self._arm(path, quiet, signature(stat))
            return
        if self.discard(path):
            self._on_settled(path, stat)
