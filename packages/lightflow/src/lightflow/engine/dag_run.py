"""The DAG-run state machine: which tasks run, which are skipped, when a DAG is done.

This module is pure: no threads, sockets, clocks or sleeps. Both engines (the embedded
one in :mod:`lightflow.local` and the distributed one on Celery) feed it events and
carry out what it answers, so the scheduling rules exist exactly once.

State
-----
``DagSpec`` is the frozen shape of a DAG: task names in definition order, each task's
predecessors (with the slot label of the edge) and successors, and the two task flags
that matter for scheduling (``force_run``, ``propagate_skip``).

``DagRun`` is the state of one run of a DAG:

* ``states[task]``: a :class:`TaskState`. ``PENDING`` until every predecessor has
  finished; then ``QUEUED`` (handed to the driver) or ``SKIPPED``; ``RUNNING`` once
  the driver starts it; finally ``SUCCEEDED``, ``STOPPED``, ``FAILED``, ``ABORTED``, or
  ``CANCELLED`` when the DAG halted before the task could run.
* ``verdicts[task][pred]``: what each finished predecessor said about the task:
  ``run``, ``excluded`` (the predecessor's ``Action(limit=...)`` left it out, or the
  predecessor raised ``StopTask(skip_successors=True)``) or ``skip`` (the predecessor
  was skipped and propagates skips).
* ``halt``: ``None`` while the DAG runs normally, else why it stopped queueing
  (``failed``, ``stopped``, ``aborted``).
* ``errors[task]``: the one-line error of a failed task.

Rules
-----
A task is decided when all its predecessors have finished (succeeded, stopped or
skipped). It runs if it has ``force_run``; otherwise it is skipped if any predecessor
excluded it, or if every predecessor was skipped with ``propagate_skip``; otherwise it
runs. (So a join after a branch that limited itself to one lane still runs.) A skipped
task with ``propagate_skip=False`` tells its successors to run.

Once halted, nothing new is queued: pending and queued tasks are cancelled (a driver
still holding a queued task learns it from ``task_started`` returning ``False``) and
running tasks finish. The DAG is done when every task is in a terminal state. Its
outcome is ``succeeded`` unless it halted.

Example: ``a -> [b, c] -> d`` where ``a`` returns ``Action(data, limit=['b'])``::

    run = DagRun(spec)
    run.start()                         # Step(ready=['a'])
    run.task_started('a')
    run.task_succeeded('a', limit=['b'])  # Step(ready=['b'], skipped=['c'])
    run.task_started('b')
    run.task_succeeded('b', None)       # Step(ready=['d'])
    run.task_started('d')
    run.task_succeeded('d', None)       # Step(done=True); run.outcome == 'succeeded'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..models.dag import Dag


class TaskState(str, Enum):
    """Where a task is in one DAG run."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    STOPPED = "stopped"
    SKIPPED = "skipped"
    FAILED = "failed"
    ABORTED = "aborted"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the task is over and its successors may be decided."""
        return self in (TaskState.SUCCEEDED, TaskState.STOPPED, TaskState.SKIPPED)

    @property
    def terminal(self) -> bool:
        """Whether the task will not change state any more."""
        return self not in (TaskState.PENDING, TaskState.QUEUED, TaskState.RUNNING)


_STATE_BY_VALUE = {state.value: state for state in TaskState}
_OPEN_STATES = frozenset(state for state in TaskState if not state.terminal)


class Outcome(str, Enum):
    """How a DAG run (or a workflow run) ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    ABORTED = "aborted"

    @classmethod
    def worst(cls, outcomes: Iterable[Outcome | str]) -> Outcome:
        """A workflow's outcome from its DAGs': aborted > failed > stopped > succeeded."""
        return max((cls(o) for o in outcomes), key=_SEVERITY.index, default=cls.SUCCEEDED)


_SEVERITY = [Outcome.SUCCEEDED, Outcome.STOPPED, Outcome.FAILED, Outcome.ABORTED]

RUN, EXCLUDED, SKIP = "run", "excluded", "skip"


@dataclass(frozen=True)
class DagSpec:
    """The scheduling-relevant shape of a DAG, independent of task objects."""

    name: str
    order: tuple[str, ...]
    predecessors: dict[str, tuple[tuple[str, str | None], ...]]
    successors: dict[str, tuple[str, ...]]
    force_run: frozenset[str] = frozenset()
    no_propagate_skip: frozenset[str] = frozenset()

    @classmethod
    def from_dag(cls, dag: Dag, name: str | None = None) -> DagSpec:
        """Build the spec of a :class:`~lightflow.models.Dag` (optionally renamed)."""
        tasks = dag.tasks
        return cls(
            name=name or dag.name,
            order=tuple(tasks),
            predecessors={t: tuple(dag.predecessors(t)) for t in tasks},
            successors={t: tuple(dag.successors(t)) for t in tasks},
            force_run=frozenset(t for t, task in tasks.items() if task.force_run),
            no_propagate_skip=frozenset(t for t, task in tasks.items() if not task.propagate_skip),
        )


@dataclass
class Step:
    """What an event changed: tasks the driver must now run, tasks skipped, done."""

    ready: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    done: bool = False


class DagRun:
    """The state of one DAG run; see the module docstring for the rules."""

    def __init__(self, spec: DagSpec) -> None:
        self.spec = spec
        self.states: dict[str, TaskState] = {t: TaskState.PENDING for t in spec.order}
        self.verdicts: dict[str, dict[str, str]] = {t: {} for t in spec.order}
        self.errors: dict[str, str] = {}
        self.halt: Outcome | None = None
        self.started = False
        self._open = len(spec.order)  # tasks not yet in a terminal state

    # -- queries ------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Whether the DAG run is over."""
        return self.started and self._open == 0

    @property
    def outcome(self) -> Outcome | None:
        """How the run ended, or ``None`` while it is not done."""
        if not self.done:
            return None
        return self.halt or Outcome.SUCCEEDED

    def inputs_of(self, task: str) -> tuple[tuple[str, str | None], ...]:
        """The predecessors whose output forms the task's input, with slot labels."""
        return self.spec.predecessors[task]

    # -- events -------------------------------------------------------------------------
    def start(self) -> Step:
        """Start the run: every task without predecessors becomes ready."""
        if self.started:
            raise RuntimeError(f"DAG run '{self.spec.name}' was already started")
        self.started = True
        step = Step()
        for task in self.spec.order:
            if not self.spec.predecessors[task]:
                self._decide(task, step)
        return self._finish(step)

    def task_started(self, task: str) -> bool:
        """A driver is about to run a queued task; ``False`` means: do not run it.

        A halt cancels queued tasks, so a driver that still holds one drops it here.
        """
        state = self.states[task]
        if state is TaskState.CANCELLED:
            return False
        if state is not TaskState.QUEUED:
            raise RuntimeError(f"task '{task}' cannot start from state {state.value}")
        self._set(task, TaskState.RUNNING)
        return True

    def task_succeeded(self, task: str, limit: list[str] | None = None) -> Step:
        """A task returned; ``limit`` names the successors allowed to run."""
        self._expect_running(task)
        successors = self.spec.successors[task]
        allowed = None if limit is None else set(limit)
        if allowed is not None:
            known = set(successors)  # a set: a long limit stays linear in the fan-out
            unknown = [name for name in limit or [] if name not in known]
            if unknown:
                names = ", ".join(successors) or "none"
                return self.task_failed(
                    task,
                    f"Action(limit=...) names '{unknown[0]}', which is not a "
                    f"successor of '{task}' (successors: {names})",
                )
        self._set(task, TaskState.SUCCEEDED)
        step = Step()
        for successor in successors:
            verdict = RUN if allowed is None or successor in allowed else EXCLUDED
            self._tell(task, successor, verdict, step)
        return self._finish(step)

    def task_stopped(self, task: str, skip_successors: bool = True) -> Step:
        """A task raised ``StopTask``."""
        self._expect_running(task)
        self._set(task, TaskState.STOPPED)
        step = Step()
        for successor in self.spec.successors[task]:
            self._tell(task, successor, EXCLUDED if skip_successors else RUN, step)
        return self._finish(step)

    def task_failed(self, task: str, error: str) -> Step:
        """A task raised an error: the DAG fails and queues nothing more."""
        self._expect_running(task)
        self._set(task, TaskState.FAILED)
        self.errors[task] = error
        return self._halt(Outcome.FAILED)

    def task_aborted(self, task: str, message: str = "") -> Step:
        """A task raised ``AbortWorkflow``."""
        self._expect_running(task)
        self._set(task, TaskState.ABORTED)
        if message:
            self.errors[task] = message
        return self._halt(Outcome.ABORTED)

    def task_lost(self, task: str) -> Step:
        """The worker running a task died: queue the task again (unless halted)."""
        self._expect_running(task)
        step = Step()
        if self.halt is not None:
            self._set(task, TaskState.CANCELLED)
            step.cancelled.append(task)
        else:
            self._set(task, TaskState.QUEUED)
            step.ready.append(task)
        return self._finish(step)

    def stop(self, outcome: Outcome = Outcome.STOPPED) -> Step:
        """Stop queueing (``workflow stop``, ``stop_dag``, or another DAG's abort).

        A run that is already done keeps its outcome.
        """
        if self.done:
            return self._finish(Step())
        return self._halt(outcome)

    # -- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Return the run state as plain JSON-able data (the spec is not included)."""
        return {
            "states": {t: s.value for t, s in self.states.items()},
            "verdicts": self.verdicts,
            "errors": self.errors,
            "halt": self.halt.value if self.halt else None,
            "started": self.started,
        }

    @classmethod
    def from_dict(cls, spec: DagSpec, state: dict[str, Any]) -> DagRun:
        """Rebuild a run from :meth:`to_dict` output and its spec."""
        # The distributed engine rebuilds a run at every transition: plain dict
        # look-ups instead of Enum calls and properties keep that cheap for wide DAGs.
        run = cls(spec)
        run.states = {t: _STATE_BY_VALUE[s] for t, s in state["states"].items()}
        run.verdicts = {t: dict(v) for t, v in state["verdicts"].items()}
        run.errors = dict(state["errors"])
        run.halt = Outcome(state["halt"]) if state["halt"] else None
        run.started = state["started"]
        run._open = sum(s in _OPEN_STATES for s in run.states.values())
        return run

    # -- internals ----------------------------------------------------------------------
    def _set(self, task: str, state: TaskState) -> None:
        self._open -= int(state.terminal) - int(self.states[task].terminal)
        self.states[task] = state

    def _expect_running(self, task: str) -> None:
        if self.states[task] is not TaskState.RUNNING:
            raise RuntimeError(
                f"task '{task}' reported a result from state {self.states[task].value}"
            )

    def _tell(self, predecessor: str, task: str, verdict: str, step: Step) -> None:
        self.verdicts[task][predecessor] = verdict
        # A halt may already have cancelled the task; it is decided only once.
        if self.states[task] is TaskState.PENDING and len(self.verdicts[task]) == len(
            self.spec.predecessors[task]
        ):
            self._decide(task, step)

    def _decide(self, task: str, step: Step) -> None:
        if self.halt is not None:
            self._set(task, TaskState.CANCELLED)
            step.cancelled.append(task)
            return
        verdicts = self.verdicts[task].values()
        skip = (
            task not in self.spec.force_run
            and verdicts
            and (EXCLUDED in verdicts or all(v == SKIP for v in verdicts))
        )
        if not skip:
            self._set(task, TaskState.QUEUED)
            step.ready.append(task)
            return
        self._set(task, TaskState.SKIPPED)
        step.skipped.append(task)
        verdict = RUN if task in self.spec.no_propagate_skip else SKIP
        for successor in self.spec.successors[task]:
            self._tell(task, successor, verdict, step)

    def _halt(self, outcome: Outcome) -> Step:
        step = Step()
        if self.halt is None:
            self.halt = outcome
        # A DAG stopped before it started is over too: it must never wait forever.
        self.started = True
        for task, state in self.states.items():
            if state in (TaskState.PENDING, TaskState.QUEUED):
                self._set(task, TaskState.CANCELLED)
                step.cancelled.append(task)
        return self._finish(step)

    def _finish(self, step: Step) -> Step:
        step.done = self.done
        return step
