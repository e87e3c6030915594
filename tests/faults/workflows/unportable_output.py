"""A task passes on what `what` names: a lock, a generator, or a 100 MB numpy array.

The first two cannot be pickled, so they cannot go to a worker on a cluster;
`lightflow run` refuses them too. `start=yes` hands the value to start_dag instead.
"""

import threading

import numpy as np
from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters(
    [
        Option("what", default="lock"),
        Option("start", default=False, type=bool),
    ]
)


def value(what):
    if what == "lock":
        return threading.Lock()
    if what == "generator":
        return (frame for frame in range(3))
    return np.ones(100 * 1024 * 1024 // 8)  # 100 MB


def produce(data, store, signal, context):
    payload = value(store.get("what"))
    if store.get("start"):
        signal.start_dag("analysis", data={"results": [1, {"guard": payload}]})
    else:
        data["guard"] = payload


def consume(data, store, signal, context):
    print("consumed", type(data.get("guard")).__name__)


def analyse(data, store, signal, context):
    print("analysed", type(data["results"][1]["guard"]).__name__)


main = Dag("main")
main.define({PythonTask("produce", produce): PythonTask("consume", consume)})

analysis = Dag("analysis", autostart=False)
analysis.define({PythonTask("analyse", analyse): None})
