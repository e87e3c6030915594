"""Benchmark: five tasks pass an 8 MiB numpy array along, each adding one.

``make`` creates the array (all ones), three ``add`` tasks add one each and ``check``
adds the last one and fails the run unless every element is 5. The array crosses four
hops, as in the raw Celery chain of ``celery_baseline.py``.
"""

from itertools import pairwise

import numpy as np
from lightflow.models import Dag
from lightflow.tasks import PythonTask

SHAPE = (1024, 1024)  # float64: 8 MiB


def make(data, store, signal, context):
    data["frame"] = np.ones(SHAPE, dtype=np.float64)


def add_one(data, store, signal, context):
    data["frame"] += 1


def check(data, store, signal, context):
    data["frame"] += 1
    if not (data["frame"] == 5).all():
        raise ValueError("the array did not arrive intact")


tasks = [PythonTask("make", make)]
tasks += [PythonTask(f"add{i}", add_one) for i in range(3)]
tasks.append(PythonTask("check", check))
array_chain = Dag("array_chain")
array_chain.define({**dict(pairwise(tasks)), tasks[-1]: None})
