"""The three Celery jobs of the distributed engine.

Each is a thin wrapper that hands its arguments to :mod:`lightflow.queue.driver` with
this process's :class:`~lightflow.queue.driver.Cluster`. Jobs are registered on an app
by :func:`register` (called by ``create_app``), never at import time.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from ..exceptions import LightflowError

if TYPE_CHECKING:
    from celery import Celery

    from .driver import Cluster

logger = logging.getLogger("lightflow.worker")


def register(app: Celery) -> None:
    """Register the workflow, DAG and task jobs on ``app``."""
    from . import driver

    clusters: dict[int, Cluster] = {}

    def cluster() -> Cluster:
        # One per process: connections must not be shared across a fork.
        pid = os.getpid()
        if pid not in clusters:
            clusters.clear()
            clusters[pid] = driver.Cluster(app.lightflow_config, app)
        return clusters[pid]

    def guarded(name: str, function, *args) -> None:
        try:
            function(cluster(), *args)
        except LightflowError as error:
            logger.error("%s %s: %s", name, args[0], error)

    @app.task(name=driver.WORKFLOW_JOB, ignore_result=True)
    def workflow_job(run_id: str) -> None:
        guarded("workflow", driver.workflow_job, run_id)

    @app.task(name=driver.DAG_JOB, ignore_result=True)
    def dag_job(run_id: str, instance: str) -> None:
        guarded("dag", driver.dag_job, run_id, instance)

    @app.task(name=driver.TASK_JOB, ignore_result=True)
    def task_job(run_id: str, instance: str, task: str, attempt: str) -> None:
        guarded("task", driver.task_job, run_id, instance, task, attempt)

    app.lightflow_cluster = cluster
