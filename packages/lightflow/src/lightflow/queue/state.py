"""Run state in Redis: what lets short, stateless jobs carry a workflow run.

Every key of a run starts with ``lf:run:<id>``. When the run ends, all of them but its
record are dropped and its events and log lines move to the store
(:mod:`lightflow.queue.history`): a finished run keeps about a kilobyte here.

``lf:run:<id>`` (hash)
    The run record: workflow name, state (queued, running, succeeded, failed, stopped,
    aborted), arguments (JSON, for display), created/started/ended times, error,
    failed DAG/task, queue, keep_data, the workflow file's path; and, once its history
    was archived, how much of it (``archived_events``, ``archived_logs``, left out of
    :func:`read_run`). ``lf:runs`` (sorted set, by creation time) lists every run.
``lf:run:<id>:workflow`` and ``lf:run:<id>:arguments``
    The cloudpickled :class:`~lightflow.workflows.Workflow` (DAGs and tasks), so workers
    need no copy of the workflow file, and the cloudpickled arguments: tasks get the
    objects the run was started with.
``lf:run:<id>:dag:<instance>`` (hash)
    One DAG instance's state, a field per task (state, attempt id, the tally of its
    predecessors' verdicts; a failed task's error; how many successors consumed its
    output) and the instance's own (halt reason, started, open tasks, DAG name,
    creation time): see :mod:`lightflow.queue.dag_state`. A transition reads only the
    fields it touches and commits by compare-and-set on them (one Lua script that
    also applies the transition's other writes), so a killed worker never leaves a
    lock behind.
``lf:run:<id>:plan:<instance>``
    The instance's plan: the DAG's shape, name and queues, as plain data (pickled),
    so that stopping a run needs none of its code.
``lf:run:<id>:dags`` (hash)
    Instance name -> outcome ('' while running); the list join_dags and the workflow
    completion check read. ``lf:run:<id>:seq:<dag>`` counts copies of a DAG,
    ``lf:run:<id>:started`` (hash) names the instance each ``start_dag`` call of a task
    created (``[instance, task, n, dag]`` -> instance, so a re-run finds it), and
    ``lf:run:<id>:dagdef:<dag>`` holds a DAG passed to ``start_dag`` that is not one
    of the workflow's (cloudpickled).
``lf:run:<id>:out:<instance>:<task>``
    A finished task's output, kept only while a successor still waits for it.
``lf:run:<id>:stop`` / ``lf:run:<id>:stop:<instance>``
    Stop flags read by ``signal.is_stopped``.
``lf:run:<id>:terminate`` and the channel ``lf:terminations``
    A stop's deadline (JSON {deadline, grace}, the state server's clock), after which
    the tasks of the run still running have their processes terminated; the channel
    announces the run to the workers (see :mod:`lightflow.queue.termination`).
``lf:run:<id>:meta`` (list) and ``lf:run:<id>:meta:lock``
    META values (pickled dicts of dot-notation keys) queued by commits for the store,
    and the lock of the one process writing them out.
``lf:run:<id>:events`` (list) and ``lf:eventlog`` (stream)
    The run's event history (JSON RunEvents; from position ``archived_events`` on,
    once archived), and the live stream of every run's
    events (fields ``run`` and ``event``), capped at about :data:`EVENT_LOG_KEPT`
    entries: followers read on from the last entry they saw, so a client that
    reconnects with it (``Last-Event-ID``) misses nothing.
``lf:run:<id>:logs`` (stream)
    Log lines of the run's tasks (field ``line``), in the order they were written;
    the newest :data:`LOG_LINES_KEPT` (about) are kept. A stream, so a follower
    (``workflow logs --follow``) reads on from the last entry it saw, trimming or not.
``lf:ready:<queue>`` (list), ``lf:readyqueues`` (set) and ``lf:woken:<queue>``
    The ready tasks of a queue, oldest first (JSON [run, instance, task, attempt,
    time, the task's field]), which task jobs take one by one (see
    :mod:`lightflow.queue.ready`); the queues that have such a list; and a marker,
    living one heartbeat timeout, of the last task job a sweeper sent to a queue whose
    ready tasks waited too long.
``lf:running`` (hash)
    ``<id>|<instance>|<task>`` -> JSON {attempt, worker, heartbeat, queue, ...}: tasks
    running now, or claimed by a process that will run them next. Workers refresh the
    heartbeat; a sweeper re-dispatches the tasks of dead workers.
``lf:workers`` (set) and ``lf:worker:<name>`` (hash)
    The workers, each keeping its own entry: pid, queues, concurrency, state
    (``running``, ``stopping``) and heartbeat. ``worker status`` lists a stopping
    worker from here, since a worker on its way out no longer answers control
    messages; an entry whose heartbeat is older than the heartbeat timeout is stale.
``lf:alive``, ``lf:beats`` and ``lf:held`` (hashes)
    ``<host>/<pid>`` -> the deadline (state server's clock) until which a worker's main
    process vouches for that process; ``<host>/<pid>`` -> the last round of that
    process's heartbeat thread; and ``<job id>`` -> JSON {worker, job, args, queue,
    since}: the jobs a worker received and has not finished. A sweeper re-queues the
    tasks of a process whose deadline passed (or that gave them up) and sends its
    worker's jobs again (see :mod:`lightflow.queue.liveness`).
``lf:outbox`` (sorted set, by time)
    DAG jobs committed by a state transition and not yet sent (a new DAG instance's
    start, the sweep of a halted one); cleared once sent or done. The sweeper sends
    entries left behind by a worker that died in between.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import redis

T = TypeVar("T")

RUNS = "lf:runs"
RUNNING = "lf:running"
WORKERS = "lf:workers"
OUTBOX = "lf:outbox"
EVENT_LOG = "lf:eventlog"
EVENT_LOG_KEPT = 100_000
LOG_LINES_KEPT = 10_000


def run_key(run_id: str, *parts: str) -> str:
    """The Redis key of a run or of one of its parts."""
    return ":".join(("lf:run", run_id, *parts))


def worker_key(name: str) -> str:
    """The key of a worker's own entry (see ``lf:worker:<name>``)."""
    return f"lf:worker:{name}"


def running_field(run_id: str, instance: str, task: str) -> str:
    """The field of a running task in the ``lf:running`` hash."""
    return f"{run_id}|{instance}|{task}"


def connect(url: str) -> redis.Redis:
    """Open a Redis client for the state server (``rediss://`` for TLS)."""
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def server_errors(url: str, action: Callable[[], T]) -> T:
    """Run ``action`` against the state server at ``url``; its failures become one line.

    Raises:
        StateServerError: The server cannot be reached, refuses the credentials, or
            failed (the URL in the message has its password hidden).
    """
    import redis

    from ..config import redact_url
    from ..exceptions import StateServerError

    where = redact_url(url)
    try:
        return action()
    except redis.exceptions.AuthenticationError as error:
        raise StateServerError(
            f"the Redis state server at {where} refused the credentials: "
            f"{str(error).rstrip('.')}; check the password in 'signal'"
        ) from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise StateServerError(
            f"cannot reach the Redis state server at {where}: {str(error).rstrip('.')}; "
            "check the 'signal'/'celery.broker_url' settings and that the server runs"
        ) from None
    except redis.exceptions.RedisError as error:
        raise StateServerError(
            f"the Redis state server at {where} failed: {str(error).rstrip('.')}; check "
            "that 'signal'/'celery.broker_url' point at a Redis server"
        ) from None


def read_run(client: redis.Redis, run_id: str) -> dict[str, Any] | None:
    """The run record as a dict (arguments decoded), or ``None``."""
    raw = client.hgetall(run_key(run_id))
    return _record(run_id, raw) if raw else None


def read_runs(client: redis.Redis, run_ids: list[str]) -> list[dict[str, Any]]:
    """The records of ``run_ids`` in one round trip (runs no longer there left out)."""
    pipe = client.pipeline(transaction=False)
    for run_id in run_ids:
        pipe.hgetall(run_key(run_id))
    records = []
    for run_id, raw in zip(run_ids, pipe.execute(), strict=True):
        if raw:
            records.append(_record(run_id, raw))
    return records


#: Fields of a run's record that are the engine's own bookkeeping, not the run's facts.
_BOOKKEEPING = ("archived_events", "archived_logs")


def _record(run_id: str, raw: dict[Any, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {text(k): text(v) for k, v in raw.items()}
    for name in _BOOKKEEPING:
        record.pop(name, None)
    record["id"] = run_id
    record["arguments"] = json.loads(record.get("arguments", "{}"))
    record["keep_data"] = record.get("keep_data") == "1"
    for name in ("created", "started", "ended"):
        if record.get(name):
            record[name] = float(record[name])
    return record


def iter_runs(
    client: redis.Redis, newest_first: bool = True, since: float | None = None
) -> Iterator[str]:
    """Ids of every recorded run (created at or after ``since``, if given)."""
    low = "-inf" if since is None else since
    ids = (
        client.zrevrangebyscore(RUNS, "+inf", low)
        if newest_first
        else client.zrangebyscore(RUNS, low, "+inf")
    )
    for raw in ids:
        yield text(raw)


def publish_event(pipe: Any, run_id: str, event: dict[str, Any]) -> None:
    """Append an event to the run's history and to the live stream (on a pipeline)."""
    payload = json.dumps(event, default=str)
    pipe.rpush(run_key(run_id, "events"), payload)
    pipe.xadd(EVENT_LOG, {"run": run_id, "event": payload}, maxlen=EVENT_LOG_KEPT)


def read_events(client: redis.Redis, run_id: str, start: int = 0) -> list[dict[str, Any]]:
    """The run's events from position ``start`` of its history on, oldest first."""
    return [json.loads(raw) for raw in client.lrange(run_key(run_id, "events"), start, -1)]


def event_log_end(client: redis.Redis) -> str:
    """The id of the newest entry of the live stream (``0-0`` if it is empty)."""
    newest: Any = client.xrevrange(EVENT_LOG, count=1)
    return text(newest[0][0]) if newest else "0-0"


def read_event_log(
    client: redis.Redis, after: str, *, block: float | None = None, count: int = 1000
) -> list[tuple[str, str, dict[str, Any]]]:
    """Entries of the live stream after entry ``after``: ``(id, run id, event)``.

    With ``block``, waits up to that many seconds for an entry when there is none yet.
    """
    timeout = None if block is None else max(1, int(block * 1000))
    reply: Any = client.xread({EVENT_LOG: after}, count=count, block=timeout)
    entries = reply[0][1] if reply else []
    return [
        (text(entry), text(fields[b"run"]), json.loads(fields[b"event"]))
        for entry, fields in entries
    ]


def read_log(
    client: redis.Redis, run_id: str, after: str = "0-0", *, block: float | None = None
) -> tuple[list[str], str]:
    """A run's log lines written after entry ``after``, and the last entry's id.

    With ``block``, waits up to that many seconds for a line when there is none yet.
    """
    key = run_key(run_id, "logs")
    timeout = None if block is None else max(1, int(block * 1000))
    reply: Any = client.xread({key: after}, block=timeout)  # [[key, [(id, fields)]]]
    entries = reply[0][1] if reply else []
    lines = [text(fields[b"line"]) for _entry, fields in entries]
    return lines, text(entries[-1][0]) if entries else after


def text(value: Any) -> str:
    """A Redis reply as text (the client returns bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def now() -> float:
    """Wall-clock time in seconds (the one clock all run records use)."""
    return time.time()


# -- retention -----------------------------------------------------------------------------
#: Run states that never change again; only runs in one of them are ever pruned.
FINISHED_STATES = frozenset({"succeeded", "failed", "stopped", "aborted"})
#: Keys deleted per round trip, and records read per round trip, when pruning.
PRUNE_BATCH = 500


def prune_finished_runs(
    client: redis.Redis, older_than: float, *, dry_run: bool = False
) -> list[str]:
    """Delete every key of the runs that ended more than ``older_than`` seconds ago.

    Nothing else ever removes a run, so without this the state server grows with every
    run for good. A run qualifies only when its record says it finished (a state in
    :data:`FINISHED_STATES`) and has an ``ended`` time before the cut-off: queued and
    running runs are never touched. A run ends after it is created, so only runs
    *created* before the cut-off (a range of ``lf:runs``) have their record read.

    The run's keys are found with SCAN (``lf:run:*:*``, one pass for all runs pruned,
    not one per run: a pass walks the whole key space however narrow its pattern) and
    deleted in pipelined batches; so a key that a future version adds under
    ``lf:run:<id>:`` goes too. The records and their ``lf:runs`` entries go last, in
    one transaction per batch, so an interrupted prune leaves every run listed and the
    next prune finishes it.

    Args:
        client: The state server.
        older_than: Seconds since a run ended after which it is pruned.
        dry_run: Only say which runs would be pruned.

    Returns:
        The ids of the runs pruned (or that would be), oldest first.
    """
    cutoff = now() - older_than
    candidates = [text(raw) for raw in client.zrangebyscore(RUNS, "-inf", cutoff)]
    finished: list[str] = []
    for start in range(0, len(candidates), PRUNE_BATCH):
        batch = candidates[start : start + PRUNE_BATCH]
        pipe = client.pipeline(transaction=False)
        for run_id in batch:
            pipe.hmget(run_key(run_id), "state", "ended")
        for run_id, (state, ended) in zip(batch, pipe.execute(), strict=True):
            if state is not None and text(state) in FINISHED_STATES and ended:
                if float(ended) < cutoff:
                    finished.append(run_id)
    if finished and not dry_run:
        delete_runs(client, finished)
    return finished


def delete_runs(client: redis.Redis, run_ids: list[str]) -> None:
    """Delete every key of the runs: parts first, then records and list entries."""
    doomed = set(run_ids)
    prefix = run_key("")  # 'lf:run:'
    parts: list[str] = []
    for raw in client.scan_iter(match=f"{prefix}*:*", count=1000):
        key = text(raw)
        if key[len(prefix) :].partition(":")[0] in doomed:
            parts.append(key)
            if len(parts) >= PRUNE_BATCH:
                _delete_keys(client, parts)
                parts = []
    _delete_keys(client, parts)
    for start in range(0, len(run_ids), PRUNE_BATCH):
        batch = run_ids[start : start + PRUNE_BATCH]
        pipe = client.pipeline(transaction=True)
        pipe.delete(*(run_key(run_id) for run_id in batch))
        pipe.zrem(RUNS, *batch)
        pipe.execute()


def _delete_keys(client: redis.Redis, keys: list[str]) -> None:
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), 100):
        pipe.delete(*keys[start : start + 100])
    pipe.execute()
