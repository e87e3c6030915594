"""The end-to-end suite runs on both brokers: the session's Redis and RabbitMQ clusters.

The clusters themselves (servers, config, workers) are in :mod:`tests.cluster` and
shared with the extensions' suites through ``tests/conftest.py``. The helpers at the
end read a DAG instance's state the way the engine keeps it (see
:mod:`lightflow.queue.dag_state`).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest
from lightflow.queue import state as rs
from lightflow.queue.dag_state import TaskEntry, task_field

from tests.cluster import LIBRARY, WORKFLOWS, Cluster, Worker

__all__ = ["LIBRARY", "WORKFLOWS", "Cluster", "Worker", "attempt_of", "task_states"]


@pytest.fixture(scope="session", params=["redis", "amqp"])
def cluster(request: pytest.FixtureRequest, clusters: Callable[[str], Cluster]) -> Cluster:
    return clusters(request.param)


def task_states(client: Any, run_id: str, instance: str = "main") -> dict[str, str]:
    """Each task's state in a DAG instance, as the state server holds it now."""
    plan = pickle.loads(client.get(rs.run_key(run_id, "plan", instance)))
    order = plan.spec.order
    raw = client.hmget(rs.run_key(run_id, "dag", instance), [task_field(t) for t in order])
    return {task: TaskEntry(value).state.value for task, value in zip(order, raw, strict=True)}


def attempt_of(client: Any, run_id: str, task: str, instance: str = "main") -> str:
    """The id of a task's current attempt."""
    return TaskEntry(client.hget(rs.run_key(run_id, "dag", instance), task_field(task))).attempt
