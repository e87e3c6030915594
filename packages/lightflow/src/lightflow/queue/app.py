"""The Celery application factory, and the names of the engine's jobs and queues.

No Celery app exists at import time: :func:`create_app` builds one from a
:class:`~lightflow.config.Config`, so tests and tools can hold apps for different
brokers side by side. An app sends jobs by name; only a worker's app runs them, and
the worker registers them on it (:func:`lightflow.queue.jobs.register`). Lightflow's
defaults (late acknowledgement, one prefetched message per process, cloudpickle
messages, no result backend) come first; the ``celery`` section of the config
overrides them and passes any other Celery setting through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models.task import DEFAULT_QUEUE as TASK_QUEUE
from .serializer import NAME as SERIALIZER
from .serializer import register_serializer

if TYPE_CHECKING:
    from celery import Celery

    from ..config import Config

#: The queue of workflow jobs (DAG and task queues default to the models' own).
WORKFLOW_QUEUE = "workflow"
#: The jobs' names, as Celery knows them (see :mod:`lightflow.queue.jobs`).
WORKFLOW_JOB, DAG_JOB, TASK_JOB = "lightflow.workflow", "lightflow.dag", "lightflow.task"
DEFAULT_BROKER = "redis://localhost:6379/0"

DEFAULTS: dict[str, Any] = {
    "task_serializer": SERIALIZER,
    "accept_content": [SERIALIZER],
    "result_accept_content": [SERIALIZER],
    "task_ignore_result": True,
    # A job is acknowledged once it is done, so a killed worker's job is redelivered.
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    # One message reserved per process: long tasks do not hold others hostage.
    "worker_prefetch_multiplier": 1,
    "task_default_queue": TASK_QUEUE,
    "task_create_missing_queues": True,
    # A worker checks the broker before Celery starts (lightflow.queue.broker), so a
    # failure at Celery's own first connection is rare and ends the worker at once
    # (``worker start --wait-for-broker`` turns retrying on). A connection lost
    # later is retried for as long as it takes: a broker restarted after an hour
    # must find its workers still there.
    "broker_connection_retry_on_startup": False,
    "broker_connection_max_retries": None,
    "worker_hijack_root_logger": False,
    "worker_redirect_stdouts_level": "INFO",
    "worker_send_task_events": False,
    # Redis-like brokers re-deliver a message unacknowledged this long (a dead worker's
    # reserved jobs). Duplicates are harmless: a job whose attempt already started is
    # dropped, so the timeout can be short.
    "broker_transport_options": {"visibility_timeout": 60},
}


def create_app(config: Config, *, name: str = "lightflow") -> Celery:
    """Build a Celery app for the configured broker (the jobs are the worker's to register)."""
    from celery import Celery

    register_serializer()
    settings = dict(DEFAULTS)
    settings["broker_url"] = DEFAULT_BROKER
    settings.update(config.celery)
    # Job: acknowledging a job whose broker connection was lost must not kill the
    # worker (see lightflow.queue.acks).
    app = Celery(name, set_as_current=False, task_cls="lightflow.queue.acks:Job")
    app.conf.update(settings)
    app.lightflow_config = config
    return app
