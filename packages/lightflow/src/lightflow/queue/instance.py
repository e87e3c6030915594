"""Advancing a DAG instance: one event, one compare-and-set commit with all it implies.

A job applies one event to the instance's :class:`~lightflow.engine.DagRun`, working on
an :class:`~lightflow.queue.dag_state.InstanceView` of its state, and commits the
result with one Lua script (:data:`_COMMIT`): the changed fields are stored only if
every field the machine read still holds the value read, and in the same atomic step
go every write the transition implies: task outputs, events, META entries, the tasks
made ready (pushed to their queues' ready lists, or claimed by this process for a
hand-off), stop flags. A conflicting commit answers the current values of the fields
it compared and the event is applied again to them; no lock is ever held, so a killed
worker leaves none behind.

Whether the commit ended the DAG is known only in the script (``open`` changes by
increment), so the writes that record the DAG's end travel with every commit that may
end it and are applied only if it does. A halt is applied in two commits: the event
that halts marks the instance halted, and :func:`sweep`, in a commit of its own,
cancels the waiting tasks (see :mod:`lightflow.engine.dag_run`), so a wide DAG stops
at once however busy it is; a sweep due is in the outbox until it is done, so a crash
between the two loses nothing.
"""

from __future__ import annotations

import json
import pickle
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from ..engine.dag_run import DagRun, Outcome, Step, TaskState
from ..events import RunEvent
from ..exceptions import LightflowError, SignalError
from ..execution import initial_data
from ..models.dag import Dag
from ..portable import refusal, unportable
from . import state as rs
from .app import DAG_JOB
from .cluster import Cluster, Plan
from .dag_state import CREATED, DAG, OPEN, STARTED, InstanceView, consumed_field, task_field
from .inputs import START, compose, consumers, input_keys, output_key
from .outbox import add_to_outbox, job_entry, send_jobs
from .ready import READY_QUEUES, TAKE_FUNCTION, TaskRef, claim, entry, parse, ready_key

#: Values of ``rpush`` arguments per command in a commit (Lua's unpack has a limit).
_CHUNK = 1000


def dag_key(run_id: str, instance: str) -> str:
    """The hash holding a DAG instance's state (see :mod:`.dag_state`)."""
    return rs.run_key(run_id, "dag", instance)


def ready_channel(run_id: str) -> str:
    """The channel a commit that pushes ready tasks of a run publishes to.

    A task waiting in ``join_dags`` listens to it to take them (see :mod:`.joining`).
    """
    return rs.run_key(run_id, "ready")


def create_instance(
    cluster: Cluster, run_id: str, dag: Dag, data: Any, call: StartCall | None = None
) -> str:
    """Register a new instance of ``dag`` in the run and queue its DAG job.

    ``call`` names the ``start_dag`` call of a task that asks: the instance its earlier
    attempt created with that call is returned instead, created only if it is absent
    (a task re-run after its worker died finds the DAGs it started, and their start
    data is written once). The name is reserved first (:data:`_RESERVE`), then the
    instance is created under it in one atomic step (:data:`_CREATE`), so an attempt
    that dies in between leaves a name the next one creates.
    """
    start = None if data is None else _start_data(dag, data)
    client = cluster.redis
    if call is None:
        copy = client.incr(rs.run_key(run_id, "seq", dag.name))
        name = dag.name if copy == 1 else f"{dag.name}:{copy}"
    else:
        reserved = cluster.script(_RESERVE)(
            keys=[rs.run_key(run_id, "started"), rs.run_key(run_id, "seq", dag.name)],
            args=[call.field(dag.name), dag.name],
        )
        name = rs.text(reserved)
    plan = Plan.of(dag, name)
    writes = Writes()
    writes.set(rs.run_key(run_id, "plan", name), pickle.dumps(plan, protocol=5))
    if dag.name not in cluster.workflow(run_id).dags:
        writes.set(rs.run_key(run_id, "dagdef", dag.name), cloudpickle.dumps(dag))
    if start is not None:
        writes.set(output_key(run_id, name, START), start)
    key = dag_key(run_id, name)
    for field_name, value in ((DAG, dag.name), (CREATED, rs.now()), (OPEN, len(plan.spec.order))):
        writes.hset(key, field_name, value)
    writes.hset(rs.run_key(run_id, "dags"), name, "")
    job = job_entry(DAG_JOB, (run_id, name), dag.queue)
    add_to_outbox(writes, [job])
    created = cluster.script(_CREATE)(
        keys=[rs.run_key(run_id, "dags")], args=[name, *writes.arguments()]
    )
    if created:
        send_jobs(cluster, [job])
    return name


@dataclass(frozen=True)
class StartCall:
    """The ``index``-th ``start_dag`` call (from 1) of a task in a DAG instance.

    The same in every attempt of the task, so that a re-run finds what it started.
    """

    instance: str
    task: str
    index: int

    def field(self, dag: str) -> str:
        """Its field in ``lf:run:<id>:started`` (the DAG named too: a re-run that asks
        for another DAG at that call gets a new instance)."""
        return json.dumps([self.instance, self.task, self.index, dag])


#: Returns the instance name reserved for a ``start_dag`` call (KEYS[1]: the run's
#: ``started`` hash, ARGV[1]: the call's field), reserving the next copy of the DAG
#: (KEYS[2]: its counter, ARGV[2]: its name) the first time.
_RESERVE = """
local name = redis.call('HGET', KEYS[1], ARGV[1])
if name then return name end
local copy = redis.call('INCR', KEYS[2])
name = ARGV[2]
if copy > 1 then name = name .. ':' .. copy end
redis.call('HSET', KEYS[1], ARGV[1], name)
return name
"""

#: Applies the writes that create an instance (ARGV[2:], as :meth:`Writes.arguments`
#: flattens them) unless the run's instance list (KEYS[1]) has it (ARGV[1]) already.
#: Returns 1 if it created it.
_CREATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local i = 3
for _ = 1, tonumber(ARGV[2]) do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
"""


#: Commits a transition (KEYS[1]: the instance's hash). ARGV: the change of ``open``,
#: then sections, each its count followed by its items: compared fields (field,
#: ``=value`` or ``!`` for absent), fields set (field, value), consumed outputs
#: (counter field, output key, increment, consumers), commands (argument count,
#: arguments), commands applied only if the commit ended the DAG, fields and keys to
#: read once it is applied, and the ready list to take the next task from (with
#: ``lf:running``, the worker, the time and the queue; see ``take_ready``). Answers
#: ``{1, open, ended, taken entry or false, values read}``, ``{0, current values of
#: the compared fields}`` on a conflict, or ``{-1}`` when the instance is gone.
_COMMIT = (
    TAKE_FUNCTION
    + """
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return {-1} end
local i = 1
local function take()
  local value = ARGV[i]
  i = i + 1
  return value
end
local delta = tonumber(take())
local fields = {}
local stale = false
for _ = 1, tonumber(take()) do
  local name, expected = take(), take()
  local value = redis.call('HGET', key, name)
  fields[#fields + 1] = name
  if expected == '!' then
    if value then stale = true end
  elseif value ~= string.sub(expected, 2) then
    stale = true
  end
end
if stale then
  local current = {0}
  for n = 1, #fields do current[n + 1] = redis.call('HGET', key, fields[n]) end
  return current
end
local open = tonumber(redis.call('HGET', key, 'open') or '0')
local was_done = redis.call('HGET', key, 'started') == '1' and open == 0
for _ = 1, tonumber(take()) do
  redis.call('HSET', key, take(), take())
end
if delta ~= 0 then open = redis.call('HINCRBY', key, 'open', delta) end
for _ = 1, tonumber(take()) do
  local name, output, by, limit = take(), take(), tonumber(take()), tonumber(take())
  if redis.call('HINCRBY', key, name, by) >= limit then
    redis.call('DEL', output)
    redis.call('HDEL', key, name)
  end
end
local function run(count, apply)
  for _ = 1, count do
    local n = tonumber(take())
    if apply then redis.call(unpack(ARGV, i, i + n - 1)) end
    i = i + n
  end
end
run(tonumber(take()), true)
local ended = (not was_done) and open == 0 and redis.call('HGET', key, 'started') == '1'
run(tonumber(take()), ended)
local taken = false
if tonumber(take()) == 1 then taken = take_ready(take(), take(), take(), take(), take()) end
local reply = {1, open, ended and 1 or 0, taken}
for _ = 1, tonumber(take()) do reply[#reply + 1] = redis.call('HGET', key, take()) end
for _ = 1, tonumber(take()) do reply[#reply + 1] = redis.call('GET', take()) end
return reply
"""
)


class Writes:
    """Redis commands collected to run atomically with a state transition.

    Offers the few pipeline methods the engine queues (so helpers that take a pipeline,
    such as :func:`queue_events` and :func:`add_to_outbox`, accept it too).
    """

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []
        self.meta = False  # whether META entries were queued (see queue_meta)
        #: Ready tasks pushed, by queue (the task jobs to send after the commit).
        self.pushed: Counter[str] = Counter()
        #: Writes applied only if the commit ends the DAG (see :func:`_record_step`).
        self.if_ended: Writes | None = None

    def set(self, key: str, value: Any) -> None:
        self.commands.append(("SET", key, value))

    def delete(self, key: str) -> None:
        self.commands.append(("DEL", key))

    def hset(self, key: str, field_name: str, value: Any) -> None:
        self.commands.append(("HSET", key, field_name, value))

    def hsetnx(self, key: str, field_name: str, value: Any) -> None:
        self.commands.append(("HSETNX", key, field_name, value))

    def hdel(self, key: str, field_name: str) -> None:
        self.commands.append(("HDEL", key, field_name))

    def zrem(self, key: str, member: str) -> None:
        self.commands.append(("ZREM", key, member))

    def zadd(self, key: str, mapping: Mapping[str, float]) -> None:
        pairs = [item for member, score in mapping.items() for item in (score, member)]
        self.commands.append(("ZADD", key, *pairs))

    def rpush(self, key: str, *values: Any) -> None:
        for start in range(0, len(values), _CHUNK):
            self.commands.append(("RPUSH", key, *values[start : start + _CHUNK]))

    def sadd(self, key: str, member: str) -> None:
        self.commands.append(("SADD", key, member))

    def publish(self, channel: str, message: Any) -> None:
        self.commands.append(("PUBLISH", channel, message))

    def xadd(self, key: str, fields: Mapping[str, Any], maxlen: int) -> None:
        pairs = [item for name, value in fields.items() for item in (name, value)]
        self.commands.append(("XADD", key, "MAXLEN", "~", maxlen, "*", *pairs))

    def push_ready(self, queue: str, entries: list[str]) -> None:
        """Push ready tasks to the ready list of ``queue``."""
        self.rpush(ready_key(queue), *entries)
        self.sadd(READY_QUEUES, queue)
        self.pushed[queue] += len(entries)

    def arguments(self) -> list[Any]:
        """The commands flattened for :data:`_COMMIT`: their count, then each one."""
        flat: list[Any] = [len(self.commands)]
        for command in self.commands:
            flat.append(len(command))
            flat.extend(command)
        return flat


@dataclass(frozen=True)
class HandOff:
    """Where a process that will run a ready task itself takes one: queue and worker."""

    queue: str
    worker: str


@dataclass(frozen=True)
class Ahead:
    """What a job has its commit answer for what it does next, saving a round trip.

    Attributes:
        fields: Instance fields its next transition reads.
        keys: Other keys it reads next (a task's input), by value in ``Progress.values``.
        take: Take the next ready task of this queue for this worker, claimed in the
            same atomic step, unless the commit claimed a hand-off.
    """

    fields: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    take: HandOff | None = None


@dataclass
class Progress:
    """A committed state-machine step and the view it left."""

    machine: DagRun
    view: InstanceView
    step: Step  # ``step.done``: whether this commit ended the DAG
    #: Ready tasks pushed to ready lists, by queue (see :func:`lightflow.queue.ready.wake`).
    pushed: Counter[str] = field(default_factory=Counter)
    #: The ready task this process claimed to run next (see ``hand_off``).
    handoff: TaskRef | None = None
    #: The ready task taken and claimed for this process by the commit (see ``Ahead``).
    taken: TaskRef | None = None
    #: Values of the extra keys read with the first fields (``reads`` of :func:`advance`).
    values: dict[str, Any] = field(default_factory=dict)
    #: Whether the commit queued META entries (see :class:`~lightflow.queue.meta.MetaWriter`).
    meta: bool = False
    #: The outbox entry of the sweep due after this step halted the instance.
    sweep: str | None = None


def _start_data(dag: Dag, data: Any) -> bytes:
    """``start_dag``'s data pickled for the instance's tasks, or one line saying why not.

    Raises:
        SignalError: The data cannot go to a worker (a lock, a generator in it), named
            as ``lightflow run`` names it (:mod:`lightflow.portable`).
    """
    try:
        return cloudpickle.dumps(initial_data(data))
    except Exception as error:
        culprit = unportable(data) or f"{type(error).__name__}: {error}"
        raise SignalError(refusal(f"the data given to start_dag('{dag.name}')", culprit)) from None


def advance(
    cluster: Cluster,
    run_id: str,
    instance: str,
    event: Callable[[DagRun, InstanceView], Step | None],
    *,
    view: InstanceView | None = None,
    prefetch: Iterable[str] = (),
    reads: Iterable[str] = (),
    outputs: Mapping[str, bytes] | None = None,
    also: Callable[[Writes], None] | None = None,
    hand_off: HandOff | None = None,
    ahead: Ahead = Ahead(),
) -> Progress | None:
    """Apply ``event`` to the instance's machine and commit it (compare-and-set).

    ``event`` returns ``None`` to change nothing. ``view`` continues from a previous
    commit of the same job (its values are the first try's expectations); ``prefetch``
    names fields the event will read, and ``reads`` other keys, all read in one round
    trip if not known (see :attr:`Progress.values`); a field read later is read then.
    Skipped tasks pass their input on, so their outputs are composed and stored in the
    same commit; ready tasks get fresh attempt ids. ``outputs`` (key -> pickled output)
    are written with the transition, so no successor can start before its input
    exists; ``also`` may add further writes. With ``hand_off``, the first task made
    ready on that queue is claimed for the worker instead of pushed; ``ahead`` says
    what the commit should answer for the job's next step.
    """
    plan = cluster.plan(run_id, instance)
    view = view or InstanceView(cluster.redis, dag_key(run_id, instance), plan.spec)
    reads = list(reads)
    values = dict(zip(reads, view.load(prefetch, reads), strict=True))
    while True:
        machine = DagRun(plan.spec, view, sweep_on_halt=False)
        step = event(machine, view)
        if step is None:
            view.refresh({})
            return None
        writes = Writes()
        written = dict(outputs or {})
        for key, blob in written.items():
            writes.set(key, blob)
        _pass_on_skipped(cluster, run_id, instance, plan, view, step, written, writes)
        handoff = _make_ready(run_id, instance, plan, view, step, writes, hand_off)
        if also is not None:
            also(writes)
        _record_step(cluster, run_id, instance, machine, view, step, writes)
        sweep_entry = None
        if step.sweep_due:
            sweep_entry = job_entry(DAG_JOB, (run_id, instance), plan.queue)
            add_to_outbox(writes, [sweep_entry])
        take = ahead.take if handoff is None else None
        reply = _commit(cluster, run_id, instance, plan, view, writes, ahead, take)
        if reply[0] == -1:
            raise LightflowError(f"run {run_id} has no DAG instance '{instance}'")
        if reply[0] == 0:
            view.refresh(dict(zip(view.compared, reply[1:], strict=True)))
            continue
        step.done = bool(reply[2])
        ended = writes.if_ended if step.done else None
        view.committed(int(reply[1]))
        view.values.update(zip(ahead.fields, reply[4:], strict=False))
        values.update(zip(ahead.keys, reply[4 + len(ahead.fields) :], strict=True))
        progress = Progress(machine, view, step, writes.pushed, handoff, values=values)
        progress.meta = writes.meta or (ended is not None and ended.meta)
        progress.sweep, progress.taken = sweep_entry, parse(reply[3]) if reply[3] else None
        return progress


def sweep(cluster: Cluster, run_id: str, instance: str, entry_done: str | None) -> Progress | None:
    """Cancel the waiting tasks of a halted instance, in a commit of its own.

    ``entry_done`` is the outbox entry that stood for this sweep: cleared with it. An
    instance whose run has ended (and was cleaned up) meanwhile has nothing to sweep.
    """

    def cancel(machine: DagRun, _view: InstanceView) -> Step | None:
        if machine.halt is None or machine.done:
            return None
        return machine.sweep()

    def clear(writes: Writes) -> None:
        if entry_done is not None:
            writes.zrem(rs.OUTBOX, entry_done)

    try:
        progress = advance(cluster, run_id, instance, cancel, also=clear)
    except LightflowError:  # the run has ended and was cleaned up meanwhile
        progress = None
    if progress is None and entry_done is not None:
        cluster.redis.zrem(rs.OUTBOX, entry_done)
    return progress


def _commit(
    cluster: Cluster,
    run_id: str,
    instance: str,
    plan: Plan,
    view: InstanceView,
    writes: Writes,
    ahead: Ahead,
    take: HandOff | None,
) -> list[Any]:
    """Run :data:`_COMMIT` for the transition the view and ``writes`` hold."""
    args: list[Any] = [view.open_delta, len(view.compared)]
    for name, value in view.compared.items():
        args += [name, "!" if value is None else b"=" + value]
    args.append(len(view.written))
    for name, text in view.written.items():
        args += [name, text]
    counts = Counter(view.consumed)
    args.append(len(counts))
    for name, count in counts.items():
        args += [consumed_field(name), output_key(run_id, instance, name), count]
        args.append(consumers(plan.spec, name))
    args += writes.arguments()
    args += writes.if_ended.arguments() if writes.if_ended is not None else [0]
    if take is None:
        args.append(0)
    else:
        args += [1, ready_key(take.queue), rs.RUNNING, take.worker, rs.now(), take.queue]
    args += [len(ahead.fields), *ahead.fields, len(ahead.keys), *ahead.keys]
    reply: list[Any] = cluster.script(_COMMIT)(keys=[view.key], args=args)
    return reply


def _pass_on_skipped(
    cluster: Cluster,
    run_id: str,
    instance: str,
    plan: Plan,
    view: InstanceView,
    step: Step,
    written: dict[str, bytes],
    writes: Writes,
) -> None:
    """Skipped tasks pass their input on: compose it and store it as their output."""
    spec = plan.spec
    for task in step.skipped:
        blobs = {
            key: written.get(key) or cluster.redis.get(key)
            for key in input_keys(run_id, instance, spec, task)
        }
        data = compose(run_id, instance, spec, task, blobs)
        view.consume(spec.predecessors[task], START)
        if spec.successors[task]:
            data.flatten(in_place=True)
            key = output_key(run_id, instance, task)
            written[key] = cloudpickle.dumps(data)
            writes.set(key, written[key])


def _make_ready(
    run_id: str,
    instance: str,
    plan: Plan,
    view: InstanceView,
    step: Step,
    writes: Writes,
    hand_off: HandOff | None,
) -> TaskRef | None:
    """Give ready tasks attempt ids and push them (or claim one for ``hand_off``)."""
    handoff = None
    by_queue: dict[str, list[str]] = {}
    for task in step.ready:
        attempt = uuid.uuid4().hex
        view.set_attempt(task, attempt)
        ref = TaskRef(run_id, instance, task, attempt, view.written[task_field(task)])
        queue = plan.queues[task]
        if handoff is None and hand_off is not None and queue == hand_off.queue:
            handoff = ref
            beat = claim(ref, hand_off.worker, queue)
            writes.hset(rs.RUNNING, ref.running_field, json.dumps(beat))
            continue
        by_queue.setdefault(queue, []).append(entry(ref))
    for queue, entries in by_queue.items():
        writes.push_ready(queue, entries)
    if by_queue:
        writes.publish(ready_channel(run_id), "")
    return handoff


def _record_step(
    cluster: Cluster,
    run_id: str,
    instance: str,
    machine: DagRun,
    view: InstanceView,
    step: Step,
    writes: Writes,
) -> None:
    """Add what a step tells observers to its commit: events and META entries.

    Events of skipped and cancelled tasks, and those of the DAG's end with the DAG's
    outcome in the run's list of instances, are published by the commit that decides
    them, so no observer sees the run end before them and a crash cannot separate
    them from it. The DAG's end goes with every commit that may end it (one that
    closes a task, or starts the instance) and is applied only if it does.
    """
    workflow = cluster.workflow_name(run_id)
    if step.skipped or step.cancelled:
        events: list[RunEvent] = []
        record = cluster.recorder(run_id, workflow, events, deferred=True)
        for task in step.skipped:
            record.task_not_run(instance, task, TaskState.SKIPPED.value)
        for task in step.cancelled:
            record.task_not_run(instance, task, TaskState.CANCELLED.value)
        queue_events(writes, run_id, events)
        queue_meta(writes, run_id, record.take())
    if view.open_delta < 0 or STARTED in view.written:
        ended = writes.if_ended = Writes()
        end: list[RunEvent] = []
        record = cluster.recorder(run_id, workflow, end, deferred=True)
        outcome = (machine.halt or Outcome.SUCCEEDED).value
        record.dag_finished(instance, outcome, started_at=float(view.static(CREATED) or 0))
        ended.hset(rs.run_key(run_id, "dags"), instance, outcome)
        ended.publish(rs.run_key(run_id, "dagdone"), instance)
        queue_events(ended, run_id, end)
        queue_meta(ended, run_id, record.take())


def queue_events(pipe: Any, run_id: str, events: list[RunEvent]) -> None:
    """Queue run events on a pipeline (or a commit's writes)."""
    for event in events:
        rs.publish_event(pipe, run_id, event.to_dict())


def queue_meta(writes: Writes, run_id: str, values: dict[str, Any]) -> None:
    """Queue META values (dot-notation keys) for the store with a commit."""
    if values:
        writes.rpush(rs.run_key(run_id, "meta"), pickle.dumps(values))
        writes.meta = True
