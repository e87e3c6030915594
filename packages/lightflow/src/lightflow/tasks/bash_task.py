"""BashTask: the task type that runs a shell command and streams its output.

This module owns the life of the command's processes: starting ``bash -c`` in a
session (and so a process group) of its own, feeding its stdin, reading stdout and
stderr line by line in reader threads, watching the stop signal, and making sure that
no process of the group outlives the task, however the task ends.

"However" includes the task's process being killed (a worker SIGKILLed, the OOM
killer): no ``finally`` runs then, and the command would go on, reparented to PID 1,
while the re-run of the task starts a second copy. So each command has a watchdog: a
tiny ``bash`` in a session of its own, reading a pipe whose other end only the task's
process holds. The task writes ``done`` to it when the command is over; if the pipe
closes without that (the kernel closes it when the process dies, however it dies),
the watchdog kills the command's whole process group. A parent-death signal
(``PR_SET_PDEATHSIG``) would not do: it reaches only the process it is set in (bash,
not what bash started), and fires when the forking *thread* ends, not the process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal as signals
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from ..exceptions import LightflowError, StopTask, TaskDefinitionError
from ..models.action import Action
from ..models.task import DEFAULT_QUEUE, BaseTask
from ..models.task_parameters import TaskParameters
from .release import hold, let_go

if TYPE_CHECKING:
    from ..models.context import TaskContext
    from ..models.task_data import MultiTaskData

#: Reading ``signal.is_stopped`` may cost a network round trip, so it is read at most
#: this often (seconds), whatever ``refresh_time`` is.
SIGNAL_POLL_INTERVAL = 0.2

#: How often (seconds) the group is checked while it is given time to exit.
_GROUP_POLL_INTERVAL = 0.05

#: How long (seconds) to wait for the reader threads once the group is dead. Only a
#: process that left the group but still holds a pipe open can make them take longer.
_READER_JOIN_TIMEOUT = 2.0

#: The watchdog's script ($1: the group id). ``read`` fails at end of file without a
#: line: the task's process died, so the group is killed; ``done`` means the task saw
#: the group end (its id may be reused by then: nothing is killed).
_WATCHDOG = 'read -r word; [ "$word" = done ] || kill -KILL -- "-$1" 2>/dev/null; exit 0'


class BashTask(BaseTask):
    """A task that runs a command with bash and hands its output to callbacks.

    The command runs as ``bash -c command`` in a new session, so it and everything it
    starts form one process group that the task can signal as a whole.

    Life cycle:

    1. ``callback_process`` is called once the process has started.
    2. Each line of stdout / stderr is passed to ``callback_stdout`` /
       ``callback_stderr`` as soon as the process writes it. The two streams are read
       by two threads, but the callbacks are never called concurrently, so they may
       change ``data`` without locking.
    3. When bash exits, any process it left running in its group (e.g. ``cmd &``
       without ``wait``) is terminated: the task owns its group and leaves no orphans.
       A process meant to outlive the task must start a session of its own
       (``setsid``).
    4. ``callback_end`` is called with the return code and the captured output. If it
       returns an :class:`~lightflow.models.Action`, that is the task's result;
       otherwise the (possibly changed) input data is passed on.

    A non-zero return code is *not* an error, as in Lightflow 1.x: it is given to
    ``callback_end``, which raises an error, ``StopTask`` or ``AbortWorkflow`` when
    the workflow should react to it. A command killed by a signal has the return code
    ``-signum``.

    The task ends early, terminating the whole process group (SIGTERM, then SIGKILL
    after :attr:`terminate_timeout` seconds), when:

    * a callback raises: the exception (``StopTask`` included) becomes the task's
      outcome;
    * ``signal.is_stopped`` becomes true (the DAG or the workflow was asked to stop):
      the task raises ``StopTask`` and its successors are skipped;
    * the task's thread is interrupted (e.g. ``KeyboardInterrupt`` during teardown).

    Every argument except ``name``, the callbacks and the keyword-only ones may also be
    a callable ``f(data, store)`` evaluated when the task runs.

    Args:
        name: The task's name, unique within a DAG.
        command: The bash command (or script path) to run. It must evaluate to a str.
        cwd: Working directory of the command; the worker's if ``None``.
        env: The *complete* environment of the command (it replaces the worker's, as
            in 1.x; merge ``os.environ`` in yourself to extend it). ``None`` inherits
            the worker's environment.
        user: User (name or uid) to run the command as; needs privileges.
        group: Group (name or gid) to run the command as; needs privileges.
        stdin: Text (UTF-8 encoded) or bytes written to the command's stdin, which is
            then closed. With ``None`` stdin is ``/dev/null``, so a command waiting
            for input fails instead of hanging a worker.
        refresh_time: How often (seconds) the task checks whether the command ended.
            The stop signal is read at most every :data:`SIGNAL_POLL_INTERVAL` seconds.
        capture_stdout: Collect the whole stdout for ``callback_end``.
        capture_stderr: Collect the whole stderr for ``callback_end``.
        callback_process: ``f(pid, data, store, signal, context)`` called right after
            the command started; ``pid`` is the bash process id, which is also the
            process group id (1.x passes the pid, not the ``Popen`` object).
        callback_end: ``f(returncode, stdout_file, stderr_file, data, store, signal,
            context) -> Action | None`` called after the command ended.
            ``stdout_file`` / ``stderr_file`` are binary temporary files (read them
            with ``.read().decode()``) positioned at their start and holding the raw
            captured output, or ``None`` when that stream was not captured. They are
            closed, and their disk space freed, as soon as the callback returns.
        callback_stdout: ``f(line, data, store, signal, context)`` called for each line
            of stdout while the command runs. ``line`` is a str that keeps its trailing
            newline (as in 1.x); bytes that are not UTF-8 are replaced.
        callback_stderr: Like ``callback_stdout``, for stderr.
        queue: The queue the task is routed to on the distributed engine.
        callback_init: ``f(data, store, signal, context)`` called before the command.
        callback_finally: ``f(status, data, store, signal, context)`` called after the
            task however it ended, with a :class:`~lightflow.models.TaskStatus`.
        force_run: Run the task even when its predecessors would skip it.
        propagate_skip: When this task is skipped, skip its successors too.

    A stream that is neither captured nor given to a callback is not read by the task:
    the command writes straight to the worker's own stdout/stderr.

    Raises:
        TaskDefinitionError: A callback is not callable (at definition time); at run
            time, the command is not a str, ``stdin`` is neither str nor bytes, or
            the command cannot be started (missing ``cwd``, unknown user, ...).
    """

    #: Seconds a terminated process group gets between SIGTERM and SIGKILL.
    terminate_timeout: float = 2.0

    def __init__(
        self,
        name: str,
        command: str | Callable[[Any, Any], str],
        cwd: str | Callable[[Any, Any], str | None] | None = None,
        env: dict[str, str] | Callable[[Any, Any], dict[str, str] | None] | None = None,
        user: str | int | Callable[[Any, Any], str | int | None] | None = None,
        group: str | int | Callable[[Any, Any], str | int | None] | None = None,
        stdin: str | bytes | Callable[[Any, Any], str | bytes | None] | None = None,
        refresh_time: float | Callable[[Any, Any], float] = 0.1,
        capture_stdout: bool | Callable[[Any, Any], bool] = False,
        capture_stderr: bool | Callable[[Any, Any], bool] = False,
        callback_process: Callable[..., Any] | None = None,
        callback_end: Callable[..., Action | None] | None = None,
        callback_stdout: Callable[..., Any] | None = None,
        callback_stderr: Callable[..., Any] | None = None,
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
        )
        callbacks = {
            "callback_process": callback_process,
            "callback_end": callback_end,
            "callback_stdout": callback_stdout,
            "callback_stderr": callback_stderr,
        }
        for label, callback in callbacks.items():
            if callback is not None and not callable(callback):
                raise TaskDefinitionError(
                    f"task '{name}': {label} must be a function, got {type(callback).__name__}"
                )
        self.params = TaskParameters(
            command=command,
            cwd=cwd,
            env=env,
            user=user,
            group=group,
            stdin=stdin,
            refresh_time=refresh_time,
            capture_stdout=capture_stdout,
            capture_stderr=capture_stderr,
        )
        self._callback_process = callback_process
        self._callback_end = callback_end
        self._callback_stdout = callback_stdout
        self._callback_stderr = callback_stderr

    def run(
        self, data: MultiTaskData, store: Any, signal: Any, context: TaskContext, **kwargs: Any
    ) -> Action | None:
        """Run the command to its end and return ``callback_end``'s Action, if any.

        Raises:
            StopTask: The stop signal was set while the command ran, or a callback
                raised it.
            TaskDefinitionError: The evaluated arguments cannot start a command.
        """
        params = self.params.eval(data, store)
        command = params.command
        if not isinstance(command, str):
            raise TaskDefinitionError(
                f"task '{self.name}': command must be a str, got {type(command).__name__}"
                f" ({command!r})"
            )
        stdin = _stdin_bytes(self.name, params.stdin)

        with contextlib.ExitStack() as files:
            stdout_file = (
                files.enter_context(tempfile.TemporaryFile()) if params.capture_stdout else None
            )
            stderr_file = (
                files.enter_context(tempfile.TemporaryFile()) if params.capture_stderr else None
            )
            process = self._start(
                command,
                params,
                stdin is not None,
                stdout_file is not None or self._callback_stdout is not None,
                stderr_file is not None or self._callback_stderr is not None,
            )
            run = _CommandRun(process, (data, store, signal, context), self.terminate_timeout)
            run.watch(_watchdog(process.pid))
            try:
                if self._callback_process is not None:
                    self._callback_process(process.pid, data, store, signal, context)
                run.start_io(
                    stdin,
                    (self._callback_stdout, stdout_file),
                    (self._callback_stderr, stderr_file),
                )
                if run.wait(signal, params.refresh_time):
                    raise StopTask(
                        f"task '{self.name}' was stopped while its command ran; "
                        "the command was terminated",
                        skip_successors=True,
                    )
            finally:
                run.close()

            if self._callback_end is None:
                return None
            for captured in (stdout_file, stderr_file):
                if captured is not None:
                    captured.seek(0)
            result = self._callback_end(
                process.returncode, stdout_file, stderr_file, data, store, signal, context
            )
        return result if isinstance(result, Action) else None

    def _start(
        self,
        command: str,
        params: TaskParameters,
        pipe_stdin: bool,
        pipe_stdout: bool,
        pipe_stderr: bool,
    ) -> subprocess.Popen[bytes]:
        """Start ``bash -c command`` as the leader of a new session and process group."""
        bash = shutil.which("bash")
        if bash is None:
            raise LightflowError(
                f"task '{self.name}': bash is not installed on this worker "
                "(it is not on the worker's PATH)"
            )
        identity = {key: params[key] for key in ("user", "group") if params[key] is not None}
        try:
            return subprocess.Popen(
                [bash, "-c", command],
                cwd=params.cwd,
                env=params.env,
                stdin=subprocess.PIPE if pipe_stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe_stdout else None,
                stderr=subprocess.PIPE if pipe_stderr else None,
                start_new_session=True,
                **identity,
            )
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise TaskDefinitionError(
                f"task '{self.name}' could not start its command: {exc}"
            ) from exc


class _Watchdog:
    """The watchdog of one command: its process and the pipe only this process holds."""

    def __init__(self, process: subprocess.Popen[bytes], pipe: int) -> None:
        self.process = process
        self.pipe = pipe

    def dismiss(self) -> None:
        """The command's group is over: tell the watchdog so it exits, and reap it."""
        with contextlib.suppress(OSError):  # it died: nothing is left to dismiss
            os.write(self.pipe, b"done\n")
        with contextlib.suppress(OSError):
            os.close(self.pipe)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=_READER_JOIN_TIMEOUT)


def _watchdog(pgid: int) -> _Watchdog | None:
    """Start the watchdog of the process group ``pgid`` (see the module docstring).

    ``None`` where bash cannot be started again (the command has started, so that is
    a passing shortage of processes): the task runs unguarded rather than fails.
    """
    bash = shutil.which("bash") or "bash"
    read_end, write_end = os.pipe()  # not inherited by other children: O_CLOEXEC
    try:
        process = subprocess.Popen(
            [bash, "-c", _WATCHDOG, "lightflow-watchdog", str(pgid)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives a kill of the worker's process group
        )
    except OSError:
        os.close(write_end)
        return None
    finally:
        os.close(read_end)
    return _Watchdog(process, write_end)


class _CommandRun:
    """The run state of one command: its process, reader threads and first error.

    Kept apart from :class:`BashTask` because a task object is a template shared by
    runs (and pickled to workers); nothing run-specific may live on it.

    Args:
        process: The started bash process, leader of its own process group.
        callback_args: ``(data, store, signal, context)``, appended to each line.
        terminate_timeout: Seconds between SIGTERM and SIGKILL.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        callback_args: tuple[Any, ...],
        terminate_timeout: float,
    ) -> None:
        self.process = process
        self._callback_args = callback_args
        self._terminate_timeout = terminate_timeout
        self._threads: list[threading.Thread] = []
        self._readers: list[threading.Thread] = []
        # Serialises the line callbacks and guards _error and _closed.
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        # Set when the task ends: no line callback may run after that.
        self._closed = False
        # Set by a reader that finished or whose callback raised, to end wait() early.
        self._wake = threading.Event()
        self._group_terminated = False
        # The command runs in a session of its own, which would outlive a process that
        # gives this task up: killing its group (the group id is bash's pid) is how to
        # let go of it then.
        self._held = hold(lambda: _kill_group(process.pid))
        self._watchdog: _Watchdog | None = None

    def watch(self, watchdog: _Watchdog | None) -> None:
        """Keep ``watchdog`` until the group is over (:meth:`close` dismisses it)."""
        self._watchdog = watchdog

    def start_io(
        self,
        stdin: bytes | None,
        stdout: tuple[Callable[..., Any] | None, IO[bytes] | None],
        stderr: tuple[Callable[..., Any] | None, IO[bytes] | None],
    ) -> None:
        """Start the threads that feed stdin and read stdout and stderr.

        Args:
            stdin: What to write to the command's stdin (``None``: not piped).
            stdout: The line callback and the capture file of stdout (either may be None).
            stderr: The same for stderr.
        """
        for pipe, (callback, capture) in (
            (self.process.stdout, stdout),
            (self.process.stderr, stderr),
        ):
            if pipe is not None:
                reader = threading.Thread(
                    target=self._read,
                    args=(pipe, callback, capture),
                    name=f"bash-task-reader-{self.process.pid}",
                    daemon=True,
                )
                self._readers.append(reader)
        if stdin is not None and self.process.stdin is not None:
            self._threads.append(
                threading.Thread(
                    target=_feed,
                    args=(self.process.stdin, stdin),
                    name=f"bash-task-stdin-{self.process.pid}",
                    daemon=True,
                )
            )
        self._threads.extend(self._readers)
        for thread in self._threads:
            thread.start()

    def wait(self, signal: Any, refresh_time: float) -> bool:
        """Wait until the command ended and its output was read, or it must stop.

        Returns:
            ``True`` if the stop signal was set (the caller raises ``StopTask``),
            ``False`` if the command ended on its own.

        Raises:
            BaseException: Whatever a line callback raised, as soon as it raised.
        """
        next_signal_check = time.monotonic()
        while True:
            self._raise_callback_error()
            if self.process.poll() is not None:
                # bash has exited: end whatever it left running in its group, which also
                # closes the pipes those processes held, so the readers see EOF.
                self._terminate_group()
                if not any(reader.is_alive() for reader in self._readers):
                    self._raise_callback_error()
                    return False
            now = time.monotonic()
            if now >= next_signal_check:
                if signal.is_stopped:
                    return True
                next_signal_check = now + SIGNAL_POLL_INTERVAL
            # A floor keeps refresh_time=0 from turning this into a busy loop.
            self._wake.wait(max(min(refresh_time, SIGNAL_POLL_INTERVAL), 0.01))
            self._wake.clear()

    def close(self) -> None:
        """Terminate the group if it still runs, then let the I/O threads finish.

        Called in a ``finally`` block, so a stopped, failed or interrupted task never
        leaves a process behind. Line callbacks stop at once: output still buffered in
        the pipes of a stopped or failed command is read but not handed to them.
        """
        with self._lock:
            self._closed = True
        self._terminate_group()
        if self._watchdog is not None:
            self._watchdog.dismiss()
        let_go(self._held)
        deadline = time.monotonic() + _READER_JOIN_TIMEOUT
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        if not any(thread.is_alive() for thread in self._threads):
            for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):  # unflushed stdin, broken pipe
                        pipe.close()

    def _read(
        self, pipe: IO[bytes], callback: Callable[..., Any] | None, capture: IO[bytes] | None
    ) -> None:
        """Read one stream line by line to its end, for its callback and capture file.

        The stream is read to the end even after a callback failed, so the command is
        never blocked on a full pipe before it is terminated.
        """
        try:
            for raw in iter(pipe.readline, b""):
                if capture is not None:
                    capture.write(raw)
                if callback is not None:
                    self._call(callback, raw.decode("utf-8", errors="replace"))
        except BaseException as exc:  # e.g. a full disk under the capture file
            self._fail(exc)
        finally:
            self._wake.set()

    def _call(self, callback: Callable[..., Any], line: str) -> None:
        """Call a line callback unless one failed or the task ended; record its error."""
        with self._lock:
            if self._error is not None or self._closed:
                return
            try:
                callback(line, *self._callback_args)
            except BaseException as exc:  # re-raised by wait() in the task's thread
                self._error = exc
                self._wake.set()

    def _fail(self, exc: BaseException) -> None:
        """Record ``exc`` (unless an earlier error is recorded) for wait() to re-raise."""
        with self._lock:
            if self._error is None:
                self._error = exc
        self._wake.set()

    def _raise_callback_error(self) -> None:
        with self._lock:
            error = self._error
        if error is not None:
            raise error

    def _terminate_group(self) -> None:
        """SIGTERM the process group; SIGKILL it if it is still alive after the grace.

        The group id is bash's pid (``start_new_session``). Idempotent.
        """
        if self._group_terminated:
            return
        self._group_terminated = True
        pgid = self.process.pid
        if _signal_group(pgid, signals.SIGTERM):
            deadline = time.monotonic() + self._terminate_timeout
            while _group_alive(pgid):
                if time.monotonic() >= deadline:
                    _signal_group(pgid, signals.SIGKILL)
                    break
                time.sleep(_GROUP_POLL_INTERVAL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=self._terminate_timeout)


def _stdin_bytes(task_name: str, stdin: Any) -> bytes | None:
    """Return the evaluated ``stdin`` argument as bytes (``None``: no input)."""
    if stdin is None or isinstance(stdin, bytes):
        return stdin
    if isinstance(stdin, str):
        return stdin.encode("utf-8")
    raise TaskDefinitionError(
        f"task '{task_name}': stdin must be a str or bytes, got {type(stdin).__name__}"
    )


def _feed(pipe: IO[bytes], payload: bytes) -> None:
    """Write the stdin payload and close the pipe so the command sees end-of-input.

    A command that exits (or is terminated) without reading all of it closes the pipe
    first; that is its choice, not an error of the task.
    """
    with contextlib.suppress(OSError):  # BrokenPipeError, mostly
        try:
            pipe.write(payload)
        finally:
            pipe.close()


def _signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to the process group; ``False`` if the group no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _kill_group(pgid: int) -> None:
    _signal_group(pgid, signals.SIGKILL)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies do not count).

    ``killpg(pgid, 0)`` alone also succeeds for zombies, and where PID 1 does not reap
    orphans (many containers), the group's killed grandchildren stay zombies forever.
    On Linux the group's members are therefore looked up in ``/proc``.
    """
    if not _signal_group(pgid, 0):
        return False
    if not os.path.isdir("/proc/self"):
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False
