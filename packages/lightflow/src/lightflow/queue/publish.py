"""Sending a job without building a Celery app: the client's one message per run.

``lightflow workflow start`` is timed from the shell (target: 0.35 s), and building a
Celery app costs about 50 ms of imports before the first message. The client sends a
single job, so it speaks Celery's documented task message protocol (version 2)
through kombu directly; workers, which already run Celery, use ``app.send_task``.
The queue and exchange are declared exactly as Celery declares a missing queue (a
direct exchange named like the queue), so either side may create them first.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING, Any

from .broker import broker_connection
from .serializer import NAME as SERIALIZER
from .serializer import register_serializer

if TYPE_CHECKING:
    from ..config import Config


def publish_job(config: Config, job: str, args: tuple[Any, ...], queue: str) -> str:
    """Send one Celery job to ``queue`` on the configured broker; return its id.

    Fails at once (no retries) when the broker cannot be reached, within the connect
    timeout even when the broker's host accepts the connection and then says nothing.
    """
    from kombu import Exchange, Queue

    register_serializer()
    job_id = str(uuid.uuid4())
    headers = {
        "lang": "py",
        "task": job,
        "id": job_id,
        "root_id": job_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "timelimit": [None, None],
        "argsrepr": repr(args),
        "kwargsrepr": "{}",
        "origin": f"{os.getpid()}@{socket.gethostname()}",
        "ignore_result": True,
    }
    body: tuple[Any, ...] = (
        args,
        {},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    )
    exchange = Exchange(queue, type="direct")
    with broker_connection(config, bounded=True) as connection:
        connection.ensure_connection(max_retries=1)
        connection.Producer().publish(
            body,
            exchange=exchange,
            routing_key=queue,
            serializer=SERIALIZER,
            headers=headers,
            correlation_id=job_id,
            delivery_mode=2,
            declare=[Queue(queue, exchange, routing_key=queue)],
            retry=False,
        )
    return job_id
