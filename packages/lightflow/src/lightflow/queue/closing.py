"""Finishing a run: carrying out a committed step and closing the run once every DAG is done."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.dag_run import Outcome
from ..events import EventKind, RunEvent
from . import state as rs
from .cluster import Cluster
from .instance import Progress, sweep
from .meta import meta_writer, write_meta
from .ready import wake

if TYPE_CHECKING:
    import redis


def carry_out(
    cluster: Cluster, run_id: str, instance: str, progress: Progress, pulling: str | None = None
) -> None:
    """Wake pullers for the ready tasks, have the META entries written, end what ended.

    ``pulling`` is the queue of the task job this process runs, if any (see
    :func:`~lightflow.queue.ready.wake`). A step that halted the instance is followed
    by its sweep (:func:`~lightflow.queue.instance.sweep`), and the run is closed if
    the step ended its last DAG instance.
    """
    wake(cluster, progress.pushed, pulling)
    if progress.meta:
        meta_writer.request(cluster, run_id)
    if progress.step.done:
        finish_workflow(cluster, run_id)
    if progress.sweep is not None:
        swept = sweep(cluster, run_id, instance, progress.sweep)
        if swept is not None:
            carry_out(cluster, run_id, instance, swept, pulling)


def finish_workflow(cluster: Cluster, run_id: str) -> None:
    """Close the run if every DAG instance is done (exactly once)."""
    client = cluster.redis
    outcomes = [rs.text(v) for v in client.hvals(rs.run_key(run_id, "dags"))]
    if "" in outcomes:
        return
    if client.hexists(rs.run_key(run_id), "internal_error"):  # see job_failed
        outcomes.append(Outcome.FAILED.value)
    worst = Outcome.worst(outcomes)
    if claim_run(client, run_id, "running", worst.value):
        close_record(cluster, run_id, worst.value, started=True)


def close_record(cluster: Cluster, run_id: str, outcome: str, *, started: bool) -> None:
    client = cluster.redis
    record = rs.read_run(client, run_id) or {}
    client.hset(rs.run_key(run_id), "ended", rs.now())
    if started:
        write_meta(cluster, run_id, wait=True)  # every entry before the run's own end
        recorder = cluster.recorder(run_id, record.get("workflow", ""))
        recorder.workflow_finished(
            outcome, record.get("error") or None, started_at=record.get("started")
        )
    else:  # stopped while queued: no store document, just the event
        pipe = client.pipeline()
        rs.publish_event(
            pipe,
            run_id,
            RunEvent(
                EventKind.WORKFLOW_FINISHED,
                run_id,
                record.get("workflow", ""),
                rs.now(),
                outcome=outcome,
            ).to_dict(),
        )
        pipe.execute()
    clean_up(cluster, run_id, keep_data=bool(record.get("keep_data")), started=started)


def clean_up(cluster: Cluster, run_id: str, *, keep_data: bool, started: bool) -> None:
    """Drop the bulky per-run keys; keep the record, events and logs for status."""
    client = cluster.redis
    parts = (rs.run_key(run_id, "out", ""), rs.run_key(run_id, "plan", ""))
    keys = [
        key
        for key in map(rs.text, client.scan_iter(match=rs.run_key(run_id, "*"), count=500))
        if key.startswith(parts)
    ]
    keys += [rs.run_key(run_id, "workflow"), rs.run_key(run_id, "meta")]
    client.delete(*keys)
    if started and not keep_data:
        cluster.store.remove(run_id)


def claim_run(client: redis.Redis, run_id: str, expected: str, new: str) -> bool:
    """Atomically move the run's state from ``expected`` to ``new``."""
    script = client.register_script(
        "if redis.call('HGET', KEYS[1], 'state') == ARGV[1] then "
        "redis.call('HSET', KEYS[1], 'state', ARGV[2]) return 1 end return 0"
    )
    return bool(script(keys=[rs.run_key(run_id)], args=[expected, new]))
