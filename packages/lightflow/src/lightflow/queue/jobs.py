"""The three Celery jobs of the distributed engine.

Each is a thin wrapper that hands its arguments to :mod:`lightflow.queue.driver` with
this process's :class:`~lightflow.queue.driver.Cluster`. Jobs are registered on an app
by :func:`register` (called by ``create_app``), never at import time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
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

    def guarded(function: Callable[..., None], run_id: str, *args: str) -> None:
        """Run a job; an error fails its task or run instead of leaving it running."""
        try:
            function(cluster(), run_id, *args)
        except Exception as error:  # recorded in the run, then logged
            if isinstance(error, LightflowError):
                logger.error("%s %s: %s", function.__name__, run_id, error)
            else:
                logger.exception("%s %s failed", function.__name__, run_id)
            try:
                driver.job_failed(cluster(), run_id, error, *args)
            except Exception:  # the state server itself may be gone
                logger.exception("could not record the failure of run %s", run_id)

    @app.task(name=driver.WORKFLOW_JOB, ignore_result=True)
    def workflow_job(run_id: str) -> None:
        guarded(driver.workflow_job, run_id)

    @app.task(name=driver.DAG_JOB, ignore_result=True)
    def dag_job(run_id: str, instance: str) -> None:
        guarded(driver.dag_job, run_id, instance)

    @app.task(name=driver.TASK_JOB, ignore_result=True)
    def task_job(run_id: str, instance: str, task: str, attempt: str) -> None:
        guarded(driver.task_job, run_id, instance, task, attempt)
