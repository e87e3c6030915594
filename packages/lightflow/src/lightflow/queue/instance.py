"""A DAG instance's state in Redis: creating an instance and advancing it by compare-and-set.

A job loads the instance's state (with whatever else it needs in the same round trip),
applies one event to the :class:`~lightflow.engine.DagRun` machine and commits the new
state with one Lua script: stored only if the version is still the one read, together
with every write the transition implies (outputs, events, META entries, the outbox
entries of the jobs it makes due). A conflicting writer reads again and retries; no
lock is ever held, so a killed worker leaves none behind.
"""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from ..engine.dag_run import DagRun, DagSpec, Outcome, Step, TaskState
from ..events import RunEvent
from ..exceptions import LightflowError
from ..execution import compose_input, initial_data
from ..models.dag import Dag
from ..models.task_data import MultiTaskData
from . import state as rs
from .cluster import Cluster, Plan
from .jobs import DAG_JOB, TASK_JOB
from .outbox import add_to_outbox, job_entry, send_jobs

START = "^start"  # pseudo-predecessor holding an instance's start data


def create_instance(cluster: Cluster, run_id: str, dag: Dag, data: Any) -> str:
    """Register a new instance of ``dag`` in the run and queue its DAG job."""
    client = cluster.redis
    copy = client.incr(rs.run_key(run_id, "seq", dag.name))
    name = dag.name if copy == 1 else f"{dag.name}:{copy}"
    plan = Plan.of(dag, name)
    spec = plan.spec
    starts = [t for t in spec.order if not spec.predecessors[t]]
    unconsumed = {task: len(successors) for task, successors in spec.successors.items()}
    pipe = client.pipeline()
    pipe.set(rs.run_key(run_id, "plan", name), pickle.dumps(plan, protocol=5))
    if dag.name not in cluster.workflow(run_id).dags:
        pipe.set(rs.run_key(run_id, "dagdef", dag.name), cloudpickle.dumps(dag))
    if data is not None:
        unconsumed[START] = len(starts)
        pipe.set(rs.run_key(run_id, "out", name, START), cloudpickle.dumps(initial_data(data)))
    pipe.set(
        rs.run_key(run_id, "dag", name),
        rs.dump_dag_state(
            {
                "dag": dag.name,
                "machine": DagRun(spec).to_dict(),
                "attempts": {},
                "unconsumed": unconsumed,
                "created": rs.now(),
            }
        ),
    )
    pipe.hset(rs.run_key(run_id, "dags"), name, "")
    job = job_entry(DAG_JOB, (run_id, name), dag.queue)
    add_to_outbox(pipe, [job])
    pipe.execute()
    send_jobs(cluster, [job])
    return name


#: Commits a DAG instance's new state if its version is still the one read, together
#: with every write that belongs to the transition (ARGV: version, state, then each
#: command as its argument count followed by its arguments). One round trip, no lock:
#: a killed worker leaves nothing behind, and a conflicting writer just reads again.
_COMMIT = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[2])
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
"""


class Writes:
    """Redis commands collected to run atomically with a state transition.

    Offers the few pipeline methods the engine queues (so helpers that take a pipeline,
    such as :func:`queue_events` and :func:`add_to_outbox`, accept it too).
    """

    def __init__(self) -> None:
        self.commands: list[tuple[Any, ...]] = []
        self.meta = False  # whether META entries were queued (see queue_meta)

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
        self.commands.append(("RPUSH", key, *values))

    def publish(self, channel: str, message: Any) -> None:
        self.commands.append(("PUBLISH", channel, message))

    def xadd(self, key: str, fields: Mapping[str, Any], maxlen: int) -> None:
        pairs = [item for name, value in fields.items() for item in (name, value)]
        self.commands.append(("XADD", key, "MAXLEN", "~", maxlen, "*", *pairs))

    def arguments(self) -> list[Any]:
        """The commands flattened for :data:`_COMMIT`."""
        flat: list[Any] = []
        for command in self.commands:
            flat.append(len(command))
            flat.extend(command)
        return flat


def _commit(
    cluster: Cluster, key: str, version_key: str, version: str, state: bytes, writes: Writes
) -> bool:
    """Store a DAG instance's new state with ``writes`` if ``version`` is current."""
    script = cluster.script(_COMMIT)
    return bool(script(keys=[key, version_key], args=[version, state, *writes.arguments()]))


@dataclass
class Progress:
    """A committed state-machine step and the state it produced."""

    machine: DagRun
    state: dict[str, Any]
    step: Step
    jobs: list[str] = field(default_factory=list)  # outbox entries of the ready tasks
    #: The committed state and its version: the next transition of the same job starts
    #: from it instead of reading it again (and reads again only if someone else wrote).
    snapshot: tuple[bytes, str] = (b"", "0")
    #: Values of the extra keys read with the state (``reads`` of :func:`advance`).
    values: dict[str, Any] = field(default_factory=dict)
    #: Whether the commit queued META entries (see :class:`MetaWriter`).
    meta: bool = False


def advance(
    cluster: Cluster,
    run_id: str,
    instance: str,
    event: Callable[[DagRun, dict[str, Any]], Step | None],
    *,
    outputs: Mapping[str, bytes] | None = None,
    also: Callable[[Writes], None] | None = None,
    reads: Iterable[str] = (),
    snapshot: tuple[bytes, str] | None = None,
) -> Progress | None:
    """Apply ``event`` to the instance's machine and commit it (compare-and-set).

    ``event`` returns ``None`` to change nothing. Skipped tasks pass their input on,
    so their outputs are composed and stored in the same commit; ready tasks get fresh
    attempt ids. ``outputs`` (key -> pickled output) are written with the transition,
    so no successor can be sent before its input exists, and skipped successors read
    them; ``also`` may add further writes to the commit. ``reads`` are read in the same
    round trip as the state (see :attr:`Progress.values`); with a ``snapshot`` of a
    previous commit the first try reads nothing.
    """
    key = rs.run_key(run_id, "dag", instance)
    version_key = rs.run_key(run_id, "dagv", instance)
    extra = list(reads)
    values: dict[str, Any] = {}
    while True:
        if snapshot is None:
            pipe = cluster.redis.pipeline(transaction=True)
            pipe.get(key)
            pipe.get(version_key)
            for name in extra:
                pipe.get(name)
            raw, version, *fetched = pipe.execute()
            values.update(zip(extra, fetched, strict=True))
            extra = []
            if raw is None:
                raise LightflowError(f"run {run_id} has no DAG instance '{instance}'")
            current = (raw, rs.text(version) if version is not None else "0")
        else:
            current, snapshot = snapshot, None
        state = rs.load_dag_state(current[0])
        plan = cluster.plan(run_id, instance, state["dag"])
        machine = DagRun.from_dict(plan.spec, state["machine"])
        step = event(machine, state)
        if step is None:
            return None
        writes = Writes()
        written: dict[str, bytes] = dict(outputs or {})
        for out_key, blob in written.items():
            writes.set(out_key, blob)
        for task in step.skipped:
            blobs = {
                name: written.get(name) or cluster.redis.get(name)
                for name in input_keys(run_id, instance, machine.spec, task)
            }
            data = compose(run_id, instance, machine, task, blobs)
            consume(state, machine.inputs_of(task))
            if machine.spec.successors[task]:
                data.flatten(in_place=True)
                out_key = rs.run_key(run_id, "out", instance, task)
                written[out_key] = cloudpickle.dumps(data)
                writes.set(out_key, written[out_key])
        jobs = []
        for task in step.ready:
            state["attempts"][task] = attempt = uuid.uuid4().hex
            jobs.append(job_entry(TASK_JOB, (run_id, instance, task, attempt), plan.queues[task]))
        state["machine"] = machine.to_dict()
        consumed = [n for n, count in state["unconsumed"].items() if count <= 0]
        for name in consumed:
            del state["unconsumed"][name]
            writes.delete(rs.run_key(run_id, "out", instance, name))
        if also is not None:
            also(writes)
        _record_step(cluster, run_id, instance, machine, state, step, writes)
        add_to_outbox(writes, jobs)
        encoded = rs.dump_dag_state(state)
        if _commit(cluster, key, version_key, current[1], encoded, writes):
            snapshot = (encoded, str(int(current[1]) + 1))
            return Progress(machine, state, step, jobs, snapshot, values, writes.meta)


def _record_step(
    cluster: Cluster,
    run_id: str,
    instance: str,
    machine: DagRun,
    state: dict[str, Any],
    step: Step,
    writes: Writes,
) -> None:
    """Add what a step tells observers to its commit: events and META entries.

    Events of skipped and cancelled tasks and of the DAG's end, and the DAG's outcome in
    the run's list of instances, are published by the commit that decides them, so no
    observer sees the run end before them and a crash cannot separate them from it.
    """
    if not (step.skipped or step.cancelled or step.done):
        return
    events: list[RunEvent] = []
    record = cluster.recorder(run_id, cluster.workflow_name(run_id), events, deferred=True)
    for task in step.skipped:
        record.task_not_run(instance, task, TaskState.SKIPPED.value)
    for task in step.cancelled:
        record.task_not_run(instance, task, TaskState.CANCELLED.value)
    if step.done:
        outcome = (machine.outcome or Outcome.STOPPED).value
        record.dag_finished(instance, outcome, started_at=state["created"])
        writes.hset(rs.run_key(run_id, "dags"), instance, outcome)
        writes.publish(rs.run_key(run_id, "dagdone"), instance)
    queue_events(writes, run_id, events)
    queue_meta(writes, run_id, record.take())


def consume(state: dict[str, Any], predecessors: tuple[tuple[str, str | None], ...]) -> None:
    names = [name for name, _slot in predecessors] or [START]
    for name in names:
        if name in state["unconsumed"]:
            state["unconsumed"][name] -= 1


def input_keys(run_id: str, instance: str, spec: DagSpec, task: str) -> list[str]:
    """The keys of the stored outputs a task's input is composed from."""
    names = [name for name, _slot in spec.predecessors[task]] or [START]
    return [rs.run_key(run_id, "out", instance, name) for name in names]


def compose(
    run_id: str, instance: str, machine: DagRun, task: str, blobs: Mapping[str, Any]
) -> MultiTaskData:
    """A task's input from the stored outputs of its predecessors (``blobs`` by key)."""
    predecessors = machine.inputs_of(task)
    if not predecessors:
        blob = blobs.get(rs.run_key(run_id, "out", instance, START))
        return initial_data(None) if blob is None else cloudpickle.loads(blob)
    outputs: dict[str, MultiTaskData] = {}
    for name, _slot in predecessors:
        blob = blobs.get(rs.run_key(run_id, "out", instance, name))
        if blob is None:
            raise LightflowError(
                f"the output of task '{name}' in DAG '{instance}' is missing from the "
                "state server; was the Redis server restarted?"
            )
        outputs[name] = cloudpickle.loads(blob)
    # Each blob was unpickled for this task alone: hand every dataset over uncopied.
    return compose_input(predecessors, outputs, handed_over=set(outputs))


def queue_events(pipe: Any, run_id: str, events: list[RunEvent]) -> None:
    """Queue run events on a pipeline (or a commit's writes)."""
    for event in events:
        rs.publish_event(pipe, run_id, event.to_dict())


def queue_meta(writes: Writes, run_id: str, values: dict[str, Any]) -> None:
    """Queue META values (dot-notation keys) for the store with a commit."""
    if values:
        writes.rpush(rs.run_key(run_id, "meta"), pickle.dumps(values))
        writes.meta = True
