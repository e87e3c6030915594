"""Starting, stopping and inspecting workers.

``lightflow worker start`` runs an ordinary Celery worker on the Lightflow app: by
default it consumes the workflow, dag and task queues, so one worker runs whole
workflows. A worker also

* tags every log line written while a task runs (``print`` included, through Celery's
  stdout redirection) with ``[run/dag/task]`` and keeps it in the run's log, and
* sweeps for tasks whose worker died (no heartbeat) and re-queues them, and sends
  jobs a dead worker committed but never sent, so a run survives a worker killed
  with SIGKILL at any point.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..models.dag import DEFAULT_QUEUE as DAG_QUEUE
from . import driver
from .app import TASK_QUEUE, WORKFLOW_QUEUE, create_app

if TYPE_CHECKING:
    from ..config import Config

DEFAULT_QUEUES = (WORKFLOW_QUEUE, DAG_QUEUE, TASK_QUEUE)
SWEEP_INTERVAL = 5.0
#: Seconds without a heartbeat after which a running task's worker counts as dead
#: (``signal.heartbeat_timeout`` in the config).
HEARTBEAT_TIMEOUT = 15.0

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


def _install_log_filter(logger: logging.Logger | None = None, **_: Any) -> None:
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, TaskTagFilter) for f in handler.filters):
            handler.addFilter(TaskTagFilter())


def _start_sweeper(sender: Any = None, **_: Any) -> None:
    app = sender.app if sender is not None else None
    if app is None:
        return
    cluster = driver.Cluster(app.lightflow_config, app)
    dead_after = float(cluster.config.signal.get("heartbeat_timeout") or HEARTBEAT_TIMEOUT)
    interval = min(SWEEP_INTERVAL, dead_after / 3)

    def sweep() -> None:
        while True:
            time.sleep(interval)
            try:
                for entry in driver.recover_lost_tasks(cluster, dead_after):
                    logger.warning("re-queued task of a dead worker: %s", entry)
                for job in driver.resend_unsent_jobs(cluster, dead_after):
                    logger.warning("sent a job a dead worker committed but never sent: %s", job)
            except Exception as error:
                logger.warning("lost-task sweep failed: %s", error)

    threading.Thread(target=sweep, name="lightflow-sweeper", daemon=True).start()


def start_worker(
    config: Config,
    *,
    queues: Sequence[str] = DEFAULT_QUEUES,
    name: str | None = None,
    celery_args: Sequence[str] = (),
) -> None:
    """Run a worker in this process until it is stopped (blocks)."""
    from celery import signals

    # Workflows import shared code from the configured libraries on workers too (the
    # pool's processes inherit the path).
    for library in reversed(config.libraries):
        if str(library) not in sys.path:
            sys.path.insert(0, str(library))
    app = create_app(config)
    signals.after_setup_logger.connect(_install_log_filter, weak=False)
    signals.worker_process_init.connect(_install_log_filter, weak=False)
    signals.worker_ready.connect(_start_sweeper, weak=False)
    argv = ["worker", "-Q", ",".join(queues), "--loglevel", "INFO"]
    if name:
        argv += ["-n", name]
    app.worker_main([*argv, *celery_args])


def stop_workers(config: Config, names: Sequence[str] = ()) -> list[str]:
    """Ask workers (all, or the named ones) to shut down warm; return their names.

    A worker does not answer a shutdown (it is on its way out), so the live ones are
    found with a ping first and only they are told to stop.
    """
    app = create_app(config)
    replies = app.control.ping(destination=list(names) or None, timeout=2.0)
    alive = [name for reply in replies or [] for name in reply]
    if alive:
        app.control.shutdown(destination=alive)
    return alive


def worker_status(config: Config, timeout: float = 2.0) -> list[dict[str, Any]]:
    """Describe every live worker: name, pid, queues, concurrency, running jobs."""
    app = create_app(config)
    inspect = app.control.inspect(timeout=timeout)
    stats = inspect.stats() or {}
    queues = inspect.active_queues() or {}
    active = inspect.active() or {}
    workers = []
    for name, info in sorted(stats.items()):
        pool = info.get("pool", {})
        workers.append(
            {
                "name": name,
                "pid": info.get("pid"),
                "queues": [q["name"] for q in queues.get(name, [])],
                "concurrency": pool.get("max-concurrency"),
                "running": [
                    {"job": job.get("name"), "args": job.get("args")}
                    for job in active.get(name, [])
                ],
            }
        )
    return workers
