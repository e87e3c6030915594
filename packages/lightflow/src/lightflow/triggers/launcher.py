"""Starting a trigger's runs: on the cluster, or each in a process of its own.

A launcher starts the run of one :class:`~lightflow.triggers.ledger.Batch` under the
batch's id, and says when it has started (``started(batch_id)``), which is when the
trigger records the hand-off as done. Starting is idempotent per id on both engines,
so the trigger may start a batch again after a crash without starting it twice:

* :class:`ClusterLauncher` submits through :func:`lightflow.api.start_workflow`
  (``run_id=``); it returns once the run is queued.
* :class:`EmbeddedLauncher` runs each workflow run in a process of its own
  (``python -m lightflow.triggers.child``), at most ``workers`` at once, on the
  embedded engine. One process is kept ready with Lightflow imported, so a hand-off
  costs a write to a pipe rather than a Python start-up. The job it is given holds the
  workflow the trigger checked the batch against (pickled, as for a worker), so a
  run never sees a workflow file the trigger has not loaded (one edited into a broken
  state, or changed since). A run's process creates a start marker (``<markers>/<run
  id>``, ``O_EXCL``) before it runs the workflow, or ends at once if the marker
  exists: that is what keeps a batch started again after a crash from running twice.
  It reports either on a pipe of its own, and only then is the batch ``started``: a
  process that dies before (killed with the trigger) leaves the batch unfinished in
  the ledger, to be started at the next start. Markers of batches the ledger records
  as started are removed when the trigger starts (:meth:`EmbeddedLauncher.prune`).
  The processes are in the trigger's process group: Ctrl-C in a terminal stops their
  runs with it; :meth:`~Launcher.close` asks the running ones to stop as ``workflow
  stop`` would (their runs end stopped).
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .ledger import Batch

if TYPE_CHECKING:
    from ..config import Config
    from ..workflows import Workflow

logger = logging.getLogger("lightflow.triggers")

Started = Callable[[str], None]

#: Seconds before trying again when a run's process ended before starting its run.
RETRY_WAIT = 1.0
#: What a run's process reports (:mod:`.child`): it started the run, or an earlier
#: process had.
STARTED = b"s"
DUPLICATE = b"d"


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
    def prune(self, unfinished: Iterable[str]) -> None:
        """Forget what guards the start of batches other than ``unfinished`` (ids).

        Called when the trigger starts, before it starts its unfinished batches again.
        """

    @abc.abstractmethod
    def close(self, deadline: float) -> None:
        """Stop starting runs, returning by ``deadline`` (:func:`time.monotonic`)."""


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

    def prune(self, unfinished: Iterable[str]) -> None:
        """Nothing to forget: a run's record is what guards its start (pruned with it)."""

    def close(self, deadline: float) -> None:
        """Nothing to close: runs on the cluster go on without the trigger."""


@dataclass
class _Job:
    """A batch to start, with the workflow it was checked against."""

    batch: Batch
    started: Started
    workflow: Workflow


@dataclass
class _Child:
    """A run's process (or the ready one, ``job`` None) and its report pipe."""

    process: subprocess.Popen[bytes]
    report: int | None  # read end of the pipe the process reports its start on
    job: _Job | None = None
    duplicate: bool = False  # it found the run started by an earlier process


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
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._ready: _Child | None = None  # started, waiting for a job
        self._spawn_after = 0.0  # monotonic time: the last ready process died young
        self._retry_after = 0.0  # monotonic time: the last run's process died unstarted
        self._failing = False  # a failure was logged and nothing has started since
        # By pidfd: the processes given a job, until reaped (job None once one died
        # before starting its run). By report fd: those that have not reported yet.
        self._children: dict[int, _Child] = {}
        self._reports: dict[int, _Child] = {}
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._closed = False
        self._thread: threading.Thread | None = None

    def open(self, workflow: Workflow) -> None:
        self._markers.mkdir(parents=True, exist_ok=True)
        self._workflow = workflow
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._dispatch, name=f"trigger-runs-{self._name}", daemon=True
            )
            self._thread.start()
        self._wake()

    def prune(self, unfinished: Iterable[str]) -> None:
        """Remove the start markers of batches the ledger records as started.

        Only an unfinished batch is ever started again, so only its marker is needed;
        the others would pile up, one per run.
        """
        keep = set(unfinished)
        for marker in self._markers.glob("*"):
            if marker.name not in keep:
                marker.unlink(missing_ok=True)

    def launch(self, batch: Batch, started: Started) -> None:
        assert self._workflow is not None, "open() first"
        self._jobs.put(_Job(batch, started, self._workflow))
        self._wake()

    @property
    def running(self) -> int:
        with self._lock:
            return sum(child.job is not None for child in self._children.values())

    def close(self, deadline: float) -> None:
        self._closed = True
        self._jobs.put(None)
        self._wake()
        if self._thread is not None:
            self._thread.join(max(deadline - time.monotonic(), 0.0))
        with self._lock:
            runs = [child.process for child in self._children.values() if child.job]
            ready, self._ready = self._ready, None
        if ready is not None:  # it ends at the end of its input
            _close_stdin(ready.process)
            self._forget_report(ready)
        for process in runs:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)  # the run stops as `workflow stop` does
        for process in runs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(deadline - time.monotonic(), 0.0))
        still = [process.pid for process in runs if process.poll() is None]
        if still:
            logger.info(
                "trigger %s: %d run(s) were asked to stop and end on their own (pids %s)",
                self._name,
                len(still),
                ", ".join(map(str, still)),
            )

    # -- the dispatcher thread ----------------------------------------------------------
    def _dispatch(self) -> None:
        """Hand jobs to ready processes as slots free up; follow and reap the runs.

        An unexpected failure (a full disk, where the ledger is written) is logged and
        the loop goes on after a pause; a batch it could not start stays unfinished in
        the ledger, and the trigger's next start starts it.
        """
        waiting: list[_Job] = []
        while True:
            try:
                if not self._dispatch_step(waiting):
                    return
            except Exception as error:
                logger.error(
                    "trigger %s: starting runs failed, trying again in %g s: %s",
                    self._name,
                    RETRY_WAIT,
                    error,
                )
                time.sleep(RETRY_WAIT)

    def _dispatch_step(self, waiting: list[_Job]) -> bool:
        """Take new jobs, start what may start, wait for something; False once closed."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return False
            waiting.append(job)
        now = time.monotonic()
        while waiting and self.running < self._workers and now >= self._retry_after:
            job = waiting.pop(0)
            if (self._markers / job.batch.id).exists():  # an earlier process started it
                job.started(job.batch.id)
            else:
                self._start(job, waiting)
        if now >= self._spawn_after:
            self._keep_one_ready()
        for key, _ in self._selector.select(self._next_timer(waiting)):
            if key.fd == self._wake_read:
                os.read(self._wake_read, 4096)
            elif key.fd in self._reports:
                self._read_report(key.fd, waiting)
            elif key.fd in self._children:
                self._reap(key.fd, waiting)
        return True

    def _next_timer(self, waiting: list[_Job]) -> float | None:
        """Seconds until a back-off ends that something waits for (``None``: none)."""
        now = time.monotonic()
        timers = [self._spawn_after] if self._ready is None else []
        if waiting:
            timers.append(self._retry_after)
        due = [when - now for when in timers if when > now]
        return min(due) if due else None

    def _start(self, job: _Job, waiting: list[_Job]) -> None:
        """Give the job to the ready process (started now if there is none)."""
        message = pickle.dumps((job.batch.id, job.batch.arguments, job.workflow.pickled()))
        with self._lock:
            child, self._ready = self._ready, None
        if child is None or child.process.poll() is not None:
            if child is not None:
                self._forget_report(child)
            child = self._spawn()
        assert child.process.stdin is not None
        try:
            child.process.stdin.write(struct.pack("!I", len(message)) + message)
            child.process.stdin.close()
        except OSError:  # it died while waiting for a job
            _close_stdin(child.process)
            self._forget_report(child)
            self._unstarted(job, child, waiting)
            return
        child.job = job
        self._watch(child)

    def _spawn(self) -> _Child:
        report_read, report_write = os.pipe()
        command = [
            sys.executable,
            "-m",
            "lightflow.triggers.child",
            "--markers",
            str(self._markers),
            "--report-fd",
            str(report_write),
        ]
        if self._config.source is not None:
            command += ["--config", str(self._config.source)]
        # The child starts with SIGINT blocked, which it inherits through exec: a
        # Ctrl-C in the terminal while its interpreter imports stays pending until the
        # child ignores SIGINT (child.main), instead of a KeyboardInterrupt traceback.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=(report_write,))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            os.close(report_write)
        return _Child(process, report_read)

    def _watch(self, child: _Child) -> None:
        """Follow the child given a job: its report and its end.

        Called by the dispatcher thread only, like every change of the selector.
        """
        pidfd = os.pidfd_open(child.process.pid)
        with self._lock:
            self._children[pidfd] = child
        self._selector.register(pidfd, selectors.EVENT_READ)
        if child.report is not None:
            self._reports[child.report] = child
            self._selector.register(child.report, selectors.EVENT_READ)

    def _keep_one_ready(self) -> None:
        with self._lock:
            ready = self._ready
        if self._closed or (ready is not None and ready.process.poll() is None):
            return
        if ready is not None:  # it could not start (it said why on stderr)
            self._forget_report(ready)
            with self._lock:
                self._ready = None
            self._spawn_after = time.monotonic() + RETRY_WAIT
            logger.error(
                "trigger %s: the process that runs the workflow ended before its run "
                "(exit %s); trying again in %g s",
                self._name,
                ready.process.returncode,
                RETRY_WAIT,
            )
            return
        child = self._spawn()
        with self._lock:
            self._ready = child

    def _read_report(self, fd: int, waiting: list[_Job]) -> None:
        """The child started its run, found it started already, or died before either."""
        child = self._reports.pop(fd)
        self._selector.unregister(fd)
        report = os.read(fd, 1)
        self._forget_report(child)
        job = child.job
        assert job is not None
        if report or (self._markers / job.batch.id).exists():
            child.duplicate = report == DUPLICATE
            if self._failing:
                logger.info("trigger %s: runs start again", self._name)
                self._failing = False
            job.started(job.batch.id)
        else:
            child.job = None  # nothing ran: no outcome to log when it is reaped
            self._unstarted(job, child, waiting)

    def _unstarted(self, job: _Job, child: _Child, waiting: list[_Job]) -> None:
        """The process given ``job`` ended before starting it: try again after a pause."""
        waiting.insert(0, job)
        self._retry_after = time.monotonic() + RETRY_WAIT
        if not self._failing:
            self._failing = True
            logger.error(
                "trigger %s: the process for run %s ended before starting it (exit %s); "
                "trying again every %g s",
                self._name,
                job.batch.id,
                child.process.wait(),
                RETRY_WAIT,
            )

    def _reap(self, pidfd: int, waiting: list[_Job]) -> None:
        child = self._children[pidfd]
        if child.report in self._reports:  # its report first, for the order of log lines
            self._read_report(child.report, waiting)
        self._selector.unregister(pidfd)
        os.close(pidfd)
        with self._lock:
            del self._children[pidfd]
        code = child.process.wait()
        if child.job is None or child.duplicate:
            return
        outcome = {0: "succeeded", 1: "did not succeed"}.get(code, f"ended with exit {code}")
        logger.info("trigger %s: run %s %s", self._name, child.job.batch.id, outcome)

    def _forget_report(self, child: _Child) -> None:
        if child.report is not None:
            os.close(child.report)
            child.report = None

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")


def _close_stdin(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()
