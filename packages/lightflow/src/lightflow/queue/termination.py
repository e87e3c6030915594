"""Terminating the processes of tasks that outlive a stop's grace period.

A stop asks running tasks to end: they see ``signal.is_stopped``, a ``BashTask`` kills
its command. A task that ignores it would keep its run ``running`` until it ends on its
own, however long that is. So a stop from outside (``workflow stop``,
:func:`lightflow.api.stop_workflows`) also sets a deadline, the grace period
(``signal.stop_grace``, 10 s by default; none with ``--force``):
:func:`terminate_after` keeps it in ``lf:run:<id>:terminate`` and announces the run on
the channel ``lf:terminations``.

Every worker's main process watches that channel (:class:`TerminationWatch`). At the
deadline, it revokes with ``terminate`` the job of each of *its* pool processes that
still runs a task of the run (by the ``worker`` host/pid of the task's ``lf:running``
entry), through Celery's own remote control: Celery acknowledges the job as revoked (it
is not delivered again), the process gets SIGTERM and the pool starts a new one in its
place. In the process the SIGTERM is a ``SystemExit`` in the task (its ``finally``
blocks and context managers run), and on its way out the process records the task
stopped with the reason (:func:`give_up_reason`, then
:func:`~lightflow.queue.halting.give_up_task`), so the run is recorded stopped at once.
A process still there :data:`KILL_AFTER` seconds later gets SIGKILL, and the sweeper
then finds its task lost (cancelled, its DAG being halted). A BashTask's command goes
with its process (its watchdog kills the command's group).

The main process itself only reads Redis and sends the revoke: work with the store
there could hold a lock (an import's, a client's) at the moment the pool forks a new
process, which would inherit it held and hang.

The watch catches up whenever it (re)subscribes: it reads the deadlines of the runs of
the tasks its processes run, so a message missed during a lost connection costs
nothing. Only pools of processes can be terminated (prefork, Celery's default); a
worker on another pool says so once at start, and a stop then waits for its tasks.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from . import state as rs
from .app import TASK_JOB
from .liveness import process_of

if TYPE_CHECKING:
    from ..config import Config
    from .cluster import Cluster

logger = logging.getLogger("lightflow.worker")

#: Seconds a stop gives running tasks by default (``signal.stop_grace``).
STOP_GRACE = 10.0
#: Seconds a process told to terminate (SIGTERM) has before it is killed (SIGKILL).
KILL_AFTER = 2.0
#: The channel a stop announces its run on (the run id); see :class:`TerminationWatch`.
CHANNEL = "lf:terminations"
#: Longest wait for a message: the watch notices a closed connection at least this often.
_IDLE_WAIT = 30.0

#: Sets the run's deadline (the server's time plus ARGV[1] seconds) unless it has an
#: earlier one, and announces the run (ARGV[2]); only while the run has not ended (its
#: keys go with it, this one would be left behind). The state server's clock, so the
#: hosts' clocks do not matter.
_SET_DEADLINE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'running' then return 0 end
local time = redis.call('TIME')
local deadline = tonumber(time[1]) + tonumber(time[2]) / 1e6 + tonumber(ARGV[1])
local old = redis.call('GET', KEYS[2])
if old and cjson.decode(old).deadline <= deadline then return 0 end
redis.call('SET', KEYS[2], cjson.encode({deadline = deadline, grace = tonumber(ARGV[1])}))
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
"""


def stop_grace(config: Config) -> float:
    """Seconds a stop gives running tasks before their processes are terminated."""
    value = (config.signal or {}).get("stop_grace")
    return STOP_GRACE if value is None else float(value)


def terminate_after(cluster: Cluster, run_id: str, grace: float) -> None:
    """Have the tasks of a stopped run still running ``grace`` seconds from now terminated.

    Call it after the run was halted: a task is given up only once its DAG stopped. A
    deadline already set stays if it is earlier (a ``--force`` after a stop shortens it).
    """
    keys = [rs.run_key(run_id), rs.run_key(run_id, "terminate"), CHANNEL]
    cluster.script(_SET_DEADLINE)(keys=keys, args=[grace, run_id])


def give_up_reason(cluster: Cluster, run_id: str) -> str | None:
    """What the record of a task of ``run_id`` terminated now says; ``None`` if the run
    set no deadline (its process is going down for another reason)."""
    raw = cluster.redis.get(rs.run_key(run_id, "terminate"))
    if raw is None:
        return None
    grace = float(json.loads(raw)["grace"])
    if grace <= 0:
        return (
            "still running when the run was stopped without a grace period; its process "
            "was terminated"
        )
    return f"still running {grace:g} s after the run was stopped; its process was terminated"


class TerminationWatch:
    """A worker's thread that terminates its tasks that outlive a stop's grace period.

    Args:
        cluster: The worker's handles on the servers.
        consumer: Celery's consumer of this worker (its pool and node name).
    """

    THREAD_NAME = "lightflow-terminations"

    def __init__(self, cluster: Cluster, consumer: Any) -> None:
        # Imported here, in the worker's main thread: an import in the watch's thread
        # could hold an import lock while the pool forks (see the module docstring).
        from celery.worker import state as worker_state

        self._cluster = cluster
        self._app = consumer.app
        self._pool = consumer.pool
        self._node = str(consumer.hostname)
        self._host = cluster.hostname
        self._requests = worker_state.active_requests  # the jobs the pool runs now

    @classmethod
    def start(cls, cluster: Cluster, consumer: Any) -> TerminationWatch | None:
        """Start watching for this worker; ``None`` (and a warning) if its pool cannot."""
        watch = cls(cluster, consumer)
        if not watch._processes():
            logger.warning(
                "this worker's pool (%s) cannot terminate a task's process: a stop waits "
                "for the tasks that ignore it; use the prefork pool (the default) for "
                "signal.stop_grace to apply",
                type(consumer.pool).__module__.rpartition(".")[2],
            )
            return None
        threading.Thread(target=watch._run, name=cls.THREAD_NAME, daemon=True).start()
        return watch

    # -- finding what to terminate ---------------------------------------------------------
    def _processes(self) -> set[int]:
        """The pids of this worker's pool processes (none for a pool without processes)."""
        try:
            return {int(pid) for pid in self._pool.info.get("processes") or ()}
        except Exception:  # a pool being restarted: none this time
            return set()

    def _mine(self, raw: bytes | str) -> tuple[dict[str, Any], int] | None:
        """A running task's ``lf:running`` entry and pid, if a process of this worker runs it."""
        entry = json.loads(raw)
        process = process_of(str(entry.get("worker", "")))
        if entry.get("claimed") or process is None or process[0] != self._host:
            return None
        return (entry, process[1]) if process[1] in self._processes() else None

    def _deadlines(self, run_ids: Iterable[str]) -> dict[str, tuple[float, float]]:
        """The runs' (deadline on this host's monotonic clock, grace), where a stop set one."""
        pipe = self._cluster.redis.pipeline(transaction=False)
        pipe.time()
        for run_id in run_ids:
            pipe.get(rs.run_key(run_id, "terminate"))
        (seconds, micros), *values = pipe.execute()
        server_now, here_now = seconds + micros / 1e6, time.monotonic()
        due = {}
        for run_id, raw in zip(run_ids, values, strict=True):
            if raw is not None:
                value = json.loads(raw)
                due[run_id] = (here_now + value["deadline"] - server_now, float(value["grace"]))
        return due

    def _catch_up(self) -> dict[str, tuple[float, float]]:
        """The deadlines of the runs this worker's processes run tasks of."""
        runs = {
            rs.text(field).split("|", 1)[0]
            for field, raw in self._cluster.redis.hgetall(rs.RUNNING).items()
            if self._mine(raw) is not None
        }
        return self._deadlines(sorted(runs))

    def _job_on(self, pid: int) -> str | None:
        """The id of the task job this worker's process ``pid`` runs now, if any."""
        for _try in range(3):
            try:
                requests = list(self._requests)
            except RuntimeError:  # changed by the worker's loop while copied: again
                continue
            for request in requests:
                if request.worker_pid == pid and request.name == TASK_JOB:
                    return str(request.id)
            return None
        return None

    # -- the watch --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                self._watch()
            except RedisError as error:  # reconnect; the catch-up finds what was missed
                logger.debug("termination watch: %s; subscribing again", error)
                time.sleep(1.0)
            except Exception:  # never let a bug end the watch for good
                logger.exception("termination watch failed; starting it again")
                time.sleep(1.0)

    def _watch(self) -> None:
        pubsub = self._cluster.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(CHANNEL)
        try:
            due = self._catch_up()
            while True:
                now = time.monotonic()
                for run_id in [run_id for run_id, (at, _) in due.items() if at <= now]:
                    self._terminate_run(run_id, due.pop(run_id)[1])
                wait = min((at for at, _ in due.values()), default=now + _IDLE_WAIT) - now
                message = pubsub.get_message(timeout=max(0.0, min(wait, _IDLE_WAIT)))
                if message is not None:
                    announced = self._deadlines([rs.text(message["data"])])
                    for run_id, when in announced.items():
                        due[run_id] = min(when, due.get(run_id, when))
        finally:
            pubsub.close()

    def _terminate_run(self, run_id: str, grace: float) -> None:
        """Terminate the processes of this worker that still run tasks of ``run_id``."""
        for field, raw in self._cluster.redis.hscan_iter(rs.RUNNING, match=f"{run_id}|*"):
            mine = self._mine(raw)
            if mine is not None:
                logger.warning(
                    "task %s of run %s is still running %s after the run was stopped: "
                    "terminating its process %d",
                    rs.text(field).split("|", 1)[1].replace("|", "/"),
                    run_id,
                    f"{grace:g} s" if grace > 0 else "(no grace period)",
                    mine[1],
                )
                self._terminate(mine[1])

    def _terminate(self, pid: int) -> None:
        """Revoke the job process ``pid`` runs, terminating it; SIGKILL if it stays."""
        job = self._job_on(pid)
        if job is None:  # the job ended meanwhile: nothing of the task is left to end
            return
        self._app.control.revoke(job, terminate=True, signal="SIGTERM", destination=[self._node])
        timer = threading.Timer(KILL_AFTER, self._kill_if_stuck, (pid,))
        timer.daemon = True
        timer.start()

    def _kill_if_stuck(self, pid: int) -> None:
        """SIGKILL a process that outlived its SIGTERM (a task that caught the SystemExit,
        or stuck in code that never returns to Python), unless it runs another job now."""
        if pid not in self._processes() or not _alive(pid) or self._job_on(pid) is not None:
            return
        logger.warning("process %d outlived its SIGTERM by %g s: killing it", pid, KILL_AFTER)
        try:
            self._pool.terminate_job(pid, signal.SIGKILL)
        except OSError:  # gone meanwhile
            pass


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs: one that exited and is not reaped yet does not."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the process itself
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return text[text.rfind(")") + 2] not in "ZX"
