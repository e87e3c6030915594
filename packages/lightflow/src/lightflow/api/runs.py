"""Workflow runs for API callers: start, wait, stop, list, inspect, prune.

One surface for both engines: :func:`run_workflow` runs on the embedded engine in this
process; the others work on the distributed engine and refuse without a broker
(:class:`~lightflow.exceptions.NoBrokerError`). Records are plain data (JSON-able).
Stopping a run only touches run state: it never loads the workflow or runs its code,
so any host with the configuration can stop any run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..config import finished_run_retention
from ..exceptions import LightflowError, ParameterError
from ._cluster import cluster, resolve_run_id, with_server_errors
from .workflows import load

if TYPE_CHECKING:
    from ..config import Config
    from ..local.engine import RunResult
    from ..records import EventListener
    from ..store.base import DataStoreDocument
    from ..workflows import Workflow

#: The states of a run that has not ended.
UNFINISHED_STATES = ("queued", "running")
#: Every state a run can be in.
RUN_STATES = ("queued", "running", "succeeded", "failed", "stopped", "aborted")


def parse_arguments(items: Sequence[str]) -> dict[str, str]:
    """Turn ``['key=value', ...]`` into a dict.

    Raises:
        ParameterError: An item has no ``=`` or an empty key, or a key is given twice
            (which value was meant cannot be told, so neither is taken).
    """
    arguments: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(
                f"malformed argument {item!r}: workflow arguments are written key=value"
            )
        if key in arguments:
            raise ParameterError(
                f"parameter '{key}' is given twice ({key}={arguments[key]}, {key}={value}): "
                "give it once"
            )
        arguments[key] = value
    return arguments


def run_workflow(
    name_or_path: str | Workflow,
    arguments: Mapping[str, Any] | None = None,
    *,
    config: Config | None = None,
    workers: int | None = None,
    on_event: EventListener | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Run a workflow to its end on the embedded engine (in this process).

    The workflow and its arguments are validated before anything runs.

    Args:
        name_or_path: A workflow file, a workflow name or a loaded workflow.
        arguments: Values for the workflow's parameters: ``key=value`` text is
            converted by each ``Option``'s type, other objects are passed as they are.
        config: The configuration (workflow and library paths).
        workers: Tasks that may run at once (default: CPU count + 4, at most 32).
        on_event: Called with every run event, for progress display.
        run_id: The run's id (default: a new one).

    Raises:
        LightflowError: The workflow or the arguments are invalid.
    """
    workflow = load(name_or_path, config)
    values: dict[str, Any] = workflow.parameters.consolidate(dict(arguments or {}))
    from ..local.engine import LocalRun
    from ..store.memory import MemoryDataStore

    store = MemoryDataStore()
    return LocalRun(
        workflow, values, store=store, workers=workers, listener=on_event, run_id=run_id
    ).run()


def start_workflow(
    name_or_path: str | Workflow,
    arguments: Mapping[str, Any] | None = None,
    *,
    config: Config,
    queue: str = "workflow",
    keep_data: bool = False,
    run_id: str | None = None,
) -> str:
    """Validate a workflow and its arguments, queue it on the broker, return the run id.

    Nothing is queued when the workflow, the arguments or the queue name are invalid.

    Args:
        name_or_path: A workflow file, a workflow name or a loaded workflow.
        arguments: Values for the workflow's parameters (text is converted by each
            ``Option``'s type; other objects reach the tasks as they are).
        config: The configuration (broker, state server, workflow folders).
        queue: The queue of the workflow job.
        keep_data: Keep the run's store document after it ends.
        run_id: Start the run under this id, once: if a run with this id exists
            already, nothing new is recorded (a run still queued is queued again,
            which its worker drops as a duplicate if the first job arrived). A trigger
            that died between recording a hand-off and starting it repeats the start
            safely this way.

    Raises:
        NoBrokerError: No broker is configured.
        LightflowError: The workflow or the arguments are invalid, ``queue`` is empty,
            or the state server cannot be reached.
    """
    from ..queue.driver import store_settings, submit

    handle = cluster(config)
    if not queue.strip():
        raise LightflowError(
            f"the queue name must not be empty or blank, got {queue!r}: no worker could "
            "consume it, so the run would never start (the default queue is 'workflow')"
        )
    store_settings(config)
    workflow = load(name_or_path, config)
    values: dict[str, Any] = workflow.parameters.consolidate(dict(arguments or {}))
    return with_server_errors(
        config,
        lambda: submit(handle, workflow, values, queue=queue, keep_data=keep_data, run_id=run_id),
    )


def stop_workflows(
    targets: Sequence[str] = (),
    *,
    config: Config,
    grace: float | None = None,
    force: bool = False,
) -> list[str]:
    """Stop runs given by id (a unique prefix will do) or by workflow name.

    With no targets, every unfinished run is stopped. Returns the ids of the runs asked
    to stop: none for a known workflow (in the workflow folders, or of a recorded run)
    that has no queued or running run, or for a run that has already ended. Running
    tasks see ``signal.is_stopped``; nothing more of the runs is queued. The workflow
    is not loaded and none of its code runs (see :func:`lightflow.queue.driver.halt_run`).

    A task still running ``grace`` seconds later (``signal.stop_grace`` by default,
    10 s; none with ``force``) is recorded stopped and its worker terminates its
    process, so a task that ignores ``is_stopped`` cannot keep the run going
    (:mod:`lightflow.queue.termination`). Stopping a run that is stopping again
    shortens its grace period, never lengthens it.

    Raises:
        NoBrokerError: No broker is configured.
        RunNotFoundError: A target is neither a workflow name nor a run id.
        LightflowError: A run id prefix is ambiguous, or a target is empty.
    """
    from ..engine.dag_run import Outcome
    from ..exceptions import RunNotFoundError
    from ..queue.driver import halt_run
    from ..queue.termination import stop_grace, terminate_after
    from ..workflows import find_workflow

    if grace is not None and not grace >= 0:  # NaN too
        raise ParameterError(f"a stop's grace period must be 0 or more seconds, got {grace}")
    grace = 0.0 if force else stop_grace(config) if grace is None else grace
    handle = cluster(config)

    def is_workflow_name(name: str, runs: list[dict[str, Any]]) -> bool:
        """Whether ``name`` names a workflow: of a recorded run, or in the workflow folders."""
        if any(r.get("workflow") == name for r in runs):
            return True
        try:
            found, _ = find_workflow(name, config.workflows)
        except LightflowError:
            return False
        return found == name  # a name, not a file path

    def stop() -> list[str]:
        runs = list_runs(config=config)
        unfinished = [r for r in runs if r["state"] in UNFINISHED_STATES]
        chosen = {r["id"] for r in unfinished} if not targets else set()
        for target in targets:
            if not target.strip():  # an empty prefix would match every run
                raise LightflowError("an empty run id or workflow name names no run to stop")
            by_name = {r["id"] for r in unfinished if r["workflow"] == target}
            if by_name:
                chosen |= by_name
                continue
            try:
                chosen.add(resolve_run_id(handle.redis, target))
            except RunNotFoundError:
                if is_workflow_name(target, runs):
                    continue  # a workflow with nothing queued or running
                raise RunNotFoundError(
                    f"no workflow run with id '{target}' and no workflow named '{target}'; "
                    "`lightflow workflow status` lists the runs, `lightflow workflow list` "
                    "the workflows"
                ) from None
        stopped = []
        for record in unfinished:
            if record["id"] in chosen:
                halt_run(handle, record["id"], Outcome.STOPPED)
                terminate_after(handle, record["id"], grace)
                stopped.append(record["id"])
        return stopped

    return with_server_errors(config, stop)


def list_runs(
    *,
    config: Config,
    state: str | Iterable[str] | None = None,
    workflow: str | None = None,
    since: float | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Records of runs, newest first, filtered and paged.

    Args:
        config: The configuration.
        state: Only runs in this state (or any of these states).
        workflow: Only runs of this workflow (by name).
        since: Only runs created at or after this time (seconds since the epoch).
        limit: At most this many records (``None``: all).
        offset: Skip this many matching records first (paging).

    Returns:
        Run records: ``id``, ``workflow``, ``state``, ``created``, ``started``,
        ``ended`` (seconds since the epoch), ``arguments``, ``queue``, ``keep_data``,
        ``error``, ``failed_dag``/``failed_task``.

    Raises:
        ParameterError: An unknown state, or a negative limit or offset.
    """
    from ..queue import state as rs

    states = _states(state)
    if (limit is not None and limit < 0) or offset < 0:
        raise ParameterError("limit and offset must not be negative")
    client = cluster(config).redis

    def read() -> list[dict[str, Any]]:
        ids = list(rs.iter_runs(client, since=since))
        matched: list[dict[str, Any]] = []
        skipped = 0
        for start in range(0, len(ids), 200):
            for record in rs.read_runs(client, ids[start : start + 200]):
                if states and record.get("state") not in states:
                    continue
                if workflow is not None and record.get("workflow") != workflow:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                matched.append(record)
                if limit is not None and len(matched) >= limit:
                    return matched
        return matched

    return with_server_errors(config, read)


def _states(state: str | Iterable[str] | None) -> set[str]:
    if state is None:
        return set()
    states = {state} if isinstance(state, str) else set(state)
    unknown = sorted(states - set(RUN_STATES))
    if unknown:
        raise ParameterError(
            f"unknown run state '{unknown[0]}'; the states are: {', '.join(RUN_STATES)}"
        )
    return states


def run_status(run_id: str, *, config: Config) -> dict[str, Any]:
    """One run's record with its DAGs and their tasks.

    Returns:
        The run record (see :func:`list_runs`) with ``dags``: DAG instance name ->
        ``{"state", "duration", "tasks"}``, and ``tasks``: task name -> ``{"state",
        "worker", "started", "ended", "duration", "message", "traceback"}`` (the
        ``message`` says why a task failed, stopped or was aborted; ``traceback`` is
        the failed task's own code). While the run is running, a task waiting for a
        worker to take it is ``queued`` with its ``queue``, and a DAG instance whose
        start waits is ``queued`` with its ``queue`` (see :func:`queued_work`).

    Raises:
        RunNotFoundError: No run with that id (a unique id prefix is accepted).
    """
    from ..queue import history
    from ..queue import state as rs
    from ..queue.driver import queued_work as waiting

    handle = cluster(config)
    client = handle.redis

    def read() -> dict[str, Any]:
        full_id = resolve_run_id(client, run_id)
        record = rs.read_run(client, full_id)
        if record is None:  # pruned between the two reads
            from ..exceptions import RunNotFoundError

            raise RunNotFoundError(f"run {full_id} was just pruned")
        dags = _dags(history.read_events(handle, full_id))
        if record.get("state") == "running":
            for work in waiting(handle, full_id):
                if work.dag is None:  # the workflow job (only while the run is queued)
                    continue
                dag = dags.setdefault(work.dag, {"state": "running", "tasks": {}})
                queued = dag if work.task is None else dag["tasks"].setdefault(work.task, {})
                queued.update(state="queued", queue=work.queue)
        record["dags"] = dags
        return record

    return with_server_errors(config, read)


def queued_work(
    run_id: str, *, config: Config, leave_out: Collection[str] = ()
) -> list[dict[str, Any]]:
    """What of a run waits on a queue for a worker to take it.

    Cheap enough to ask every few seconds: it reads none of the run's events, and
    nothing of the tasks routed to the queues left out.

    Args:
        run_id: The run (a unique prefix will do).
        config: The configuration.
        leave_out: Queues not asked about (e.g. the ones live workers consume).

    Returns:
        ``{"queue", "dag", "task"}`` per piece of work: the run's workflow job while
        the run is queued (``dag`` and ``task`` ``None``), a DAG instance that has not
        started (``task`` ``None``), a queued task. Empty once the run has ended.

    Raises:
        RunNotFoundError: No such run.
    """
    from ..queue.driver import queued_work as waiting

    handle = cluster(config)

    def read() -> list[dict[str, Any]]:
        full_id = resolve_run_id(handle.redis, run_id)
        return [
            {"queue": work.queue, "dag": work.dag, "task": work.task}
            for work in waiting(handle, full_id, leave_out=leave_out)
        ]

    return with_server_errors(config, read)


def _dags(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-DAG and per-task states, times and errors from a run's events."""
    dags: dict[str, dict[str, Any]] = {}
    for event in events:
        if not event.get("dag"):
            continue
        dag = dags.setdefault(event["dag"], {"state": "running", "tasks": {}})
        kind = event["kind"]
        if kind == "dag_started":
            dag["started"] = event["time"]
        elif kind == "dag_finished":
            dag["state"], dag["duration"] = event["outcome"], event["duration"]
            dag["ended"] = event["time"]
        elif event.get("task"):
            task = dag["tasks"].setdefault(event["task"], {})
            task["state"] = kind.removeprefix("task_")
            if kind == "task_started":
                task["started"] = event["time"]
            else:
                task["ended"] = event["time"]
            for key in ("duration", "worker", "message", "traceback"):
                if event.get(key) is not None:
                    task[key] = event[key]
    return dags


def wait_for_run(
    run_id: str,
    *,
    config: Config,
    on_event: EventListener | None = None,
    timeout: float | None = None,
) -> RunResult:
    """Follow a run to its end and return how it ended, as :func:`run_workflow` does.

    Args:
        run_id: The run (a unique prefix will do).
        config: The configuration.
        on_event: Also called with every event of the run (past ones first).
        timeout: Give up after this many seconds (the run goes on).

    Raises:
        RunNotFoundError: No such run.
        FollowTimeout: ``timeout`` passed first (the run goes on).
    """
    from ..local.engine import RunResult, TaskRecord
    from .events import follow_events

    ended: dict[tuple[str, str], Any] = {}

    def collect(event: Any) -> None:
        if event.task is not None and event.dag is not None and event.kind.value != "task_started":
            ended[(event.dag, event.task)] = event
        if on_event is not None:
            on_event(event)

    record = follow_events(config=config, run_id=run_id, on_event=collect, timeout=timeout) or {}
    failed_dag = record.get("failed_dag") or None
    failed_task = record.get("failed_task") or None
    failure = ended.get((failed_dag or "", failed_task or ""))
    outcome = str(record.get("state", "unknown"))
    return RunResult(
        workflow_id=record.get("id", run_id),
        workflow=record.get("workflow", "?"),
        outcome=outcome,
        duration=run_duration(record) or 0.0,
        # A run stopped from outside has no error of its own to show.
        error=record.get("error") or ("stop requested" if outcome == "stopped" else None),
        failed_task=failed_task,
        failed_dag=failed_dag,
        traceback=failure.traceback if failure is not None else None,
        tasks=[
            TaskRecord(dag, task, e.kind.value.removeprefix("task_"), e.duration, e.message)
            for (dag, task), e in ended.items()
        ],
    )


def run_duration(record: Mapping[str, Any]) -> float | None:
    """Seconds a run took from start to end (to now while running); ``None`` before
    it started."""
    import time

    started = record.get("started")
    if not started:
        return None
    ended = record.get("ended") or time.time()
    return max(0.0, float(ended) - float(started))


def run_store(run_id: str, *, config: Config) -> DataStoreDocument:
    """The store document of a run (kept with ``--keep-data``), to read its results.

    Raises:
        RunNotFoundError: No such run.
        LightflowError: The store has no document for it; the message says why: the
            run has not started yet, its data was removed when it ended (no
            ``--keep-data``), or the store lost a document it was told to keep.
    """
    from ..queue import state as rs

    handle = cluster(config)

    def record() -> dict[str, Any]:
        full_id = resolve_run_id(handle.redis, run_id)
        return rs.read_run(handle.redis, full_id) or {"id": full_id}

    run = with_server_errors(config, record)
    full_id = run["id"]
    if handle.store.exists(full_id):
        return handle.store.get(full_id)
    if run.get("state") == "queued":
        raise LightflowError(
            f"run {full_id} has not started yet: its store document is made when a worker starts it"
        )
    if run.get("keep_data"):
        raise LightflowError(
            f"run {full_id} was started with --keep-data, but {_store_name(config)} has "
            "no document for it: it was removed there, or the store lost it (a "
            "restart without persistence, another store or database than the workers')"
        )
    raise LightflowError(
        f"run {full_id} kept no data; start it with --keep-data "
        "(`workflow start -k`) to read its store afterwards"
    )


def _store_name(config: Config) -> str:
    """The configured store for a message: ``MongoDB at HOST:PORT, database 'NAME'``."""
    from ..config import redact_url

    settings = config.store
    where = settings.get("uri") or f"{settings.get('host')}:{settings.get('port')}"
    return f"MongoDB at {redact_url(str(where))}, database '{settings.get('database')}'"


#: Characters of a value's ``repr`` that :func:`run_data` shows for a non-JSON value.
REPR_LIMIT = 200


def run_data(
    run_id: str, *, config: Config, key: str | None = None, section: str = "data"
) -> dict[str, Any]:
    """A read-only, JSON-able view of one place in a run's store (kept with ``-k``).

    Args:
        run_id: The run (a unique prefix will do).
        config: The configuration.
        key: A dot-notation key; ``None`` for the section's top level.
        section: ``data`` (what tasks and parameters stored) or ``meta`` (the run's
            1.x records).

    Returns:
        ``{"run", "section", "key", "keys", "value"}``: ``keys`` are the names under
        ``key`` when its value is a mapping (browse with ``key.name``), else empty;
        ``value`` is the value as JSON data when it is that (numbers, text, lists and
        mappings of them), else ``{"type": <type name>, "repr": <its repr, cut at
        REPR_LIMIT characters>}`` (a numpy array, bytes, a set...). At the top level
        ``value`` is ``None``: the section is browsed by its keys.

    Raises:
        RunNotFoundError: No such run.
        NotFoundError: Nothing is stored at ``key``.
        LightflowError: The run kept no data, the section is unknown, or the key is
            malformed.
    """
    from ..exceptions import NotFoundError

    document = run_store(run_id, config=config)
    if section not in ("data", "meta"):
        raise ParameterError(f"unknown store section '{section}': use 'data' or 'meta'")
    names = document.keys(key, section=section)
    value = None
    if key is not None:
        missing = object()
        found = document.get(key, missing, section=section)
        if found is missing:
            raise NotFoundError(
                f"run {document.workflow_id} stores nothing at '{key}' in its {section} section"
            )
        value = None if names else _as_json(found)
    return {
        "run": document.workflow_id,
        "section": section,
        "key": key,
        "keys": names,
        "value": value,
    }


def _as_json(value: Any) -> Any:
    """``value`` if it is JSON data, else its type and (cut) repr."""
    import json

    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
        if len(text) > REPR_LIMIT:
            text = text[: REPR_LIMIT - 1] + "…"
        return {"type": type(value).__name__, "repr": text}
    return value


def prune_runs(
    *, config: Config, older_than: float | None = None, dry_run: bool = False
) -> list[str]:
    """Delete everything the state server holds about runs that ended long enough ago.

    Redis keeps every run's record, events and logs until they are deleted, so a busy
    cluster needs this (workers call it hourly; ``workflow prune`` on demand). Queued
    and running runs are never touched, nor is data kept in the store with
    ``--keep-data``. Returns the ids of the runs pruned (with ``dry_run``: that would
    be), oldest first.

    Args:
        config: The configuration (state server, ``signal.keep_finished_runs``).
        older_than: Seconds since a run ended; default ``signal.keep_finished_runs``.
        dry_run: Delete nothing, only say what would go.

    Raises:
        LightflowError: ``older_than`` is not given and the configured retention is off
            or invalid, or the state server cannot be reached.
    """
    from ..queue import history

    if older_than is None:
        older_than = finished_run_retention(config)
        if older_than is None:
            raise LightflowError(
                "signal.keep_finished_runs is off (0 or null), so there is no age to prune "
                "by: give one, e.g. `lightflow workflow prune --older-than 30d`"
            )
    if older_than < 0:
        raise LightflowError(f"older_than must not be negative, got {older_than:g} s")
    handle = cluster(config)
    return with_server_errors(config, lambda: history.prune(handle, older_than, dry_run=dry_run))
