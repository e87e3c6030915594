"""The raw Celery baseline for ``bench_distributed.py``: no-op and array tasks.

A plain Celery app with the settings Lightflow's own app uses where they affect speed
(late acknowledgement, one prefetched message per process) and a Redis result backend.
Messages and results are pickled: JSON cannot carry numpy arrays, and Lightflow
pickles its messages too (cloudpickle).

The broker and backend URLs come from ``BENCH_CELERY_BROKER`` and
``BENCH_CELERY_BACKEND``, so the benchmark can point the worker it starts and its own
client at a private Redis. Start a worker by hand with::

    cd benchmarks && celery -A celery_baseline worker --concurrency 2
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from celery import Celery

SHAPE = (1024, 1024)  # float64: 8 MiB, as in workflows/array_chain.py

app = Celery(
    "celery_baseline",
    broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/2"),
    backend=os.environ.get("BENCH_CELERY_BACKEND", "redis://127.0.0.1:6379/3"),
    set_as_current=False,
)
app.conf.update(
    task_serializer="pickle",
    result_serializer="pickle",
    accept_content=["pickle"],
    result_accept_content=["pickle"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="baseline.noop")
def noop(*_previous: Any) -> None:
    """Does nothing; accepts the previous task's result in a chain or chord."""


@app.task(name="baseline.make")
def make() -> np.ndarray:
    return np.ones(SHAPE, dtype=np.float64)


@app.task(name="baseline.add_one")
def add_one(frame: np.ndarray) -> np.ndarray:
    frame += 1
    return frame


@app.task(name="baseline.check")
def check(frame: np.ndarray) -> float:
    frame += 1
    if not (frame == 5).all():
        raise ValueError("the array did not arrive intact")
    return float(frame.sum())
