"""A DAG instance's state in Redis: one hash, read field by field as the machine asks.

Every DAG instance keeps its state in the hash ``lf:run:<id>:dag:<instance>``:

``t:<task>``
    The task's state, its current attempt id and the tally of its predecessors'
    verdicts, as text (``"queued 3f2a... 1 0 0"``). Absent while the task is pending
    and no predecessor has spoken, so creating an instance writes nothing per task.
``e:<task>``
    A failed task's error.
``c:<task>``
    How many successors have consumed the task's stored output (``c:^start`` for the
    instance's start data); the output is deleted once all of them have.
``halt``, ``started``, ``open``
    Why the instance stopped queueing (absent while it runs normally), ``1`` once it
    started, and how many of its tasks are not in a terminal state.
``dag``, ``created``
    The DAG's name in the workflow and when the instance was created.

:class:`InstanceView` is the :class:`~lightflow.engine.RunState` the state machine
works on in the distributed engine. It reads a field the first time the machine asks
for it (or takes it from the fields a job read ahead in its first round trip) and
remembers the value read: the commit (:mod:`.instance`) applies the transition only
if every field read still holds it. A task's begin therefore reads and compares one
field, its end its own field, its successors' and the halt reason: the cost of a
transition does not grow with the width of the DAG. ``open`` is never compared: it
changes by increment (:attr:`InstanceView.open_delta`), so transitions of unrelated
tasks do not conflict over it, and the commit says whether it ended the DAG.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from ..engine.dag_run import WAITING, DagSpec, Outcome, RunState, Tally, TaskState

if TYPE_CHECKING:
    import redis

#: The hash fields of an instance that are not per task.
HALT, STARTED, OPEN, DAG, CREATED = "halt", "started", "open", "dag", "created"
_STATES = {state.value: state for state in TaskState}
_PENDING = ("pending", "-", "0", "0", "0")


def task_field(task: str) -> str:
    """The field of a task's state, attempt and tally."""
    return f"t:{task}"


def error_field(task: str) -> str:
    """The field of a failed task's error."""
    return f"e:{task}"


def consumed_field(task: str) -> str:
    """The field counting the successors that consumed the task's output."""
    return f"c:{task}"


class TaskEntry:
    """One task's state, current attempt id and tally, as kept in its field."""

    __slots__ = ("attempt", "state", "tally")

    def __init__(self, raw: bytes | None) -> None:
        state, attempt, received, excluded, skipped = raw.decode().split(" ") if raw else _PENDING
        self.state = _STATES[state]
        self.attempt = "" if attempt == "-" else attempt
        self.tally = Tally(int(received), int(excluded), int(skipped))

    def encode(self) -> str:
        tally = self.tally
        return (
            f"{self.state.value} {self.attempt or '-'} "
            f"{tally.received} {tally.excluded} {tally.skipped}"
        )


class InstanceView(RunState):
    """A DAG instance's state in Redis, as the state machine reads and changes it.

    Args:
        client: The state server.
        key: The instance's hash.
        spec: The instance's DAG spec (the tasks it has).
    """

    def __init__(self, client: redis.Redis, key: str, spec: DagSpec) -> None:
        self._client = client
        self.key = key
        self._spec = spec
        #: Raw values known, by field (``None``: the field does not exist).
        self.values: dict[str, bytes | None] = {}
        #: The fields the machine read, with the value read: what the commit compares.
        self.compared: dict[str, bytes | None] = {}
        #: New raw values of the fields changed by the transition.
        self.written: dict[str, str] = {}
        #: The change of ``open`` made by the transition.
        self.open_delta = 0
        #: Tasks whose stored output one more successor consumed in the transition.
        self.consumed: list[str] = []
        self._entries: dict[str, TaskEntry] = {}
        self.states = _States(self)
        self.verdicts = _Verdicts(self)
        self.errors = _Errors(self)

    # -- reading ------------------------------------------------------------------------
    def load(self, fields: Iterable[str], keys: Iterable[str] = ()) -> list[Any]:
        """Read the fields not known yet and the values of ``keys``, in one round trip.

        Returns the values of ``keys``, in order.
        """
        missing = [name for name in dict.fromkeys(fields) if name not in self.values]
        keys = list(keys)
        if not missing and not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        if missing:
            pipe.hmget(self.key, missing)
        for key in keys:
            pipe.get(key)
        replies = pipe.execute()
        if missing:
            self.values.update(zip(missing, replies.pop(0), strict=True))
        return list(replies)

    def static(self, field: str) -> bytes | None:
        """A field that never changes once written (not compared by the commit)."""
        self.load([field])
        return self.values[field]

    def _read(self, field: str) -> bytes | None:
        if field in self.written:
            return self.written[field].encode()
        if field not in self.values:
            self.load([field])
        value = self.values[field]
        self.compared.setdefault(field, value)
        return value

    def entry(self, task: str) -> TaskEntry:
        """A task's entry (read, and compared by the commit)."""
        entry = self._entries.get(task)
        if entry is None:
            entry = self._entries[task] = TaskEntry(self._read(task_field(task)))
        return entry

    def attempt(self, task: str) -> str:
        """The id of the task's current attempt ('' before it was first queued)."""
        return self.entry(task).attempt

    # -- changing -----------------------------------------------------------------------
    def put(self, task: str, entry: TaskEntry) -> None:
        """Write a task's entry (after reading it with :meth:`entry`)."""
        self._entries[task] = entry
        self.written[task_field(task)] = entry.encode()

    def set_attempt(self, task: str, attempt: str) -> None:
        """Give a task that became ready a new attempt id."""
        entry = self.entry(task)
        entry.attempt = attempt
        self.put(task, entry)

    def consume(self, predecessors: tuple[tuple[str, str | None], ...], start: str) -> None:
        """A task composed its input: one more consumer of each predecessor's output."""
        self.consumed.extend([name for name, _slot in predecessors] or [start])

    # -- the RunState attributes ----------------------------------------------------------
    @property
    def halt(self) -> Outcome | None:
        raw = self._read(HALT)
        return Outcome(raw.decode()) if raw else None

    @halt.setter
    def halt(self, outcome: Outcome | None) -> None:
        if outcome is not None:
            self.written[HALT] = outcome.value

    @property
    def started(self) -> bool:
        return self._read(STARTED) == b"1"

    @started.setter
    def started(self, started: bool) -> None:
        if started:
            self.written[STARTED] = "1"

    @property
    def open(self) -> int:
        return int(self.static(OPEN) or 0) + self.open_delta

    @open.setter
    def open(self, count: int) -> None:
        self.open_delta += count - self.open

    def waiting(self) -> list[str]:
        """The pending and queued tasks: reads the whole hash, compares none of it.

        Only the fields the machine then changes are compared (it reads each task it
        cancels), so a sweep conflicts only with transitions of the tasks it cancels.
        """
        everything: dict[bytes, bytes] = self._client.hgetall(self.key)  # type: ignore[assignment]
        known = {name.decode(): value for name, value in everything.items()}
        for task in self._spec.order:
            name = task_field(task)
            if name not in self.compared and name not in self.written:
                self.values[name] = known.get(name)
        return [
            task
            for task in self._spec.order
            if (self._entries.get(task) or TaskEntry(self.values[task_field(task)])).state
            in WAITING
        ]

    # -- after a commit -----------------------------------------------------------------
    def committed(self, open_tasks: int) -> None:
        """The transition was stored: its writes are now what is known."""
        self.values.update({name: value.encode() for name, value in self.written.items()})
        self.values[OPEN] = str(open_tasks).encode()
        self._forget()

    def refresh(self, current: dict[str, bytes | None]) -> None:
        """The commit found other values: take them, and drop the transition."""
        self.values.update(current)
        self._forget()

    def state_of(self, task: str) -> TaskState:
        """A task's state as last committed or read (not compared by a commit)."""
        return TaskEntry(self.values.get(task_field(task))).state

    def error_of(self, task: str) -> str:
        """A failed task's error as last committed or read ('' if none; not compared)."""
        raw = self.values.get(error_field(task))
        return raw.decode() if raw else ""

    def _forget(self) -> None:
        # Entries are parsed again from the values: a later transition compares what
        # it reads, even when this one wrote it.
        self._entries.clear()
        self.compared.clear()
        self.written.clear()
        self.consumed.clear()
        self.open_delta = 0


class _TaskFields(MutableMapping[str, Any]):
    """Base of the per-task mappings the machine sees; every task of the spec is in it."""

    def __init__(self, view: InstanceView) -> None:
        self._view = view

    def __iter__(self) -> Iterator[str]:
        return iter(self._view._spec.order)

    def __len__(self) -> int:
        return len(self._view._spec.order)

    def __delitem__(self, task: str) -> None:
        raise TypeError("tasks are never removed from a DAG run")


class _States(_TaskFields):
    def __getitem__(self, task: str) -> TaskState:
        if task not in self._view._spec.predecessors:
            raise KeyError(task)
        return self._view.entry(task).state

    def __setitem__(self, task: str, state: TaskState) -> None:
        entry = self._view.entry(task)
        entry.state = state
        self._view.put(task, entry)


class _Verdicts(_TaskFields):
    def __getitem__(self, task: str) -> Tally:
        return self._view.entry(task).tally

    def __setitem__(self, task: str, tally: Tally) -> None:
        entry = self._view.entry(task)
        entry.tally = tally
        self._view.put(task, entry)


class _Errors(_TaskFields):
    def __getitem__(self, task: str) -> str:
        raw = self._view._read(error_field(task))
        if raw is None:
            raise KeyError(task)
        return raw.decode()

    def __setitem__(self, task: str, error: str) -> None:
        self._view.written[error_field(task)] = error

    def __iter__(self) -> Iterator[str]:
        return (task for task in self._view._spec.order if task in self)

    def __len__(self) -> int:
        return sum(1 for _task in self)
