"""The outbox: jobs a state transition made due, recorded in its commit until they are sent.

A job that dies between committing a transition and sending the jobs it made ready
would leave those tasks queued with no message. Every transition therefore records its
jobs in ``lf:outbox`` in the same commit; they are removed once sent, and the sweeper
sends entries a dead worker left behind (:func:`resend_unsent_jobs`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import state as rs

if TYPE_CHECKING:
    from .cluster import Cluster


def job_entry(name: str, args: tuple[str, ...], queue: str) -> str:
    """An outbox entry: the job, its arguments and its queue."""
    return json.dumps([name, list(args), queue])


def add_to_outbox(pipe: Any, jobs: list[str]) -> None:
    """Record jobs in the transaction that makes them due (they are sent right after).

    A worker dying between that commit and the send would otherwise leave the jobs
    unsent and the run waiting forever; :func:`resend_unsent_jobs` sends them.
    """
    if jobs:
        pipe.zadd(rs.OUTBOX, dict.fromkeys(jobs, rs.now()))


def send_jobs(cluster: Cluster, jobs: list[str], pipe: Any = None) -> None:
    """Send outbox entries and clear them (on ``pipe``, if given, for its caller to run)."""
    for entry in jobs:
        name, args, queue = json.loads(entry)
        cluster.send(name, tuple(args), queue)
    if jobs:
        (pipe or cluster.redis).zrem(rs.OUTBOX, *jobs)


def resend_unsent_jobs(cluster: Cluster, older_than: float = 10.0) -> list[str]:
    """Send jobs committed more than ``older_than`` seconds ago but never sent.

    Jobs are idempotent (a DAG job starts an instance once, a task job runs only its
    current attempt), so a job that was in fact sent just before its sender died and
    is now sent twice runs once.
    """
    entries = [
        rs.text(entry)
        for entry in cluster.redis.zrangebyscore(rs.OUTBOX, "-inf", rs.now() - older_than)
    ]
    send_jobs(cluster, entries)
    return entries
