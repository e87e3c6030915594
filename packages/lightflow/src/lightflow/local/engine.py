"""The embedded engine: runs a whole workflow in this process.

``lightflow run`` uses it, so a new user runs workflows with no Redis and no MongoDB.
It drives the same :class:`~lightflow.engine.DagRun` state machine as the distributed
engine. One *scheduler* thread (the caller of :meth:`LocalRun.run`) owns all DAG-run
state and reacts to events from a queue: a task finished, a DAG was started or stopped
by a signal. Tasks run on a :class:`~lightflow.local.pool.TaskPool`; a finished task
posts its outcome and the scheduler wakes at once (no polling). The only other writer
of machine state is a pool thread marking its task as started, under the same lock,
so a task cancelled by a halt is dropped instead of run.

Data passes between tasks in memory, but what would travel pickled on a cluster (a
task's output for its successors, the data given to ``start_dag``) is checked to
pickle as it would there (:mod:`lightflow.portable`, without copying a large array):
a lock or a generator fails the task here as it would on a worker.

:meth:`LocalRun.interrupt` stops a run as ``workflow stop`` would: running tasks see
``signal.is_stopped`` (a BashTask kills its command's process group) and the run ends
stopped once they have ended. Tasks still running after :data:`INTERRUPT_GRACE`
seconds, or when a second interrupt comes, are given up: the run ends without them.
Under :func:`stop_on_signals` (``lightflow run``) SIGINT and SIGTERM interrupt the
runs, and since the process ends after its run, giving up also releases what the
given-up tasks hold outside the process (:mod:`lightflow.tasks.release`: a BashTask's
command group, a trigger's watch), so no command outlives the process.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..engine.dag_run import DagRun, DagSpec, Outcome, TaskState
from ..exceptions import SignalError
from ..execution import TaskOutcome, compose_input, execute_task, initial_data
from ..models.context import TaskContext
from ..models.dag import Dag
from ..models.task_data import MultiTaskData
from ..portable import refusal, unportable
from ..records import EventListener, RunRecorder
from ..signal import (
    TaskSignal,
    dag_to_start,
    dags_to_join,
    stop_dag_reason,
    stop_workflow_reason,
)
from ..store.base import DataStore
from ..workflows import Workflow
from .output import whole_lines
from .pool import TaskPool

#: Seconds an interrupted run gives its running tasks to end once they were told to
#: stop; a BashTask needs up to its ``terminate_timeout`` (2 s by default).
INTERRUPT_GRACE = 5.0
#: The longest the scheduler sleeps at a time. Python runs a signal's handler in the
#: main thread, when it next runs Python code; the kernel may deliver the signal to
#: any thread of the process (a task's, a pool's), and then nothing wakes the main
#: thread from a wait without a timeout: a Ctrl-C would go unheard until the next
#: task event, which a long task may never send.
SIGNAL_LOOK_INTERVAL = 0.2

#: Why ``lightflow run`` refuses data it could pass on in memory.
_CHECKED = "lightflow run checks this so the workflow also runs on a cluster"

#: The runs whose scheduler is running in this process, for :func:`stop_on_signals`.
_running: set[LocalRun] = set()

#: Set by :func:`stop_on_signals`: the process ends after its runs, so a run that gives
#: up its tasks releases what they hold (:func:`lightflow.tasks.release.release_all`).
_process_ends_after_run = False


def default_workers() -> int:
    """Default number of concurrently running tasks: enough for I/O-bound lanes."""
    return min(32, (os.cpu_count() or 1) + 4)


@dataclass
class DagInstance:
    """One run of a DAG inside the workflow run (``name`` or ``name:2`` ...)."""

    name: str
    dag: Dag
    run: DagRun
    data: Any = None
    outputs: dict[str, MultiTaskData] = field(default_factory=dict)
    unconsumed: dict[str, int] = field(default_factory=dict)
    recorded_finished: bool = False


@dataclass
class TaskRecord:
    """How one task of a finished run ended."""

    dag: str
    task: str
    state: str
    duration: float | None = None
    message: str | None = None


@dataclass
class RunResult:
    """The outcome of a workflow run on the embedded engine."""

    workflow_id: str
    workflow: str
    outcome: str
    duration: float
    error: str | None = None
    failed_task: str | None = None
    failed_dag: str | None = None
    traceback: str | None = None
    tasks: list[TaskRecord] = field(default_factory=list)
    #: The signal (number) that interrupted the run, if one did.
    interrupted_by: int | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the run succeeded."""
        return self.outcome == Outcome.SUCCEEDED.value


class LocalRun:
    """One workflow run on the embedded engine.

    Args:
        workflow: The loaded workflow.
        arguments: Consolidated parameter values (written to the store's DATA section).
        store: The data store holding the run's document.
        workers: How many tasks may run at once.
        listener: Receives every :class:`~lightflow.events.RunEvent`.
        keep_data: Keep the run's store document after the run.
        run_id: The run's id (default: a new one); a trigger passes the id it recorded.
    """

    def __init__(
        self,
        workflow: Workflow,
        arguments: dict[str, Any],
        *,
        store: DataStore,
        workers: int | None = None,
        listener: EventListener | None = None,
        keep_data: bool = True,
        run_id: str | None = None,
    ) -> None:
        self.workflow = workflow
        self.arguments = arguments
        self.workflow_id = run_id or uuid.uuid4().hex
        self._store = store
        self._keep_data = keep_data
        self._document = store.get(store.add(workflow_id=self.workflow_id))
        self._recorder = RunRecorder(self._document, workflow.name, self.workflow_id, listener)
        self._pool = TaskPool(workers or default_workers())
        self._events: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.RLock()
        self._dags_done = threading.Condition(self._lock)
        self._instances: dict[str, DagInstance] = {}
        self._stop_requested: set[str] = set()
        self._halt: Outcome | None = None
        self._failure: tuple[str, str, TaskOutcome] | None = None
        self._messages: dict[tuple[str, str], str] = {}
        self._stop_reason: str | None = None
        # Why each DAG instance was asked to stop by signal.stop_dag().
        self._dag_stop_reasons: dict[str, str] = {}
        self._interrupted_by: int | None = None
        self._give_up_at: float | None = None  # when an interrupted run stops waiting
        self._given_up = False
        self._hostname = socket.gethostname()

    # -- the scheduler loop -------------------------------------------------------------
    def run(self) -> RunResult:
        """Run every autostart DAG (and the DAGs they start) to the end."""
        _running.add(self)
        try:
            for key, value in self.arguments.items():
                self._document.set(key, value)
            self._recorder.workflow_started(self.arguments)
            with self._lock:
                for dag in self.workflow.autostart_dags:
                    self._start_instance(self._new_instance(dag, None))
            with whole_lines():
                while not self._given_up and not self._all_done():
                    try:
                        handler, args = self._events.get(timeout=self._wait_limit())
                    except queue.Empty:
                        if not self._time_to_give_up():
                            continue  # a look for signals (see SIGNAL_LOOK_INTERVAL)
                        handler, args = self._give_up, ()  # tasks did not end in time
                    with self._lock:
                        handler(*args)
        finally:
            _running.discard(self)
            self._pool.close()
        outcome = self._outcome()
        error = self._failure[2].message if self._failure else self._reason()
        duration = self._recorder.workflow_finished(outcome.value, error)
        result = self._result(outcome, duration)
        if not self._keep_data:
            self._store.remove(self.workflow_id)
        return result

    def _all_done(self) -> bool:
        with self._lock:
            return all(instance.run.done for instance in self._instances.values())

    def _post(self, handler: Callable[..., None], *args: Any) -> None:
        self._events.put((handler, args))

    def _wait_limit(self) -> float:
        """How long the scheduler may wait for the next event (see SIGNAL_LOOK_INTERVAL)."""
        if self._give_up_at is None:
            return SIGNAL_LOOK_INTERVAL
        return min(max(self._give_up_at - time.monotonic(), 0.0), SIGNAL_LOOK_INTERVAL)

    def _time_to_give_up(self) -> bool:
        """Whether an interrupted run's tasks had their :data:`INTERRUPT_GRACE`."""
        return self._give_up_at is not None and time.monotonic() >= self._give_up_at

    def interrupt(self, signum: int) -> None:
        """Stop the run because this process got signal ``signum``.

        The first call stops the run as ``workflow stop`` would and gives running tasks
        :data:`INTERRUPT_GRACE` seconds to end; a second one gives them up at once.
        Safe to call from a signal handler and from any thread: it only queues an event
        for the scheduler.
        """
        self._post(self._on_interrupt, signum)

    # -- DAG instances ------------------------------------------------------------------
    def _new_instance(self, dag: Dag, data: Any) -> DagInstance:
        name = dag.name
        copy = 1
        while name in self._instances:
            copy += 1
            name = f"{dag.name}:{copy}"
        run = DagRun(DagSpec.from_dag(dag, name))
        instance = DagInstance(
            name,
            dag,
            run,
            # Taken now, as the cluster does: the caller may change `data` right after.
            data=None if data is None else initial_data(data),
            unconsumed={task: len(successors) for task, successors in run.spec.successors.items()},
        )
        self._instances[name] = instance
        return instance

    def _start_instance(self, instance: DagInstance) -> None:
        if instance.run.started:  # stopped before it could start
            self._dag_finished(instance)
            return
        self._recorder.dag_started(instance.name)
        if self._halt is not None or instance.name in self._stop_requested:
            self._apply(instance, instance.run.stop(self._halt or Outcome.STOPPED))
            return
        self._apply(instance, instance.run.start())

    def _apply(self, instance: DagInstance, step: Any) -> None:
        """Carry out a state-machine step: record skips, dispatch ready tasks."""
        for task in step.skipped:
            self._set_output(instance, task, self._input_for(instance, task))
            self._recorder.task_not_run(instance.name, task, TaskState.SKIPPED.value)
        for task in step.cancelled:
            self._recorder.task_not_run(instance.name, task, TaskState.CANCELLED.value)
        for task in step.ready:
            self._dispatch(instance, task)
        if step.done:
            self._dag_finished(instance)

    def _dag_finished(self, instance: DagInstance) -> None:
        if instance.recorded_finished:
            return
        instance.recorded_finished = True
        self._recorder.dag_finished(instance.name, (instance.run.outcome or Outcome.STOPPED).value)
        instance.outputs.clear()
        self._dags_done.notify_all()

    def _input_for(self, instance: DagInstance, task: str) -> MultiTaskData:
        predecessors = instance.run.inputs_of(task)
        if not predecessors:
            return initial_data(instance.data)
        handed_over = set()
        for name, _slot in predecessors:
            instance.unconsumed[name] -= 1
            if instance.unconsumed[name] == 0:
                handed_over.add(name)
        data = compose_input(predecessors, instance.outputs, handed_over)
        for name in handed_over:
            del instance.outputs[name]
        return data

    def _set_output(self, instance: DagInstance, task: str, data: MultiTaskData) -> None:
        if instance.unconsumed[task]:
            data.flatten(in_place=True)
            instance.outputs[task] = data

    # -- tasks --------------------------------------------------------------------------
    def _dispatch(self, instance: DagInstance, task_name: str) -> None:
        try:
            data = self._input_for(instance, task_name)
        except Exception as error:  # a predecessor's output cannot be copied for this lane
            if instance.run.task_started(task_name):
                message = (
                    f"the input of task '{task_name}' cannot be copied from its "
                    f"predecessors' output: {type(error).__name__}: {error}; put "
                    "only copyable (picklable) values in data"
                )
                self._task_done(
                    instance,
                    task_name,
                    TaskOutcome(TaskState.FAILED, MultiTaskData(), message=message),
                    worker=self._hostname,
                )
            return
        self._pool.submit(lambda: self._run_task(instance, task_name, data))

    def _run_task(self, instance: DagInstance, task_name: str, data: MultiTaskData) -> None:
        """Runs on a pool thread."""
        with self._lock:
            if not instance.run.task_started(task_name):
                return
        worker = f"{self._hostname}/{threading.current_thread().name}"
        self._recorder.task_started(instance.name, task_name, worker)
        context = TaskContext(
            task_name=task_name,
            dag_name=instance.name,
            workflow_name=self.workflow.name,
            workflow_id=self.workflow_id,
            worker_hostname=self._hostname,
        )
        try:
            outcome = execute_task(
                instance.dag.task(task_name),
                data,
                self._document,
                TaskSignal(_LocalChannel(self, instance.name), instance.name),
                context,
            )
        except BaseException as error:
            outcome = TaskOutcome(
                TaskState.FAILED, data, message=f"{type(error).__name__}: {error}"
            )
        self._post(
            self._task_done,
            instance,
            task_name,
            self._portable(instance, task_name, outcome),
            worker,
        )

    def _portable(self, instance: DagInstance, task: str, outcome: TaskOutcome) -> TaskOutcome:
        """``outcome``, or a failure if its data could not go to a successor's worker.

        On a cluster the output goes to the successors pickled, and data a pickle
        refuses (a lock, a generator) fails the task there; so it fails here too,
        checked on the task's own thread (:mod:`lightflow.portable`).
        """
        if outcome.state not in (TaskState.SUCCEEDED, TaskState.STOPPED):
            return outcome
        if not instance.run.spec.successors[task]:
            return outcome  # nothing crosses: the cluster does not pickle it either
        culprit = unportable(outcome.data)
        if culprit is None:
            return outcome
        message = refusal("the data it returned", culprit)
        return TaskOutcome(TaskState.FAILED, outcome.data, message=f"{message}; {_CHECKED}")

    def _task_done(
        self, instance: DagInstance, task: str, outcome: TaskOutcome, worker: str
    ) -> None:
        run = instance.run
        if outcome.state is TaskState.SUCCEEDED:
            step = run.task_succeeded(task, outcome.limit)
            if run.states[task] is TaskState.FAILED:  # the machine rejected the limit
                outcome = TaskOutcome(TaskState.FAILED, outcome.data, message=run.errors[task])
        elif outcome.state is TaskState.STOPPED:
            step = run.task_stopped(task, outcome.skip_successors)
        elif outcome.state is TaskState.ABORTED:
            step = run.task_aborted(task, outcome.message)
        else:
            step = run.task_failed(task, outcome.message)
        if outcome.state in (TaskState.SUCCEEDED, TaskState.STOPPED):
            self._set_output(instance, task, outcome.data)
        else:
            if self._failure is None:
                self._failure = (instance.name, task, outcome)
            self._halt_all(
                Outcome.ABORTED if outcome.state is TaskState.ABORTED else Outcome.STOPPED
            )
        if outcome.message:
            self._messages[(instance.name, task)] = outcome.message
        self._recorder.task_finished(
            instance.name,
            task,
            outcome.state.value,
            worker=worker,
            message=outcome.message or None,
            traceback=outcome.traceback,
        )
        self._apply(instance, step)

    # -- stopping -----------------------------------------------------------------------
    def _halt_all(self, outcome: Outcome) -> None:
        if self._halt is None:
            self._halt = outcome
        for instance in self._instances.values():
            if not instance.run.done:
                self._apply(instance, instance.run.stop(outcome))

    def _on_interrupt(self, signum: int) -> None:
        if self._interrupted_by is not None:
            self._give_up()
            return
        self._interrupted_by = signum
        self._stop_reason = self._stop_reason or f"interrupted by {signal.Signals(signum).name}"
        self._give_up_at = time.monotonic() + INTERRUPT_GRACE
        self._halt_all(Outcome.STOPPED)

    def _give_up(self) -> None:
        """End an interrupted run without waiting for its running tasks any longer.

        The tasks are recorded as stopped; their threads are left to end on their own
        (a BashTask still terminates its command) or with the process, which first
        releases what they hold under :func:`stop_on_signals`.
        """
        self._given_up = True
        if _process_ends_after_run:
            from ..tasks.release import release_all

            release_all()
        message = "still running when the run was interrupted; given up"
        for instance in list(self._instances.values()):
            for task, state in list(instance.run.states.items()):
                if state is TaskState.RUNNING:
                    step = instance.run.task_stopped(task)
                    self._messages[(instance.name, task)] = message
                    self._recorder.task_finished(
                        instance.name, task, TaskState.STOPPED.value, message=message
                    )
                    self._apply(instance, step)

    def _reason(self) -> str | None:
        """Why the run stopped: the workflow's stop, else a stopped DAG's stop_dag()."""
        if self._stop_reason is not None:
            return self._stop_reason
        for name, reason in self._dag_stop_reasons.items():
            if self._instances[name].run.outcome is Outcome.STOPPED:
                return reason
        return None

    def _stop_dag(self, name: str) -> None:
        instance = self._instances[name]
        if not instance.run.done:
            self._apply(instance, instance.run.stop(Outcome.STOPPED))

    def _outcome(self) -> Outcome:
        return Outcome.worst(
            instance.run.outcome or Outcome.STOPPED for instance in self._instances.values()
        )

    def _result(self, outcome: Outcome, duration: float) -> RunResult:
        result = RunResult(
            self.workflow_id,
            self.workflow.name,
            outcome.value,
            duration,
            error=self._reason(),
            interrupted_by=self._interrupted_by,
        )
        if self._failure is not None:
            dag, task, failed = self._failure
            result.failed_dag, result.failed_task = dag, task
            result.error, result.traceback = failed.message, failed.traceback
        for instance in self._instances.values():
            for task, state in instance.run.states.items():
                result.tasks.append(
                    TaskRecord(
                        instance.name,
                        task,
                        state.value,
                        self._recorder.durations.get((instance.name, task)),
                        self._messages.get((instance.name, task)),
                    )
                )
        return result


class _LocalChannel:
    """In-process signals: requests from task threads to the scheduler.

    Args:
        run: The run the tasks belong to.
        dag_name: The DAG instance of the tasks using the channel.
    """

    def __init__(self, run: LocalRun, dag_name: str) -> None:
        self._run = run
        self._dag_name = dag_name

    def start_dag(self, dag: Dag | str, data: Any, requested_by: str) -> str:
        run = self._run
        dag = dag_to_start(dag, run.workflow)
        culprit = None if data is None else unportable(data)
        if culprit is not None:
            message = refusal(f"the data given to start_dag('{dag.name}')", culprit)
            raise SignalError(f"{message}; {_CHECKED}")
        with run._lock:
            instance = run._new_instance(dag, data)
        run._post(run._start_instance, instance)
        return instance.name

    def join_dags(self, names: list[str] | None, requested_by: str) -> bool:
        run = self._run
        with run._lock:
            names = dags_to_join(names, requested_by, run._instances)
            instances = [run._instances[name] for name in names]
            with run._pool.blocking():
                run._dags_done.wait_for(lambda: all(i.run.done for i in instances))
            return all(i.run.outcome is Outcome.SUCCEEDED for i in instances)

    def stop_dag(self, name: str) -> bool:
        run = self._run
        with run._lock:
            if name not in run._instances:
                return False
            run._stop_requested.add(name)
            run._dag_stop_reasons.setdefault(name, stop_dag_reason(name, self._dag_name))
        run._post(run._stop_dag, name)
        return True

    def stop_workflow(self, requested_by: str) -> None:
        run = self._run
        with run._lock:
            run._stop_requested.update(run._instances)
            run._stop_reason = run._stop_reason or stop_workflow_reason(requested_by)
        run._post(run._halt_all, Outcome.STOPPED)

    def is_stopped(self, dag_name: str) -> bool:
        run = self._run
        instance = run._instances.get(dag_name)
        return (
            run._halt is not None
            or dag_name in run._stop_requested
            or (instance is not None and instance.run.halt is not None)
        )


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While active, SIGINT and SIGTERM interrupt the runs of this process.

    Each running :class:`LocalRun` is stopped (:meth:`LocalRun.interrupt`) instead of
    the process ending at once with its commands left behind; a second signal gives
    up the tasks still running. Outside a run (the workflow still loading) a signal
    does what it did before. For a process that ends after its run (``lightflow
    run``): a run that gives up its tasks releases what they hold (their commands,
    watches). Only the main thread can handle signals: anywhere else this does
    nothing.
    """
    global _process_ends_after_run
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {
        signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)
    }

    def handle(signum: int, frame: Any) -> None:
        runs = list(_running)
        for run in runs:
            run.interrupt(signum)
        if runs:
            return
        before = previous[signum]
        if callable(before):
            before(signum, frame)
        elif before != signal.SIG_IGN:  # the default action: end the process
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    for signum in previous:
        signal.signal(signum, handle)
    _process_ends_after_run = True
    try:
        yield
    finally:
        _process_ends_after_run = False
        for signum, before in previous.items():
            signal.signal(signum, before)
