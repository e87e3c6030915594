"""Starting, stopping and inspecting workers.

``lightflow worker start`` runs an ordinary Celery worker on the Lightflow app: by
default it consumes the workflow, dag and task queues, so one worker runs whole
workflows. A worker also

* applies the ``logging`` section of the config (:mod:`lightflow.log_config`), then
  tags every log line written while a task runs (``print`` included, through Celery's
  stdout redirection) with ``[run/dag/task]`` on every handler, Celery's and the
  section's, and keeps it in the run's log,
* marks itself and its pool processes alive and records the jobs it holds
  (:mod:`lightflow.queue.liveness`), and sweeps for the tasks and jobs of dead workers
  (re-queued or sent again within ``signal.heartbeat_timeout``, 3 s by default) and
  for jobs a dead worker committed but never sent, so a run survives a worker killed
  with SIGKILL at any point, and
* once an hour deletes the runs that finished longer ago than
  ``signal.keep_finished_runs`` (7 days by default), so the state server does not
  grow with every run for good.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click
from redis.exceptions import RedisError

from ..config import finished_run_retention, redact_url
from ..exceptions import LightflowError
from ..models.dag import DEFAULT_QUEUE as DAG_QUEUE
from ..workflows import add_libraries
from . import driver, history, jobs, state
from .app import DAG_JOB, TASK_JOB, TASK_QUEUE, WORKFLOW_JOB, WORKFLOW_QUEUE, create_app
from .broker import check_broker
from .liveness import WorkerMarks, process_of, read_verdicts
from .termination import TerminationWatch

if TYPE_CHECKING:
    from ..config import Config

DEFAULT_QUEUES = (WORKFLOW_QUEUE, DAG_QUEUE, TASK_QUEUE)
SWEEP_INTERVAL = 5.0
#: Seconds after which a worker process that was not marked alive counts as dead, and
#: its tasks and jobs run again (``signal.heartbeat_timeout`` in the config). The mark
#: comes from the worker's main process, which runs no task code, so a busy task
#: never delays it: a short timeout costs no false alarms.
HEARTBEAT_TIMEOUT = 3.0
#: Seconds between two prunes of finished runs by one worker: a prune costs a pass over
#: the state server's keys, and runs are kept for days, so an hour late is no matter.
PRUNE_INTERVAL = 3600.0

logger = logging.getLogger("lightflow.worker")


class TaskTagFilter(logging.Filter):
    """Prefixes records emitted while a task runs and keeps them in the run's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        tag = driver.current_task_tag()
        if tag is not None and not getattr(record, "lightflow_tagged", False):
            run_id, dag, task = tag
            message = record.getMessage()
            driver.keep_log_line(
                f"{time.strftime('%H:%M:%S')} {record.levelname} {dag}/{task}: {message}"
            )
            record.msg, record.args = f"[{run_id[:8]}/{dag}/{task}] {message}", ()
            record.lightflow_tagged = True
        return True


class LineWriter:
    """Hands whole lines to the stream it wraps (Celery's stdout/stderr redirection).

    Celery logs every ``write()`` on a redirected ``sys.stdout`` as a record of its own,
    so ``print('a', 'b')`` became three records and ``print(..., end='')`` half lines.
    Each thread's text is gathered until its newline (or a flush: a task's end
    flushes), so one printed line is one tagged record.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._pending: dict[int, str] = {}

    def write(self, text: str) -> int:
        thread = threading.get_ident()
        *lines, rest = (self._pending.pop(thread, "") + text).split("\n")
        for line in lines:
            self._stream.write(line + "\n")
        if rest:
            self._pending[thread] = rest
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        text = self._pending.pop(threading.get_ident(), "")
        if text:
            self._stream.write(text)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...
        return getattr(self._stream, name)


def _write_whole_lines(**_: Any) -> None:
    """Wrap Celery's redirected stdout and stderr in a :class:`LineWriter` (once)."""
    from celery.utils.log import LoggingProxy

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, LoggingProxy):
            setattr(sys, name, LineWriter(stream))


class _RequeueWithoutTraceback(logging.Filter):
    """Drops the traceback Celery logs with a rejected job.

    Lightflow rejects a job only to send it back to its queue while the state server
    is unreachable, and says so in one line first; Celery's traceback of the
    ``Reject`` would repeat at every try.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from celery.exceptions import Reject

        if record.exc_info and isinstance(record.exc_info[1], Reject):
            record.exc_info = record.exc_text = None
        return True


def _install_log_filter(logger: logging.Logger | None = None, **_: Any) -> None:
    """Put a :class:`TaskTagFilter` on every handler of every logger.

    Those are Celery's (on the root logger, when the ``logging`` section gave it no
    handler of its own) and the section's, wherever it attached them: a record is
    tagged by the first handler that takes it, whichever logger that handler is on.
    """
    # copy() in one step: another thread may make a logger meanwhile
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.copy().values()]
    for each in loggers:
        for handler in getattr(each, "handlers", ()):  # placeholders have none
            if not any(isinstance(f, TaskTagFilter) for f in handler.filters):
                handler.addFilter(TaskTagFilter())


def _heartbeat_timeout(config: Config) -> float:
    """Seconds without a heartbeat after which a task's or worker's entry is stale."""
    return float((config.signal or {}).get("heartbeat_timeout") or HEARTBEAT_TIMEOUT)


def _marks(config: Config, cluster: driver.Cluster) -> WorkerMarks:
    """This worker's marks (see :mod:`lightflow.queue.liveness`): the jobs it holds are
    Celery's requests, received and not finished."""
    from celery.worker import state as held

    return WorkerMarks(
        cluster.redis,
        cluster.hostname,
        _heartbeat_timeout(config),
        lambda: set(held.requests.copy()),  # copy(): one step, as Celery changes it
    )


def _job_received(marks: WorkerMarks, request: Any) -> None:
    """Record a Lightflow job this worker received (``task_received``, main process)."""
    if request is None or request.name not in (WORKFLOW_JOB, DAG_JOB, TASK_JOB):
        return
    try:
        queue = (request.delivery_info or {}).get("routing_key") or ""
        marks.received(request.id, request.name, request.args, queue)
    except Exception as error:  # never stop the consumer; the broker redelivers it later
        logger.warning("could not record job %s as held by this worker: %s", request.id, error)


def _start_sweeper(sender: Any = None, marks: WorkerMarks | None = None, **_: Any) -> None:
    app = sender.app if sender is not None else None
    if app is None:
        return
    cluster = driver.Cluster(app.lightflow_config, app)
    dead_after = _heartbeat_timeout(cluster.config)
    interval = min(SWEEP_INTERVAL, dead_after / 3)
    if marks is not None:
        pool = sender.pool
        try:
            marks.start(lambda: pool.info.get("processes", ()))
        except RedisError as error:  # its thread tries again
            logger.warning("could not mark this worker alive: %s", error)
    try:
        keep_finished = finished_run_retention(cluster.config)
    except Exception as error:  # start_worker checked it; never let this stop the sweeper
        logger.warning("finished runs are not pruned: %s", error)
        keep_finished = None
    # The first sweep prunes: a worker restarted more often than hourly still does.
    next_prune = time.monotonic()
    name = str(getattr(sender, "hostname", "") or "")
    if name:
        _register(cluster, name, sender)

    def sweep() -> None:
        nonlocal next_prune
        while True:
            time.sleep(interval)
            try:
                if name:
                    cluster.redis.hset(state.worker_key(name), "heartbeat", state.now())
                verdicts = read_verdicts(cluster.redis, marks is not None and marks.steady)
                for entry in driver.recover_lost_tasks(cluster, dead_after, verdicts):
                    logger.warning("re-queued task of a dead worker: %s", entry)
                for job in driver.resend_held_jobs(cluster, verdicts):
                    logger.warning("sent again a job a dead worker held: %s", job)
                for job in driver.resend_unsent_jobs(cluster, dead_after):
                    logger.warning("sent a job a dead worker committed but never sent: %s", job)
                for queue in driver.wake_stalled(cluster, dead_after):
                    logger.warning("sent a task job for ready tasks nobody took: %s", queue)
            except Exception as error:
                logger.warning("lost-task sweep failed: %s", error)
            if keep_finished is not None and time.monotonic() >= next_prune:
                # Set before pruning: a failing prune is retried in an hour, not each sweep.
                # Its own thread: the first prune of a long history may take a while,
                # and lost tasks must not wait for it.
                next_prune = time.monotonic() + PRUNE_INTERVAL
                threading.Thread(
                    target=_prune,
                    args=(cluster, keep_finished),
                    name="lightflow-prune",
                    daemon=True,
                ).start()

    threading.Thread(target=sweep, name="lightflow-sweeper", daemon=True).start()


def _watch_terminations(sender: Any = None, **_: Any) -> None:
    """Terminate this worker's tasks that outlive a stop's grace period (:mod:`.termination`)."""
    if sender is not None:
        TerminationWatch.start(driver.Cluster(sender.app.lightflow_config, sender.app), sender)


def _register(cluster: driver.Cluster, name: str, consumer: Any) -> None:
    """Enter this worker in ``lf:workers`` (see :mod:`lightflow.queue.state`)."""
    try:
        queues = [queue.name for queue in consumer.task_consumer.queues]
    except AttributeError:  # no task consumer (yet): the entry simply has none
        queues = []
    controller = getattr(consumer, "controller", None)
    entry: dict[Any, Any] = {  # the client's mapping type is invariant in its keys
        "pid": os.getpid(),
        "queues": ",".join(queues),
        "concurrency": str(getattr(controller, "concurrency", None) or ""),
        "state": "running",
        "heartbeat": state.now(),
    }
    pipe = cluster.redis.pipeline()
    pipe.delete(state.worker_key(name))
    pipe.hset(state.worker_key(name), mapping=entry)
    pipe.sadd(state.WORKERS, name)
    pipe.execute()
    _workers_entries[name] = cluster


#: This process's own registry entries (the main process of a worker has one).
_workers_entries: dict[str, driver.Cluster] = {}


def _mark_stopping(sender: Any = None, **_: Any) -> None:
    """A shutdown began (a signal): the entry says so until the worker exits."""
    cluster = _workers_entries.get(str(sender))
    if cluster is not None:
        with contextlib.suppress(Exception):  # a signal handler must never fail
            cluster.redis.hset(state.worker_key(str(sender)), "state", "stopping")


def _unregister(sender: Any = None, **_: Any) -> None:
    """The worker is done: drop its entry."""
    name = str(getattr(sender, "hostname", "") or "")
    cluster = _workers_entries.pop(name, None)
    if cluster is not None:
        with contextlib.suppress(Exception):  # the state server may be gone by now
            cluster.redis.delete(state.worker_key(name))
            cluster.redis.srem(state.WORKERS, name)


def _withdraw(marks: WorkerMarks) -> None:
    """The worker is done: drop its marks (see :mod:`lightflow.queue.liveness`)."""
    with contextlib.suppress(Exception):  # the state server may be gone by now
        marks.withdraw()


def _registered_workers(config: Config) -> dict[str, dict[str, str]]:
    """The fresh entries of ``lf:workers`` by name; stale ones are removed."""
    client = driver.Cluster(config).redis
    dead_after = _heartbeat_timeout(config)
    names = sorted(state.text(name) for name in client.smembers(state.WORKERS))
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(state.worker_key(name))
    entries = {}
    for name, raw in zip(names, pipe.execute(), strict=True):
        entry = {state.text(k): state.text(v) for k, v in raw.items()}
        if state.now() - float(entry.get("heartbeat") or 0) > dead_after:
            client.srem(state.WORKERS, name)  # killed: it never said goodbye
            client.delete(state.worker_key(name))
            continue
        entries[name] = entry
    return entries


def _prune(cluster: driver.Cluster, keep_finished: float) -> None:
    """Delete runs that finished more than ``keep_finished`` seconds ago; log, never raise."""
    try:
        pruned = history.prune(cluster, keep_finished)
    except Exception as error:
        logger.warning("pruning finished runs failed (next try in an hour): %s", error)
        return
    if pruned:
        logger.info(
            "pruned %d runs that finished more than %g s ago (signal.keep_finished_runs)",
            len(pruned),
            keep_finished,
        )


def start_worker(
    config: Config,
    *,
    queues: Sequence[str] = DEFAULT_QUEUES,
    name: str | None = None,
    celery_args: Sequence[str] = (),
    wait_for_broker: bool = False,
) -> int:
    """Run a worker in this process until it is stopped (blocks); return its exit status.

    The config's ``logging`` section is applied first. Celery then sets up its own
    logging around it: it adds its console handler to the root logger only when the
    section gave that logger none, and sets the root logger's level from
    ``--loglevel`` (INFO unless ``celery_args`` say otherwise).

    Before Celery starts, the state server must answer and the broker must accept
    a connection within ``celery.broker_connection_timeout``: Celery itself would
    retry an unreachable broker for hours and report refused credentials with a
    traceback. With ``wait_for_broker`` the worker waits for the broker instead,
    logging each try. Once running, the worker reconnects after a broker outage of
    any length. A state server that keeps nothing on disk is logged as a warning:
    its restart would lose every run in progress.

    Returns:
        The worker's exit status: 0 after a shutdown it was asked for, non-zero when
        Celery gave up (a service manager must see that as a failure).

    Raises:
        ConfigError: ``signal.keep_finished_runs`` is invalid (checked here, as the
            sweeper would only log it), or the ``logging`` section cannot be applied.
        LightflowError: The Redis state server cannot be reached, or the broker
            cannot be reached (without ``wait_for_broker``) or refused the
            credentials.
    """
    from celery import signals

    from ..log_config import apply_logging

    finished_run_retention(config)
    # A worker cut off from the state server could record nothing of its jobs.
    cluster = driver.Cluster(config)
    state.server_errors(driver.state_url(config), cluster.redis.ping)
    # Before Celery's set-up, so that Celery sees the section's root handlers (and
    # adds none of its own) and redirects print() only after the section's stream
    # handlers took hold of the real stderr.
    apply_logging(config)
    check_broker(config, wait=wait_for_broker)
    _warn_without_persistence(config, cluster)

    # Workflows import shared code from the configured libraries on workers too (the
    # pool's processes inherit the path).
    add_libraries(config.libraries)
    _import_before_fork()
    app = create_app(config)
    jobs.register(app)
    if wait_for_broker:  # it answered just now; should it go away again, keep waiting
        app.conf.broker_connection_retry_on_startup = True
    logging.getLogger("celery.app.trace").addFilter(_RequeueWithoutTraceback())
    signals.after_setup_logger.connect(_install_log_filter, weak=False)
    signals.after_setup_task_logger.connect(_install_log_filter, weak=False)
    signals.worker_process_init.connect(_install_log_filter, weak=False)
    # Pool processes inherit the redirection at the fork; a solo pool runs in the main one.
    signals.worker_process_init.connect(_write_whole_lines, weak=False)
    signals.worker_ready.connect(_write_whole_lines, weak=False)
    marks = _marks(config, cluster)
    signals.task_received.connect(
        lambda sender=None, request=None, **_: _job_received(marks, request), weak=False
    )
    signals.worker_ready.connect(lambda sender=None, **_: _start_sweeper(sender, marks), weak=False)
    signals.worker_ready.connect(_watch_terminations, weak=False)
    signals.worker_shutting_down.connect(_mark_stopping, weak=False)
    signals.worker_shutdown.connect(_unregister, weak=False)
    signals.worker_shutdown.connect(lambda **_: _withdraw(marks), weak=False)
    argv = ["worker", "-Q", ",".join(queues), "--loglevel", "INFO"]
    if name:
        argv += ["-n", name]
    # Celery's app.worker_main() and app.start() drop the worker's exit status (a
    # worker that died of an unrecoverable error exited 0): read it off the worker.
    workers: list[Any] = []
    signals.worker_init.connect(lambda sender=None, **_: workers.append(sender), weak=False)
    try:
        app.start([*argv, *celery_args])
    except click.ClickException as error:  # CELERY_ARGS Celery does not take
        raise LightflowError(f"celery worker: {error.format_message()}") from None
    if not workers:
        return 1
    return int(getattr(workers[-1], "exitcode", None) or 0)


def _import_before_fork() -> None:
    """Import what the main process's threads would otherwise import while it forks.

    The sweeper, the pruner and the termination watch run in threads of the main
    process, which forks a new pool process whenever one ends. A module those threads
    import lazily for the first time (the MongoDB store: pymongo, gridfs) holds its
    import lock during the import; a process forked at that moment inherits the lock
    held by a thread it does not have and hangs for good on its first use of the
    store. Imported here, before any thread or pool process exists, nothing is
    imported later; the pool's processes inherit the modules, loaded once.
    """
    import bson.codec_options  # noqa: F401
    import gridfs.errors  # noqa: F401
    import pymongo.errors  # noqa: F401

    from ..store import archive, mongo  # noqa: F401


def _warn_without_persistence(config: Config, cluster: driver.Cluster) -> None:
    """Log a warning when the Redis state server (or broker) keeps nothing on disk.

    A restart of such a server loses every run in progress and the run history
    without a trace; docs/cluster.md makes ``appendonly yes`` part of the set-up.
    A server that does not let us ask (``CONFIG`` renamed away) is not warned about.
    """
    from urllib.parse import urlsplit

    state_url = driver.state_url(config)
    servers: list[tuple[str, str, Any]] = [("state server", state_url, cluster.redis)]
    broker = str(config.celery.get("broker_url") or "")
    if (
        broker.startswith(("redis://", "rediss://"))
        and urlsplit(broker).netloc != urlsplit(state_url).netloc
    ):
        servers.append(("broker", broker, None))
    for what, url, client in servers:
        try:
            client = client or state.connect(url)
            if client.info("persistence").get("aof_enabled"):
                continue
            snapshots = str(client.config_get("save").get("save") or "").strip()
        except RedisError:
            continue
        kept = f"only snapshots ({snapshots})" if snapshots else "nothing on disk"
        lost = (
            "every queued job"
            if what == "broker"
            else ("every run in progress and the run history")
        )
        logger.warning(
            "the Redis %s at %s keeps %s: a restart loses %s without a trace; turn on "
            "its persistence (appendonly yes), see docs/cluster.md",
            what,
            redact_url(url),
            kept,
            lost,
        )


_MARK_STOPPING = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'state', 'stopping') end
"""


def stop_workers(config: Config, names: Sequence[str] = ()) -> list[str]:
    """Ask workers (all, or the named ones) to shut down warm; return their names.

    A worker does not answer a shutdown (it is on its way out), so the live ones are
    found with a ping first and only they are told to stop.

    Raises:
        BrokerError: The broker cannot be reached within the connect timeout, or it
            refused the credentials (tried once first: Celery would retry).
    """
    check_broker(config)
    app = create_app(config)
    replies = app.control.ping(destination=list(names) or None, timeout=2.0)
    alive = [name for reply in replies or [] for name in reply]
    if alive:
        app.control.shutdown(destination=alive)
        # Busy ones finish their jobs first, answering nothing meanwhile: say so.
        client = driver.Cluster(config).redis
        with contextlib.suppress(RedisError):  # they are stopping all the same
            for name in alive:  # unless it has already exited (and dropped its entry)
                client.eval(_MARK_STOPPING, 1, state.worker_key(name))
    return alive


def _tasks_by_process(config: Config) -> dict[tuple[str, int], list[list[str]]]:
    """The tasks running now, by (host, pid) of the process running them: ``lf:running``.

    Best effort, like the rest of a status: none when the state server cannot say.
    """
    try:
        entries = driver.Cluster(config).redis.hgetall(state.RUNNING)
    except RedisError:
        return {}
    tasks: dict[tuple[str, int], list[list[str]]] = {}
    for raw_field, raw in entries.items():
        beat = json.loads(raw)
        process = process_of(str(beat.get("worker", "")))
        if beat.get("claimed") or process is None:
            continue
        run_id, instance, task = state.text(raw_field).split("|", 2)
        tasks.setdefault(process, []).append([run_id, instance, task, beat["attempt"]])
    return tasks


def _running_jobs(
    name: str, active: list[dict[str, Any]], tasks: dict[tuple[str, int], list[list[str]]]
) -> list[dict[str, Any]]:
    """A worker's jobs now, ``{"job", "args"}``: a task job stands for the tasks its
    process runs, each as ``lightflow.task`` with ``(run id, DAG, task, attempt)``."""
    host = name.rpartition("@")[2]
    running = []
    for job in active:
        if job.get("name") != TASK_JOB:
            running.append({"job": job.get("name"), "args": job.get("args")})
            continue
        for args in tasks.get((host, int(job.get("worker_pid") or 0)), []):
            running.append({"job": TASK_JOB, "args": args})
    return running


def worker_status(config: Config, timeout: float = 2.0) -> list[dict[str, Any]]:
    """Describe every live worker: name, pid, queues, concurrency, running jobs, state.

    The workers that answer are ``running``. A worker that is shutting down answers
    nothing, but its own entry in the state server still lists it, as ``stopping``
    (``running`` jobs unknown: ``None``) until it exits.

    The entries also say how many workers should answer, so the question ends with
    the last answer instead of waiting out ``timeout`` (each of its three rounds).

    Raises:
        BrokerError: The broker cannot be reached within the connect timeout, or it
            refused the credentials (tried once first: Celery would retry).
    """
    # Read first: a stopping worker may exit while the others answer. Best effort: the
    # answers from the broker are the list, the entries only add the stopping workers
    # (and an unreachable broker is the error to report, not the state server).
    try:
        registered = _registered_workers(config)
    except RedisError:
        registered = {}
    expected = sum(entry.get("state") != "stopping" for entry in registered.values())
    check_broker(config)
    app = create_app(config)
    stats = app.control.inspect(timeout=timeout, limit=expected or None).stats() or {}
    inspect = app.control.inspect(list(stats), timeout=timeout, limit=len(stats))
    queues = (inspect.active_queues() or {}) if stats else {}
    active = (inspect.active() or {}) if stats else {}
    tasks = _tasks_by_process(config) if active else {}
    workers = []
    for name, info in sorted(stats.items()):
        pool = info.get("pool", {})
        workers.append(
            {
                "name": name,
                "pid": info.get("pid"),
                "queues": [q["name"] for q in queues.get(name, [])],
                "concurrency": pool.get("max-concurrency"),
                "running": _running_jobs(name, active.get(name, []), tasks),
                "state": "running",
            }
        )
    for name, entry in registered.items():
        if name not in stats:
            workers.append(
                {
                    "name": name,
                    "pid": int(entry["pid"]) if entry.get("pid") else None,
                    "queues": [q for q in entry.get("queues", "").split(",") if q],
                    "concurrency": entry.get("concurrency") or None,
                    "running": None,
                    "state": "stopping" if entry.get("state") == "stopping" else "not answering",
                }
            )
    return workers
