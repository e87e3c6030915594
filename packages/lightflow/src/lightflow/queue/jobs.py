"""The three Celery jobs of the distributed engine.

Each is a thin wrapper that hands its arguments to :mod:`lightflow.queue.driver` with
this process's :class:`~lightflow.queue.driver.Cluster`. Jobs are registered on a
worker's app by :func:`register` (called by ``lightflow worker start``), never at
import time; every other app only sends them, by their names in :mod:`.app`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..exceptions import LightflowError
from . import driver
from .app import DAG_JOB, TASK_JOB, WORKFLOW_JOB

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger("lightflow.worker")
#: Seconds a job waits before it goes back to its queue when the state server is
#: unreachable: a worker cut off from it does not spin on the same message.
REQUEUE_DELAY = 2.0


def register(app: Celery) -> None:
    """Register the workflow, DAG and task jobs on ``app``."""
    import redis
    from celery.exceptions import Reject

    clusters: dict[int, driver.Cluster] = {}

    def cluster() -> driver.Cluster:
        # One per process: connections must not be shared across a fork.
        pid = os.getpid()
        if pid not in clusters:
            clusters.clear()
            clusters[pid] = driver.Cluster(app.lightflow_config, app)
        return clusters[pid]

    def guarded(function: Callable[..., None], first: str, *args: str, record: bool = True) -> None:
        """Run a job; an error fails its run (``first``: its id) instead of leaving it running.

        Except when the state server cannot be reached: then nothing can be recorded,
        and acknowledging the job would lose it (the run would wait forever). The job
        goes back to its queue instead, after a pause, for this or another worker. A
        task job records the failures of its tasks itself (``record=False``).
        """
        try:
            function(cluster(), first, *args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
            logger.error(
                "%s %s: cannot reach the Redis state server (%s); the job goes back to "
                "its queue in %g s",
                function.__name__,
                first,
                str(error).rstrip("."),
                REQUEUE_DELAY,
            )
            time.sleep(REQUEUE_DELAY)
            raise Reject(str(error), requeue=True) from None
        except Exception as error:  # recorded in the run, then logged
            if isinstance(error, LightflowError):
                logger.error("%s %s: %s", function.__name__, first, error)
            else:
                logger.exception("%s %s failed", function.__name__, first)
            if not record:
                return
            try:
                driver.job_failed(cluster(), first, error, *args)
            except Exception:  # the state server itself may be gone
                logger.exception("could not record the failure of run %s", first)

    @app.task(name=WORKFLOW_JOB, ignore_result=True)
    def workflow_job(run_id: str) -> None:
        guarded(driver.workflow_job, run_id)

    @app.task(name=DAG_JOB, ignore_result=True)
    def dag_job(run_id: str, instance: str) -> None:
        guarded(driver.dag_job, run_id, instance)

    @app.task(name=TASK_JOB, ignore_result=True)
    def task_job(queue: str) -> None:
        guarded(driver.task_job, queue, record=False)
