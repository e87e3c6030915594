"""Which worker processes are alive, and the jobs each worker holds.

A task's heartbeat comes from a thread of the process that runs the task, so its
silence proves little: a task holding Python's GIL in a long C call stops it too, and
a timeout on it must leave room for that. A worker's main process (Celery's consumer)
runs no task code, so it answers for its whole worker instead: every third of
``signal.heartbeat_timeout`` it marks itself and each of its pool processes alive in
``lf:alive`` until a deadline one timeout ahead, on the state server's clock (hosts'
clocks do not matter). A sweeper therefore knows a process dead within one timeout of
its death, whether the whole worker was killed or only a pool process:

* a task whose ``lf:running`` entry names a dead process lost its worker
  (:func:`lightflow.queue.recovery.recover_lost_tasks` queues it again);
* a job the dead worker had received (workflow, DAG or task job), running or only
  prefetched, is sent again (:func:`resend_held_jobs`): the main process records each
  job it receives in ``lf:held`` until the job is done, so nothing waits for the
  broker's visibility timeout. Jobs are idempotent, and the broker's own late
  redelivery of the same message finds its work done and is dropped.

A process without a mark (it was not started by ``lightflow worker start``, or its
worker died before marking a pool process it had just forked) is judged by its task's
heartbeat instead. A sweeper judges marks only once its own worker has marked steadily
for a timeout: after a state-server outage every mark has expired, and the live
workers need one interval to mark again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any

from . import state as rs

if TYPE_CHECKING:
    import redis

    from .cluster import Cluster

logger = logging.getLogger("lightflow.worker")

#: ``<host>/<pid>`` -> the deadline (state server's clock) until which it is alive.
ALIVE = "lf:alive"
#: ``<host>/<pid>`` -> when that process's heartbeat thread last beat, after the task
#: entries it holds (its own clock): an entry it stopped beating while it beats on was
#: given up (see :class:`lightflow.queue.recovery.Heartbeats`).
BEATS = "lf:beats"
#: ``<job id>`` -> JSON {worker, job, args, queue, since}: jobs a worker received and
#: has not finished; ``worker`` is its main process.
HELD = "lf:held"
#: Seconds after its deadline a dead process's mark is dropped, and after which a held
#: job of a process without a mark is given up to the broker's own redelivery: its
#: tasks and jobs were handled long before.
FORGET_AFTER = 600.0
#: Seconds a job recorded as held stays so even when Celery does not list it yet: the
#: record is written as the job arrives, a moment before Celery lists it.
_LISTING_DELAY = 1.0

#: Sets the deadline of each process given (ARGV[2:]) to the server's time plus ARGV[1].
_MARK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local deadline = string.format('%.3f', now + tonumber(ARGV[1]))
for i = 2, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], deadline) end
return 0
"""


def process_name(hostname: str, pid: int) -> str:
    """How ``lf:running`` entries and marks name a process: ``<host>/<pid>``."""
    return f"{hostname}/{pid}"


def process_of(name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a :func:`process_name`; ``None`` for a name of another form."""
    host, _slash, pid = name.rpartition("/")
    return (host, int(pid)) if pid.isdigit() else None


class WorkerMarks:
    """A worker's main process: marks its processes alive, records the jobs it holds.

    Args:
        client: The state server.
        hostname: This host's name, as task entries give it.
        timeout: ``signal.heartbeat_timeout``: a mark lasts that long and is renewed
            every third of it.
        jobs_held: The ids of the jobs the worker holds now (received, not finished).
    """

    def __init__(
        self,
        client: redis.Redis,
        hostname: str,
        timeout: float,
        jobs_held: Callable[[], Collection[str]],
    ) -> None:
        self._client = client
        self._hostname = hostname
        self._timeout = timeout
        self._pool_processes: Callable[[], Iterable[int]] = tuple
        self._jobs_held = jobs_held
        self.process = process_name(hostname, os.getpid())
        self._marked: set[str] = set()
        self._recorded: dict[str, float] = {}  # job id -> when recorded (monotonic)
        self._lock = threading.Lock()
        self._steady_since: float | None = None

    def received(self, job_id: str, job: str, args: Iterable[Any], queue: str) -> None:
        """Record a job this worker received, before it runs (Celery's ``task_received``)."""
        entry = {"worker": self.process, "job": job, "args": list(args), "queue": queue}
        self._client.hset(HELD, job_id, json.dumps({**entry, "since": rs.now()}))
        with self._lock:
            self._recorded[job_id] = time.monotonic()

    def start(self, pool_processes: Callable[[], Iterable[int]]) -> None:
        """Mark now and then every third of the timeout, in a thread of this process.

        ``pool_processes`` gives the pids of the worker's pool processes at the time
        (none for a pool that runs jobs in the main process).
        """
        self._pool_processes = pool_processes
        self.mark()
        threading.Thread(target=self._run, name="lightflow-liveness", daemon=True).start()

    @property
    def steady(self) -> bool:
        """Whether this worker has marked without a failure for at least a timeout."""
        since = self._steady_since
        return since is not None and time.monotonic() - since >= self._timeout

    def mark(self) -> None:
        """Renew the marks of this worker's processes; forget the jobs it finished."""
        try:
            processes = [process_name(self._hostname, pid) for pid in self._pool_processes()]
        except Exception:  # the pool is being (re)started: the main process alone
            processes = []
        processes.append(self.process)
        with self._lock:
            listed = self._jobs_held()
            recent = time.monotonic() - _LISTING_DELAY
            done = [
                job for job, since in self._recorded.items() if job not in listed and since < recent
            ]
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.eval(_MARK, 1, ALIVE, self._timeout, *processes)
            if done:
                pipe.hdel(HELD, *done)
            pipe.execute()
        except Exception:
            self._steady_since = None
            raise
        with self._lock:
            for job in done:
                self._recorded.pop(job, None)
        self._marked.update(processes)
        if self._steady_since is None:
            self._steady_since = time.monotonic()

    def withdraw(self) -> None:
        """The worker exits cleanly: drop its marks and its records of held jobs."""
        with self._lock:
            jobs = list(self._recorded)
        pipe = self._client.pipeline(transaction=False)
        if self._marked:
            pipe.hdel(ALIVE, *self._marked)
        if jobs:
            pipe.hdel(HELD, *jobs)
        pipe.execute()

    def _run(self) -> None:
        while True:
            time.sleep(self._timeout / 3)
            try:
                self.mark()
            except Exception as error:  # the state server is away: try again next time
                logger.debug("could not mark this worker alive: %s", error)


@dataclasses.dataclass(frozen=True)
class Verdicts:
    """The marks as a sweeper read them: which processes are dead.

    ``judging`` is false while the sweeper's own worker is not marking steadily (just
    started, or back from a state-server outage): then no marked process is dead.
    """

    deadlines: dict[str, float]
    now: float
    judging: bool

    def dead(self, process: str) -> bool | None:
        """Whether ``process`` is dead; ``None`` if it has no mark (ask its heartbeat)."""
        deadline = self.deadlines.get(process)
        if deadline is None:
            return None
        return self.judging and deadline < self.now


def read_verdicts(client: redis.Redis, judging: bool) -> Verdicts:
    """Read every mark and the server's clock; drop the marks of long-dead processes."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(ALIVE)
    pipe.time()
    marks, (seconds, micros) = pipe.execute()
    now = seconds + micros / 1e6
    deadlines = {rs.text(name): float(deadline) for name, deadline in marks.items()}
    forgotten = [name for name, deadline in deadlines.items() if deadline < now - FORGET_AFTER]
    if forgotten:
        client.hdel(ALIVE, *forgotten)
        client.hdel(BEATS, *forgotten)
    return Verdicts(deadlines, now, judging)


def resend_held_jobs(cluster: Cluster, verdicts: Verdicts) -> list[str]:
    """Send again the jobs that dead workers held; return them (``job(args)``).

    Safe from every worker's sweeper: whoever removes a job's record sends it.
    """
    resent = []
    for raw_id, raw in cluster.redis.hgetall(HELD).items():
        job_id, entry = rs.text(raw_id), json.loads(raw)
        dead = verdicts.dead(entry["worker"])
        if dead is None and rs.now() - entry["since"] > FORGET_AFTER:
            cluster.redis.hdel(HELD, job_id)  # the broker has redelivered it long since
            continue
        if not dead or not cluster.redis.hdel(HELD, job_id):
            continue
        cluster.send(entry["job"], tuple(entry["args"]), entry["queue"])
        resent.append(f"{entry['job']}({', '.join(map(str, entry['args']))})")
    return resent
