"""META entries written to the store in batches, and the store view that reads them.

A transition queues its META values in the run's queue (``lf:run:<id>:meta``) within
its commit; :func:`write_meta` drains the queue into single store updates, one process
at a time, and :class:`MetaWriter` does so from a background thread shortly after a
job asked. A META read from a task writes the queue first (:class:`MetaAwareDocument`).
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, cast

from ..store.base import META
from . import state as rs
from .background import BackgroundWork
from .cluster import Cluster
from .documents import RecordDocument, RunDocument

if TYPE_CHECKING:
    pass

logger = logging.getLogger("lightflow.worker")


META_WAIT = 10.0  # seconds a META read waits at most for another process's batch


class MetaAwareDocument(RunDocument):
    """The ``store`` a task receives on a worker: META reads see every finished record.

    META entries wait in the run's queue for the next batch (see :class:`MetaWriter`),
    but 1.x workflows read their predecessors' entries
    (``log.<dag>.tasks.<task>.duration``). A META read therefore writes the queue out
    first (or waits while another process does).
    """

    def _before_read(self, section: str) -> None:
        if section == META:
            write_meta(self._cluster, self.workflow_id, wait=True)


#: Releases a lock only if this process still holds it (it may have expired).
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
#: Drops the entries a writer has stored, if it still holds the queue (else another
#: writer took over and stores them again: harmless) and extends its hold.
_TRIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('LTRIM', KEYS[2], ARGV[2], -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
META_BATCH = 500  # queued entries merged into one store update at most
#: Milliseconds a writer holds a run's META queue per batch: well below META_WAIT, so a
#: writer that died holding it cannot make a reader or the run's end give up.
META_LOCK_TTL = 5_000


def write_meta(cluster: Cluster, run_id: str, *, wait: bool = False) -> None:
    """Write the run's queued META entries to the store, oldest first, in batches.

    Each commit that records something queues its META values in ``lf:run:<id>:meta``
    (in the commit, so a crash cannot lose them); one process at a time drains the
    queue into single store updates. Without ``wait`` the call returns at once when
    another process is draining: that process looks at the queue again after letting
    go, so nothing queued is left behind. With ``wait`` (a META read, the run's end)
    it returns once the queue is empty, or after :data:`META_WAIT` seconds (the lock
    of a writer that died expires well before).
    """
    client = cluster.redis
    queue, lock = rs.run_key(run_id, "meta"), rs.run_key(run_id, "meta", "lock")
    token = uuid.uuid4().hex
    deadline = time.monotonic() + META_WAIT
    while client.llen(queue):
        if not client.set(lock, token, nx=True, px=META_LOCK_TTL):
            if not wait or time.monotonic() > deadline:
                return
            time.sleep(0.002)
            continue
        try:
            while entries := client.lrange(queue, 0, META_BATCH - 1):
                values: dict[str, Any] = {}
                for entry in cast("list[bytes]", entries):  # the client returns bytes
                    values.update(pickle.loads(entry))
                RecordDocument(cluster, run_id).set_many(values, section=META)
                if not client.eval(_TRIM, 2, lock, queue, token, len(entries), META_LOCK_TTL):
                    break  # held too long: the writer that took over goes on
        finally:
            client.eval(_UNLOCK, 1, lock, token)


class MetaWriter(BackgroundWork):
    """Writes runs' queued META entries from a background thread, a few at a time.

    A finished job asks for its run's queue to be written and returns; the thread
    waits :attr:`DELAY` seconds first, so the entries of tasks that finish close
    together (a fan-out) go to the store in one update instead of one each. A META
    read or the run's end writes the queue at once (:func:`write_meta`).
    """

    DELAY = 0.05
    THREAD_NAME = "lightflow-meta"

    def __init__(self) -> None:
        super().__init__()
        self._due: dict[str, tuple[Cluster, float]] = {}
        self._wake = threading.Condition()

    def request(self, cluster: Cluster, run_id: str) -> None:
        """Have the run's queue written within :attr:`DELAY` seconds."""
        with self._wake:
            self._due.setdefault(run_id, (cluster, time.monotonic() + self.DELAY))
            self._ensure_thread()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due:
                    self._wake.wait()
                now = time.monotonic()
                ready = {run: cluster for run, (cluster, due) in self._due.items() if due <= now}
                if not ready:
                    self._wake.wait(min(due for _cluster, due in self._due.values()) - now)
                    continue
                for run_id in ready:
                    del self._due[run_id]
            for run_id, cluster in ready.items():
                try:
                    write_meta(cluster, run_id)
                except Exception:  # written by the next batch, a META read or the run's end
                    logger.warning("could not write META entries of run %s", run_id, exc_info=True)


meta_writer = MetaWriter()
