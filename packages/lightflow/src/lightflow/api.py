"""The public API that the CLI, the REST service and extensions call.

Commands stay thin: they parse input, call a function here, and render the result.
Nothing here prints or exits; errors are :class:`~lightflow.exceptions.LightflowError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigError, LightflowError, ParameterError
from .workflows import Workflow, load_workflow

if TYPE_CHECKING:
    from .config import Config
    from .local.engine import RunResult, TaskRecord
    from .records import EventListener
    from .store.base import DataStoreDocument

__all__ = [
    "RunResult",
    "TaskRecord",
    "finished_run_retention",
    "follow_events",
    "list_runs",
    "list_triggers",
    "load",
    "parse_arguments",
    "parse_duration",
    "prune_runs",
    "run_logs",
    "run_status",
    "run_store",
    "run_workflow",
    "start_workflow",
    "stop_workflows",
    "trigger_kinds",
]


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


_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhdw])\s*", re.IGNORECASE)
_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> float:
    """Seconds in a duration written as a number and a unit: ``90s``, ``30m``, ``12h``, ``7d``.

    The unit is required (``7`` alone could mean seven days as easily as seven
    seconds), except for ``0``, which is zero whatever the unit.

    Raises:
        LightflowError: ``text`` is not such a duration.
    """
    match = _DURATION.fullmatch(text)
    if match is not None:
        return float(match.group(1)) * _SECONDS_PER_UNIT[match.group(2).lower()]
    if text.strip() == "0":
        return 0.0
    raise LightflowError(
        f"'{text}' is not a duration: write a number and a unit (s, m, h, d or w), "
        "e.g. 90s, 30m, 12h or 7d"
    )


def load(name_or_path: str | Workflow, config: Config | None = None) -> Workflow:
    """Load a workflow by file path or by name from the configured workflow paths.

    A :class:`Workflow` already loaded is returned as it is, so a caller that starts
    the same workflow many times (a trigger) loads and checks it once.
    """
    if isinstance(name_or_path, Workflow):
        return name_or_path
    if config is None:
        return load_workflow(name_or_path)
    return load_workflow(name_or_path, config.workflows, config.libraries)


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
    from .local.engine import LocalRun
    from .store.memory import MemoryDataStore

    store = MemoryDataStore()
    return LocalRun(
        workflow, values, store=store, workers=workers, listener=on_event, run_id=run_id
    ).run()


def __getattr__(name: str) -> Any:
    # The embedded engine's result types, imported when first asked for: starting a
    # run on the cluster (`workflow start`, timed from the shell) never needs them.
    if name in ("RunResult", "TaskRecord"):
        from .local import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the distributed engine ----------------------------------------------------------------
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
        LightflowError: The workflow or the arguments are invalid, ``queue`` is empty,
            or the state server cannot be reached.
    """
    from .queue.driver import Cluster, store_settings, submit

    if not queue.strip():
        raise LightflowError(
            f"the queue name must not be empty or blank, got {queue!r}: no worker could "
            "consume it, so the run would never start (the default queue is 'workflow')"
        )
    store_settings(config)
    workflow = load(name_or_path, config)
    values: dict[str, Any] = workflow.parameters.consolidate(dict(arguments or {}))
    return _with_server_errors(
        config,
        lambda: submit(
            Cluster(config), workflow, values, queue=queue, keep_data=keep_data, run_id=run_id
        ),
    )


def stop_workflows(targets: Sequence[str] = (), *, config: Config) -> list[str]:
    """Stop runs given by id (a unique prefix will do) or by workflow name.

    With no targets, every unfinished run is stopped. Returns the ids of the runs asked
    to stop: none for a known workflow (in the workflow folders, or of a recorded run)
    that has no queued or running run, or for a run that has already ended.

    Raises:
        LightflowError: A target is neither a workflow name nor a (unique) run id.
    """
    from .engine.dag_run import Outcome
    from .queue.driver import Cluster, halt_run

    cluster = Cluster(config)

    def is_workflow_name(name: str, runs: list[dict[str, Any]]) -> bool:
        """Whether ``name`` names a workflow: of a recorded run, or in the workflow folders."""
        from .workflows import find_workflow

        if any(r.get("workflow") == name for r in runs):
            return True
        try:
            found, _ = find_workflow(name, config.workflows)
        except LightflowError:
            return False
        return found == name  # a name, not a file path

    def stop() -> list[str]:
        runs = list_runs(config=config, cluster=cluster)
        unfinished = [r for r in runs if r["state"] in ("queued", "running")]
        chosen = {r["id"] for r in unfinished} if not targets else set()
        for target in targets:
            if not target.strip():  # an empty prefix would match every run
                raise LightflowError("an empty run id or workflow name names no run to stop")
            by_name = {r["id"] for r in unfinished if r["workflow"] == target}
            if by_name:
                chosen |= by_name
                continue
            try:
                chosen.add(_resolve_run_id(cluster.redis, target))
            except LightflowError:
                if is_workflow_name(target, runs):
                    continue  # a workflow with nothing queued or running
                if any(r["id"].startswith(target) for r in runs):
                    raise  # an ambiguous run id prefix
                raise LightflowError(
                    f"no workflow run with id '{target}' and no workflow named '{target}'; "
                    "`lightflow workflow status` lists the runs, `lightflow workflow list` "
                    "the workflows"
                ) from None
        stopped = []
        for record in unfinished:
            if record["id"] in chosen:
                halt_run(cluster, record["id"], Outcome.STOPPED)
                stopped.append(record["id"])
        return stopped

    return _with_server_errors(config, stop)


def run_store(run_id: str, *, config: Config) -> DataStoreDocument:
    """The store document of a run (kept with ``--keep-data``), to read its results.

    Raises:
        LightflowError: No such run, or its data was removed when it ended.
    """
    from .queue.driver import Cluster

    cluster = Cluster(config)
    full_id = _with_server_errors(config, lambda: _resolve_run_id(cluster.redis, run_id))
    if not cluster.store.exists(full_id):
        raise LightflowError(
            f"run {full_id} kept no data; start it with --keep-data "
            "(`workflow start -k`) to read its store afterwards"
        )
    return cluster.store.get(full_id)


def list_runs(
    *, config: Config, cluster: Any = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Records of runs, newest first (queued, running and finished)."""
    from .queue import state
    from .queue.driver import Cluster

    client = (cluster or Cluster(config)).redis

    def read() -> list[dict[str, Any]]:
        records = []
        for run_id in state.iter_runs(client):
            record = state.read_run(client, run_id)
            if record is not None:
                records.append(record)
            if limit is not None and len(records) >= limit:
                break
        return records

    return _with_server_errors(config, read)


def finished_run_retention(config: Config) -> float | None:
    """Seconds a finished run is kept (``signal.keep_finished_runs``); ``None``: forever.

    A number is seconds; text is a duration (``7d``); ``0``, ``null`` or ``false`` turn
    automatic pruning off.

    Raises:
        ConfigError: The value is neither, or negative. ``Config.load`` checks a value
            that a file or an override sets with this function, so every command
            refuses a typo; it is checked again where it is read (the worker at start,
            ``workflow prune``) for configurations built otherwise.
    """
    value = config.signal.get("keep_finished_runs")
    if value is None or value is False:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except LightflowError as error:
            raise ConfigError(
                f"signal.keep_finished_runs: {error}; or 0 or null to keep finished runs forever"
            ) from None
    else:
        raise ConfigError(f"signal.keep_finished_runs must be a duration such as 7d, got {value!r}")
    if seconds < 0:
        raise ConfigError(f"signal.keep_finished_runs must not be negative, got {value!r}")
    return seconds or None


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
    from .queue import state
    from .queue.driver import Cluster

    if older_than is None:
        older_than = finished_run_retention(config)
        if older_than is None:
            raise LightflowError(
                "signal.keep_finished_runs is off (0 or null), so there is no age to prune "
                "by: give one, e.g. `lightflow workflow prune --older-than 30d`"
            )
    if older_than < 0:
        raise LightflowError(f"older_than must not be negative, got {older_than:g} s")
    client = Cluster(config).redis
    return _with_server_errors(
        config, lambda: state.prune_finished_runs(client, older_than, dry_run=dry_run)
    )


def run_status(run_id: str, *, config: Config) -> dict[str, Any]:
    """One run's record with per-DAG and per-task states, durations and workers.

    A task's entry also holds its ``message`` (why it failed, stopped or was aborted)
    and, for a failed task, the ``traceback`` of its own code.

    Raises:
        LightflowError: No run with that id (a unique id prefix is accepted).
    """
    from .queue import state
    from .queue.driver import Cluster

    client = Cluster(config).redis

    def read() -> dict[str, Any]:
        full_id = _resolve_run_id(client, run_id)
        record = state.read_run(client, full_id)
        assert record is not None
        dags: dict[str, dict[str, Any]] = {}
        for raw in client.lrange(state.run_key(full_id, "events"), 0, -1):
            event = json.loads(raw)
            if not event.get("dag"):
                continue
            dag = dags.setdefault(event["dag"], {"state": "running", "tasks": {}})
            if event["kind"] == "dag_finished":
                dag["state"], dag["duration"] = event["outcome"], event["duration"]
            elif event.get("task"):
                task = dag["tasks"].setdefault(event["task"], {})
                task["state"] = event["kind"].removeprefix("task_")
                for key in ("duration", "worker", "message", "traceback"):
                    if event.get(key) is not None:
                        task[key] = event[key]
        record["dags"] = dags
        return record

    return _with_server_errors(config, read)


def run_logs(run_id: str, *, config: Config) -> list[str]:
    """The log lines the run's tasks wrote (print and logging), oldest first."""
    from .queue import state
    from .queue.driver import Cluster

    client = Cluster(config).redis

    def read() -> list[str]:
        return state.read_log(client, _resolve_run_id(client, run_id))[0]

    return _with_server_errors(config, read)


def follow_logs(
    run_id: str, *, config: Config, on_line: Callable[[str], None], timeout: float | None = None
) -> dict[str, Any]:
    """Deliver a run's log lines as its tasks write them, until the run has ended.

    The lines written so far come first. Returns the run's final record once it has
    ended and every line of it was delivered (at once for a finished run).

    Raises:
        LightflowError: No such run, or ``timeout`` seconds passed before it ended.
    """
    import time

    from .queue import state
    from .queue.driver import Cluster

    client = Cluster(config).redis
    deadline = None if timeout is None else time.monotonic() + timeout

    def follow() -> dict[str, Any]:
        full_id = _resolve_run_id(client, run_id)
        last = "0-0"
        while True:
            # Read the state first: a task's lines are written before its end, so once
            # the run has ended, the read after it holds every remaining line.
            record = state.read_run(client, full_id) or {}
            ended = record.get("state") in state.FINISHED_STATES
            lines, last = state.read_log(client, full_id, last, block=None if ended else 0.5)
            for line in lines:
                on_line(line)
            if ended and not lines:
                return record
            if deadline is not None and time.monotonic() > deadline:
                raise LightflowError(
                    f"run {full_id} did not end within {timeout:g} s; it goes on: "
                    "`lightflow workflow status` shows it"
                )

    return _with_server_errors(config, follow)


def follow_events(
    *,
    config: Config,
    run_id: str | None = None,
    on_event: EventListener,
    stop_when_finished: bool = True,
    timeout: float | None = None,
) -> dict[str, Any] | None:
    """Deliver live run events (of one run, or all runs) until the run finishes.

    For one run, its past events are replayed first, so nothing is missed between
    ``start_workflow`` and this call. Returns the final run record for one run.

    Raises:
        LightflowError: ``timeout`` seconds passed before the run finished.
    """
    import time

    from .events import EventKind, RunEvent
    from .queue import state
    from .queue.driver import Cluster

    client = Cluster(config).redis

    def to_event(raw: Any) -> RunEvent:
        data = json.loads(raw)
        data["kind"] = EventKind(data["kind"])
        return RunEvent(**data)

    def follow() -> dict[str, Any] | None:
        full_id = _resolve_run_id(client, run_id) if run_id else None
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(state.EVENTS_CHANNEL)  # before reading the history: no gap
        try:
            replayed: set[Any] = set()
            if full_id is not None:
                for raw in client.lrange(state.run_key(full_id, "events"), 0, -1):
                    replayed.add(raw)
                    if deliver(to_event(raw)):
                        return state.read_run(client, full_id)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                if deadline is not None and time.monotonic() > deadline:
                    raise LightflowError(
                        f"run {full_id or ''} did not finish within {timeout:g} s; it goes "
                        "on: `lightflow workflow status` shows it"
                    )
                message = pubsub.get_message(timeout=1.0)
                if message is None or message["data"] in replayed:
                    continue
                event = to_event(message["data"])
                if full_id is None or event.workflow_id == full_id:
                    if deliver(event):
                        return state.read_run(client, full_id) if full_id else None
        finally:
            pubsub.close()

    def deliver(event: RunEvent) -> bool:
        """Hand the event on; True when following should end."""
        on_event(event)
        return (
            stop_when_finished and run_id is not None and event.kind is EventKind.WORKFLOW_FINISHED
        )

    return _with_server_errors(config, follow)


# -- triggers -----------------------------------------------------------------------------
def trigger_kinds() -> list[str]:
    """The kinds of trigger source the installed extensions provide (``folder``, ``pv``)."""
    from .plugins.manager import trigger_sources

    return sorted(trigger_sources())


def list_triggers(*, config: Config, state_dir: Path | None = None) -> list[dict[str, Any]]:
    """Triggers declared in the configuration and those running, with their state.

    A declared trigger that no process runs has state ``not running``; one whose
    process stopped publishing (killed) is ``gone``. The states come from the state
    server with a broker configured, else from the embedded engine's state folder
    (``state_dir``, default :func:`lightflow.triggers.settings.default_state_dir`).
    Each entry holds at least ``name``, ``kind``, ``workflow`` and ``state``; a
    trigger that ran also its counts (``events``, ``runs``, ``folded``...), its
    ``last_run`` and ``error`` (see :meth:`lightflow.triggers.runtime.TriggerRuntime`).

    Raises:
        LightflowError: The state server cannot be reached.
    """
    from .triggers import status
    from .triggers.settings import default_state_dir

    if config.broker_configured:
        from .queue.driver import Cluster

        client = Cluster(config).redis
        states = _with_server_errors(config, lambda: status.RedisStatusBoard(client).read())
    else:
        states = status.FileStatusBoard(state_dir or default_state_dir()).read()
    listed: list[dict[str, Any]] = []
    for name, settings in config.triggers.items():
        entry: dict[str, Any] = {"name": name, "state": "not running"}
        if isinstance(settings, Mapping):
            entry.update(kind=settings.get("source"), workflow=settings.get("workflow"))
        if name in states:
            entry.update(status.describe(states.pop(name)))
        listed.append(entry)
    listed.extend(status.describe(state) for state in states.values())
    return listed


def _resolve_run_id(client: Any, run_id: str) -> str:
    from .queue import state

    if client.exists(state.run_key(run_id)):
        return run_id
    matches = [rid for rid in state.iter_runs(client) if rid.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LightflowError(
            f"no workflow run with id '{run_id}'; `lightflow workflow status` lists the runs"
        )
    raise LightflowError(f"run id prefix '{run_id}' is ambiguous ({len(matches)} runs)")


def check_state_server(config: Config) -> None:
    """Make sure the Redis state server answers (a worker checks before it starts).

    Raises:
        LightflowError: It cannot be reached or refuses the credentials (one line).
    """
    from .queue.driver import Cluster

    _with_server_errors(config, lambda: Cluster(config).redis.ping())


def _with_server_errors(config: Config, action: Callable[[], Any]) -> Any:
    """Turn connection failures to the state server into one-line errors."""
    import redis

    from .config import redact_url
    from .queue.driver import state_url

    where = redact_url(state_url(config))
    try:
        return action()
    except redis.exceptions.AuthenticationError as error:
        raise LightflowError(
            f"the Redis state server at {where} refused the credentials: "
            f"{str(error).rstrip('.')}; check the password in 'signal'"
        ) from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise LightflowError(
            f"cannot reach the Redis state server at {where}: {str(error).rstrip('.')}; "
            "check the 'signal'/'celery.broker_url' settings and that the server runs"
        ) from None
    except redis.exceptions.RedisError as error:
        raise LightflowError(
            f"the Redis state server at {where} failed: {str(error).rstrip('.')}; check "
            "that 'signal'/'celery.broker_url' point at a Redis server"
        ) from None
