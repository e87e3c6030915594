"""Starting a trigger's runs: on the cluster, or each in a process of its own.

A launcher starts the run of one :class:`~lightflow.triggers.ledger.Batch` under the
batch's id, and says when it has started (``started(batch_id)``), which is when the
trigger records the hand-off as done. Starting is idempotent per id on both engines,
so the trigger may start a batch again after a crash without starting it twice:

* :class:`ClusterLauncher` submits through :func:`lightflow.api.start_workflow`
  (``run_id=``); it returns once the run is queued.
* :class:`EmbeddedLauncher` runs each workflow run in a process of its own
  (``python -m lightflow.triggers.child``), at most ``workers`` at once, on the
  embedded engine. One process is kept ready with the workflow already loaded, so a
  hand-off costs a write to a pipe rather than a Python start-up. A run's process
  creates a start marker (``<markers>/<run id>``, ``O_EXCL``) before it runs the
  workflow, and ends at once if the marker exists: that is what keeps a batch
  started again after a crash from running twice. The processes are in the trigger's
  process group: Ctrl-C in a terminal stops their runs with it; :meth:`close` asks the
  running ones to stop as ``workflow stop`` would (their runs end stopped).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import pickle
import queue
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .ledger import Batch

if TYPE_CHECKING:
    from ..config import Config
    from ..workflows import Workflow

logger = logging.getLogger("lightflow.triggers")

Started = Callable[[str], None]

#: How long a stopping launcher waits for the runs it asked to stop (seconds): the
#: trigger must end within 1 s; the runs end on their own after that.
CLOSE_WAIT = 0.5


class Launcher(abc.ABC):
    """Starts the runs of one trigger's batches."""

    @abc.abstractmethod
    def open(self, workflow: Workflow) -> None:
        """Get ready to start runs of ``workflow`` (again after it was reloaded)."""

    @abc.abstractmethod
    def launch(self, batch: Batch, started: Started) -> None:
        """Start the run of ``batch``; call ``started(batch.id)`` once it has started.

        May return before the run started (``started`` is then called from another
        thread).

        Raises:
            LightflowError: The run cannot be started now (the state server or the
                broker is down); nothing was started.
        """

    @property
    def running(self) -> int:
        """Runs this launcher started that still run (0 if it cannot tell)."""
        return 0

    @abc.abstractmethod
    def close(self) -> None:
        """Stop starting runs (within :data:`CLOSE_WAIT` seconds)."""


class ClusterLauncher(Launcher):
    """Submits runs to the cluster through the public API."""

    def __init__(self, config: Config, *, queue: str, keep_data: bool) -> None:
        self._config = config
        self._queue = queue
        self._keep_data = keep_data
        self._workflow: Workflow | None = None

    def open(self, workflow: Workflow) -> None:
        self._workflow = workflow

    def launch(self, batch: Batch, started: Started) -> None:
        from .. import api

        assert self._workflow is not None, "open() first"
        api.start_workflow(
            self._workflow,
            batch.arguments,
            config=self._config,
            queue=self._queue,
            keep_data=self._keep_data,
            run_id=batch.id,
        )
        started(batch.id)

    def close(self) -> None:
        """Nothing to close: runs on the cluster go on without the trigger."""


class EmbeddedLauncher(Launcher):
    """Runs each batch's workflow run in a process of its own; see the module docstring.

    Args:
        config: The configuration (its file and libraries reach the run processes).
        markers: The folder of start markers.
        workers: Runs that may run at once; further batches wait their turn.
        name: The trigger's name, for log lines.
    """

    def __init__(self, config: Config, *, markers: Path, workers: int, name: str) -> None:
        self._config = config
        self._markers = markers
        self._workers = workers
        self._name = name
        self._workflow: Workflow | None = None
        self._jobs: queue.SimpleQueue[tuple[Batch, Started] | None] = queue.SimpleQueue()
        self._ready: subprocess.Popen[bytes] | None = None  # loaded, waiting for a job
        self._ready_loaded: Workflow | None = None  # the workflow it loaded
        # By pidfd: the processes running a batch's run (with its id), and retired
        # ready processes (id None) that are only waited for.
        self._processes: dict[int, tuple[subprocess.Popen[bytes], str | None]] = {}
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._closed = False
        self._thread: threading.Thread | None = None

    def open(self, workflow: Workflow) -> None:
        markers = self._markers
        markers.mkdir(parents=True, exist_ok=True)
        self._workflow = workflow  # the dispatcher replaces a process that has another
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._dispatch, name=f"trigger-runs-{self._name}", daemon=True
            )
            self._thread.start()
        self._wake()

    def launch(self, batch: Batch, started: Started) -> None:
        self._jobs.put((batch, started))
        self._wake()

    @property
    def running(self) -> int:
        with self._lock:
            return sum(run_id is not None for _, run_id in self._processes.values())

    def close(self) -> None:
        self._closed = True
        self._jobs.put(None)
        self._wake()
        if self._thread is not None:
            self._thread.join(CLOSE_WAIT)
        with self._lock:
            runs = [process for process, run_id in self._processes.values() if run_id]
            ready, self._ready = self._ready, None
        if ready is not None:
            _close_stdin(ready)
        for process in runs:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)  # the run stops as `workflow stop` does
        deadline = time.monotonic() + CLOSE_WAIT
        for process in runs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(deadline - time.monotonic(), 0.0))
        if runs:
            still = [p.pid for p in runs if p.poll() is None]
            if still:
                logger.info(
                    "trigger %s: %d run(s) were asked to stop and end on their own (pids %s)",
                    self._name,
                    len(still),
                    ", ".join(map(str, still)),
                )

    # -- the dispatcher thread ----------------------------------------------------------
    def _dispatch(self) -> None:
        """Hand jobs to ready processes as slots free up; reap finished runs."""
        waiting: list[tuple[Batch, Started]] = []
        while True:
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    return
                waiting.append(job)
            while waiting and self.running < self._workers and not self._closed:
                batch, started = waiting.pop(0)
                if not (self._markers / batch.id).exists():  # else it started before
                    self._start(batch)
                started(batch.id)
            if not self._closed:
                self._keep_one_ready()
            for key, _ in self._selector.select():
                if key.fd == self._wake_read:
                    os.read(self._wake_read, 4096)
                else:
                    self._reap(key.fd)

    def _start(self, batch: Batch) -> None:
        """Give the batch to the ready process (started now if there is none)."""
        with self._lock:
            process, self._ready = self._ready, None
        if process is None or process.poll() is not None:
            process = self._spawn()  # waited for: the run starts once it has loaded
        assert process.stdin is not None
        job = pickle.dumps((batch.id, batch.arguments))
        try:
            process.stdin.write(struct.pack("!I", len(job)) + job)
            process.stdin.close()
        except OSError:  # it died while waiting: start a fresh one
            process = self._spawn()
            assert process.stdin is not None
            process.stdin.write(struct.pack("!I", len(job)) + job)
            process.stdin.close()
        self._watch(process, batch.id)

    def _retire(self, process: subprocess.Popen[bytes]) -> None:
        """End a ready process that never got a job (closing its stdin ends it).

        Called by the dispatcher thread only, like every change of the selector.
        """
        _close_stdin(process)
        self._watch(process, None)

    def _watch(self, process: subprocess.Popen[bytes], run_id: str | None) -> None:
        """Have the dispatcher wait for the process (it reaps it when it ends)."""
        pidfd = os.pidfd_open(process.pid)
        with self._lock:
            self._processes[pidfd] = (process, run_id)
        self._selector.register(pidfd, selectors.EVENT_READ)

    def _keep_one_ready(self) -> None:
        with self._lock:
            ready = self._ready
        if ready is not None and self._ready_loaded is not self._workflow:
            self._retire(ready)  # it loaded the workflow as it was before a change
            ready = None
        if ready is None or ready.poll() is not None:
            if ready is not None:  # it could not load the workflow: it said why
                logger.error(
                    "trigger %s: the process that runs the workflow ended before its run "
                    "(exit %s); trying again in 1 s",
                    self._name,
                    ready.returncode,
                )
                time.sleep(1.0)
            process = self._spawn()
            with self._lock:
                self._ready, self._ready_loaded = process, self._workflow

    def _spawn(self) -> subprocess.Popen[bytes]:
        assert self._workflow is not None
        command = [
            sys.executable,
            "-m",
            "lightflow.triggers.child",
            "--workflow",
            str(self._workflow.path),
            "--markers",
            str(self._markers),
        ]
        if self._config.source is not None:
            command += ["--config", str(self._config.source)]
        return subprocess.Popen(command, stdin=subprocess.PIPE)

    def _reap(self, pidfd: int) -> None:
        self._selector.unregister(pidfd)
        os.close(pidfd)
        with self._lock:
            process, run_id = self._processes.pop(pidfd)
        code = process.wait()
        if run_id is None:
            return
        outcome = {0: "succeeded", 1: "did not succeed"}.get(code, f"ended with exit {code}")
        logger.info("trigger %s: run %s %s", self._name, run_id, outcome)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")


def _close_stdin(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()
