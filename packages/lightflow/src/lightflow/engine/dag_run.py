"""The DAG-run state machine: which tasks run, which are skipped, when a DAG is done.

This module is pure: no threads, sockets, clocks or sleeps. Both engines (the embedded
one in :mod:`lightflow.local` and the distributed one on Celery) feed it events and
carry out what it answers, so the scheduling rules exist exactly once.

State
-----
``DagSpec`` is the frozen shape of a DAG: task names in definition order, each task's
predecessors (with the slot label of the edge) and successors, and the two task flags
that matter for scheduling (``force_run``, ``propagate_skip``).

``DagRun`` applies events to the state of one run of a DAG, a :class:`RunState`:

* ``states[task]``: a :class:`TaskState`. ``PENDING`` until every predecessor has
  finished; then ``QUEUED`` (handed to the driver) or ``SKIPPED``; ``RUNNING`` once
  the driver starts it; finally ``SUCCEEDED``, ``STOPPED``, ``FAILED``, ``ABORTED``, or
  ``CANCELLED`` when the DAG halted before the task could run.
* ``verdicts[task]``: a :class:`Tally` of what the finished predecessors said about the
  task: how many have spoken, how many ``excluded`` it (the predecessor's
  ``Action(limit=...)`` left it out, or it raised ``StopTask(skip_successors=True)``)
  and how many said ``skip`` (the predecessor was skipped and propagates skips); the
  others said ``run``. Counts, not one entry per predecessor: a join of 10,000 lanes
  costs the same per lane as a join of two.
* ``halt``: ``None`` while the DAG runs normally, else why it stopped queueing
  (``failed``, ``stopped``, ``aborted``).
* ``errors[task]``: the one-line error of a failed task.
* ``started``, and ``open``: how many tasks are not yet in a terminal state.

A ``DagRun`` holds no state of its own, so a driver may rebuild one over the same
state for every event (the distributed engine does, over a view of Redis that reads
only the tasks an event touches).

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

Cancelling every waiting task reads the whole state, which a driver that keeps a wide
DAG's state in pieces does not want in the same step as the event that halts it. With
``sweep_on_halt=False`` a halt only marks the run halted and answers
``Step(sweep_due=True)``; the driver then calls :meth:`DagRun.sweep` in a step of its
own. In between, the rules above still hold for every task touched: a queued task
that is started is cancelled instead, and a task that is decided is cancelled.

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

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, NamedTuple

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


#: Tasks that wait for their turn: cancelled when the run halts.
WAITING = frozenset({TaskState.PENDING, TaskState.QUEUED})


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


class Tally(NamedTuple):
    """What a task's finished predecessors said about it (see the module docstring)."""

    received: int = 0
    excluded: int = 0
    skipped: int = 0

    def add(self, verdict: str) -> Tally:
        """The tally with one more predecessor's ``verdict``."""
        return Tally(
            self.received + 1,
            self.excluded + (verdict == EXCLUDED),
            self.skipped + (verdict == SKIP),
        )


def is_done(started: bool, open_tasks: int) -> bool:
    """Whether a DAG run is over: started, and no task left in a non-terminal state."""
    return started and open_tasks == 0


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
    #: The run halted and its waiting tasks are still to be cancelled by
    #: :meth:`DagRun.sweep` (only with ``sweep_on_halt=False``).
    sweep_due: bool = False


class RunState:
    """The state of one DAG run in memory (see the module docstring).

    The distributed engine supplies its own implementation, a view of Redis with the
    same attributes.
    """

    def __init__(self, spec: DagSpec) -> None:
        self.states: MutableMapping[str, TaskState] = dict.fromkeys(spec.order, TaskState.PENDING)
        self.verdicts: MutableMapping[str, Tally] = dict.fromkeys(spec.order, Tally())
        self.errors: MutableMapping[str, str] = {}
        self.halt: Outcome | None = None
        self.started = False
        self.open = len(spec.order)

    def waiting(self) -> list[str]:
        """The tasks that are pending or queued."""
        return [task for task, state in self.states.items() if state in WAITING]


class DagRun:
    """Applies events to one DAG run's state; see the module docstring for the rules.

    Args:
        spec: The DAG's shape.
        state: The run's state (default: a new run's, in memory).
        sweep_on_halt: Cancel the waiting tasks in the step that halts the run; see the
            module docstring for what ``False`` means.
    """

    def __init__(
        self, spec: DagSpec, state: RunState | None = None, *, sweep_on_halt: bool = True
    ) -> None:
        self.spec = spec
        self.state = RunState(spec) if state is None else state
        self.states = self.state.states
        self.verdicts = self.state.verdicts
        self.errors = self.state.errors
        self._sweep_on_halt = sweep_on_halt

    # -- queries ------------------------------------------------------------------------
    @property
    def halt(self) -> Outcome | None:
        """Why the run stopped queueing, or ``None``."""
        return self.state.halt

    @property
    def started(self) -> bool:
        """Whether the run was started (or stopped before it started)."""
        return self.state.started

    @property
    def done(self) -> bool:
        """Whether the DAG run is over."""
        return is_done(self.state.started, self.state.open)

    @property
    def outcome(self) -> Outcome | None:
        """How the run ended, or ``None`` while it is not done."""
        if not self.done:
            return None
        return self.state.halt or Outcome.SUCCEEDED

    def inputs_of(self, task: str) -> tuple[tuple[str, str | None], ...]:
        """The predecessors whose output forms the task's input, with slot labels."""
        return self.spec.predecessors[task]

    # -- events -------------------------------------------------------------------------
    def start(self) -> Step:
        """Start the run: every task without predecessors becomes ready."""
        if self.state.started:
            raise RuntimeError(f"DAG run '{self.spec.name}' was already started")
        self.state.started = True
        step = Step()
        for task in self.spec.order:
            if not self.spec.predecessors[task]:
                self._decide(task, step)
        return self._finish(step)

    def task_started(self, task: str) -> bool:
        """A driver is about to run a queued task; ``False`` means: do not run it.

        A halt cancels queued tasks, so a driver that still holds one drops it here. A
        queued task of a halted run whose sweep is still due is cancelled here.
        """
        state = self.states[task]
        if state is TaskState.CANCELLED:
            return False
        if state is not TaskState.QUEUED:
            raise RuntimeError(f"task '{task}' cannot start from state {state.value}")
        if self.state.halt is not None:
            self._set(task, TaskState.CANCELLED)
            return False
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
        if self.state.halt is not None:
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

    def sweep(self) -> Step:
        """Cancel the waiting tasks of a halted run (see ``sweep_on_halt``)."""
        step = Step()
        for task in self.state.waiting():
            self._set(task, TaskState.CANCELLED)
            step.cancelled.append(task)
        return self._finish(step)

    # -- internals ----------------------------------------------------------------------
    def _set(self, task: str, state: TaskState) -> None:
        closed = int(state.terminal) - int(self.states[task].terminal)
        if closed:  # only then: a view of a shared state need not read the count
            self.state.open -= closed
        self.states[task] = state

    def _expect_running(self, task: str) -> None:
        if self.states[task] is not TaskState.RUNNING:
            raise RuntimeError(
                f"task '{task}' reported a result from state {self.states[task].value}"
            )

    def _tell(self, predecessor: str, task: str, verdict: str, step: Step) -> None:
        tally = self.verdicts[task] = self.verdicts[task].add(verdict)
        # A halt may already have cancelled the task; it is decided only once.
        if self.states[task] is TaskState.PENDING and tally.received == len(
            self.spec.predecessors[task]
        ):
            self._decide(task, step)

    def _decide(self, task: str, step: Step) -> None:
        if self.state.halt is not None:
            self._set(task, TaskState.CANCELLED)
            step.cancelled.append(task)
            return
        tally = self.verdicts[task]
        skip = (
            task not in self.spec.force_run
            and tally.received > 0
            and (tally.excluded > 0 or tally.skipped == tally.received)
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
        if self.state.halt is None:
            self.state.halt = outcome
        # A DAG stopped before it started is over too: it must never wait forever.
        if not self.state.started:
            self.state.started = True
        if self._sweep_on_halt:
            return self.sweep()
        return self._finish(Step(sweep_due=True))

    def _finish(self, step: Step) -> Step:
        step.done = self.done
        return step
