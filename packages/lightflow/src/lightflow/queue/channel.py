"""Signals from tasks on workers: start, join and stop DAGs through Redis.

A task's ``start_dag`` calls are counted, and the n-th call of a task in a DAG
instance names the same instance in every attempt of the task
(:class:`~lightflow.queue.instance.StartCall`): a task re-run after its worker died
finds the DAGs its earlier attempt started, and joins them, instead of starting
copies of them. A task waiting in ``join_dags`` does the work of the DAGs it waits
for meanwhile (:mod:`.joining`), so a join finishes at any concurrency.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..engine.dag_run import Outcome
from ..exceptions import SignalError
from ..models.dag import Dag
from ..signal import dag_to_start, stop_dag_reason, stop_workflow_reason
from . import state as rs
from .cluster import Cluster
from .halting import halt_run, stop_instance
from .instance import StartCall, create_instance
from .joining import RunTask, join


class RedisSignalChannel:
    """Signals between tasks and runs across processes and hosts, through Redis.

    ``dag`` and ``task`` are the DAG instance and the task the channel serves (one
    attempt of it: the channel counts its ``start_dag`` calls). ``run_task`` runs the
    tasks a join takes for the DAGs it waits for (:mod:`.joining`): the task job's own
    runner, handed in because the task job is the one that builds the channel.
    """

    def __init__(
        self, cluster: Cluster, run_id: str, dag: str, task: str, *, run_task: RunTask
    ) -> None:
        self._cluster = cluster
        self._run_id = run_id
        self._dag = dag
        self._task = task
        self._run_task = run_task
        self._calls = itertools.count(1)

    def start_dag(self, dag: Dag | str, data: Any, requested_by: str) -> str:
        dag = dag_to_start(dag, self._cluster.workflow(self._run_id))
        if self._cluster.redis.exists(rs.run_key(self._run_id, "stop")):
            raise SignalError("start_dag: the workflow run is stopping")
        call = StartCall(self._dag, self._task, next(self._calls))
        return create_instance(self._cluster, self._run_id, dag, data, call)

    def join_dags(self, names: list[str] | None, requested_by: str) -> bool:
        return join(self._cluster, self._run_id, names, requested_by, self._run_task)

    def stop_dag(self, name: str) -> bool:
        if not self._cluster.redis.hexists(rs.run_key(self._run_id, "dags"), name):
            return False
        stop_instance(self._cluster, self._run_id, name, reason=stop_dag_reason(name, self._dag))
        return True

    def stop_workflow(self, requested_by: str) -> None:
        halt_run(
            self._cluster,
            self._run_id,
            Outcome.STOPPED,
            message=stop_workflow_reason(requested_by),
        )

    def is_stopped(self, dag_name: str) -> bool:
        # Only the instance's flag: the run's own is set before its instances are halted.
        return bool(self._cluster.redis.exists(rs.run_key(self._run_id, "stop", dag_name)))
