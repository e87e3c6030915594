"""Submitting a run from the client: the run record, the pickled workflow, the workflow job."""

from __future__ import annotations

import json
import uuid
from typing import Any

import cloudpickle

from ..config import redact_url
from ..exceptions import LightflowError
from ..workflows import Workflow
from . import state as rs
from .app import DEFAULT_BROKER, WORKFLOW_JOB, WORKFLOW_QUEUE
from .cluster import Cluster
from .publish import publish_job


def submit(
    cluster: Cluster,
    workflow: Workflow,
    arguments: dict[str, Any],
    *,
    queue: str = WORKFLOW_QUEUE,
    keep_data: bool = False,
    run_id: str | None = None,
) -> str:
    """Record a new run and queue its workflow job; return the run id.

    With a ``run_id`` that exists already, nothing is recorded: the run's workflow job
    is queued again if the run is still queued (see :func:`lightflow.api.start_workflow`).

    The arguments are kept twice: as JSON for display (objects that JSON cannot
    carry as their repr) and cloudpickled, so that tasks get the same Python objects
    as on the embedded engine.

    Raises:
        LightflowError: The workflow or an argument cannot be pickled for the workers
            (nothing queued).
    """
    if run_id is not None and cluster.redis.exists(rs.run_key(run_id)):
        if rs.text(cluster.redis.hget(rs.run_key(run_id), "state") or b"") == "queued":
            _publish_workflow_job(cluster, run_id, queue, forget_on_failure=False)
        return run_id
    blob = workflow.pickled()
    values = _pickled_arguments(workflow, arguments)
    run_id = run_id or uuid.uuid4().hex
    created = rs.now()
    pipe = cluster.redis.pipeline()
    pipe.hset(
        rs.run_key(run_id),
        mapping={
            "workflow": workflow.name,
            "state": "queued",
            "created": created,
            "arguments": json.dumps(arguments, default=repr),
            "queue": queue,
            "keep_data": "1" if keep_data else "0",
            "path": str(workflow.path),
        },
    )
    pipe.zadd(rs.RUNS, {run_id: created})
    pipe.set(rs.run_key(run_id, "workflow"), blob)
    pipe.set(rs.run_key(run_id, "arguments"), values)
    pipe.execute()
    _publish_workflow_job(cluster, run_id, queue, forget_on_failure=True)
    return run_id


def _publish_workflow_job(
    cluster: Cluster, run_id: str, queue: str, *, forget_on_failure: bool
) -> None:
    """Queue a run's workflow job; on failure drop the new run's record if asked."""
    try:
        publish_job(cluster.config, WORKFLOW_JOB, (run_id,), queue)
    except Exception as error:  # any publish failure: nothing was queued
        if forget_on_failure:
            cluster.redis.delete(
                rs.run_key(run_id), rs.run_key(run_id, "workflow"), rs.run_key(run_id, "arguments")
            )
            cluster.redis.zrem(rs.RUNS, run_id)
        broker = redact_url(str(cluster.config.celery.get("broker_url", DEFAULT_BROKER)))
        raise LightflowError(
            f"cannot queue the workflow on the broker at {broker}: {error}; nothing was "
            "queued: check celery.broker_url and that the broker runs"
        ) from None


def _pickled_arguments(workflow: Workflow, arguments: dict[str, Any]) -> bytes:
    try:
        return cloudpickle.dumps(arguments)
    except Exception as error:  # a lock, an open file, a connection...
        raise LightflowError(
            f"the arguments of workflow '{workflow.name}' cannot be sent to the workers: "
            f"{type(error).__name__}: {error}; pass values that can be pickled"
        ) from None


def stored_arguments(cluster: Cluster, run_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """A run's arguments as the Python objects it was started with.

    From the run record's JSON for a run recorded before arguments were pickled.
    """
    blob = cluster.redis.get(rs.run_key(run_id, "arguments"))
    if blob is None:
        return dict(record["arguments"])
    arguments: dict[str, Any] = cloudpickle.loads(blob)
    return arguments
