"""Finishing a run: carrying out a committed step and closing the run once every DAG is done."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine.dag_run import Outcome
from ..events import EventKind, RunEvent
from ..exceptions import LightflowError
from . import state as rs
from .cluster import Cluster
from .history import archive
from .inputs import START, output_key
from .instance import Progress, queue_events, sweep
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
    wake(cluster, progress.pushed, pulling, progress.handoff)
    if progress.meta:
        meta_writer.request(cluster, run_id)
    if progress.sweep is not None and not progress.step.done:
        swept = sweep(cluster, run_id, instance, progress.sweep)
        if swept is not None:
            carry_out(cluster, run_id, instance, swept, pulling)
    elif progress.sweep is not None:  # ended at once: nothing waits to be swept
        cluster.redis.zrem(rs.OUTBOX, progress.sweep)
    if progress.step.done:
        finish_workflow(cluster, run_id)


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
    """Record a run's end; remove its data unless kept, trim Redis, archive its history.

    The run's own end event is published last, once its data is gone (unless kept)
    and the state server holds nothing else of it: a follower that sees it finds the
    run as it stays. Then its events and log lines move to the store
    (:func:`~lightflow.queue.history.archive`).
    """
    client = cluster.redis
    record = rs.read_run(client, run_id) or {}
    client.hset(rs.run_key(run_id), "ended", rs.now())
    events: list[RunEvent] = []
    name = record.get("workflow", "")
    if started:
        recorder = cluster.recorder(run_id, name, events, deferred=True)
        recorder.workflow_finished(
            outcome, record.get("error") or None, started_at=record.get("started")
        )
        if record.get("keep_data"):
            write_meta(cluster, run_id, wait=True)  # every entry before the run's own end
            recorder.flush()
        else:  # META entries still queued would be written only to go with the data
            cluster.store.remove(run_id)
    else:  # stopped while queued: no store document, just the event
        events.append(
            RunEvent(EventKind.WORKFLOW_FINISHED, run_id, name, rs.now(), outcome=outcome)
        )
    clean_up(cluster, run_id)
    pipe = client.pipeline()
    queue_events(pipe, run_id, events)
    pipe.execute()
    archive(cluster, run_id)


def clean_up(cluster: Cluster, run_id: str) -> None:
    """Drop every key of a finished run but its record, events and log lines.

    The keys are known from the run's DAG instances and their plans, so no pass over
    the whole key space is needed (the prune of finished runs makes one).
    """
    client = cluster.redis
    parts = ("workflow", "arguments", "meta", "dags", "stop", "terminate", "started")
    keys = [rs.run_key(run_id, part) for part in parts]
    keys.append(rs.run_key(run_id, "meta", "lock"))
    for raw in client.hkeys(rs.run_key(run_id, "dags")):
        instance = rs.text(raw)
        keys += [rs.run_key(run_id, part, instance) for part in ("dag", "plan", "stop")]
        keys.append(output_key(run_id, instance, START))
        try:
            plan = cluster.plan(run_id, instance)
        except LightflowError:  # never got its plan: nothing more of it
            continue
        keys += [output_key(run_id, instance, task) for task in plan.spec.order]
        keys += [rs.run_key(run_id, "seq", plan.dag), rs.run_key(run_id, "dagdef", plan.dag)]
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(keys), 500):
        pipe.delete(*keys[start : start + 500])
    pipe.execute()
    cluster.forget(run_id)


def claim_run(client: redis.Redis, run_id: str, expected: str, new: str) -> bool:
    """Atomically move the run's state from ``expected`` to ``new``."""
    script = client.register_script(
        "if redis.call('HGET', KEYS[1], 'state') == ARGV[1] then "
        "redis.call('HSET', KEYS[1], 'state', ARGV[2]) return 1 end return 0"
    )
    return bool(script(keys=[rs.run_key(run_id)], args=[expected, new]))
