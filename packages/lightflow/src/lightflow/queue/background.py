"""Work done by one daemon thread per process, started on first use (and after a fork)."""

from __future__ import annotations

import os
import threading


class BackgroundWork:
    """Work done by one daemon thread per process (a forked pool process starts its own).

    Subclasses implement :meth:`_run` and call :meth:`_ensure_thread` whenever they
    queue work, holding their own lock.
    """

    THREAD_NAME = "lightflow-background"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _ensure_thread(self) -> None:
        if self._thread is None or self._pid != os.getpid():  # new, or forked
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, daemon=True, name=self.THREAD_NAME)
            self._thread.start()

    def _run(self) -> None:
        raise NotImplementedError
