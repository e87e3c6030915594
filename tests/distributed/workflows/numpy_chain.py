"""Five tasks pass an 8 MiB numpy array along, each adding one."""

import numpy as np
from lightflow.models import Dag
from lightflow.tasks import PythonTask


def make(data, store, signal, context):
    data["frame"] = np.zeros((1024, 1024), dtype=np.float64)  # 8 MiB


def add_one(data, store, signal, context):
    data["frame"] += 1
    store.push("hosts", context.worker_hostname)


def check(data, store, signal, context):
    store.set("total", float(data["frame"].sum()))
    store.set("frame", data["frame"])  # > 1 MiB: lands in GridFS


chain = [PythonTask("make", make)] + [PythonTask(f"add{i}", add_one) for i in range(3)]
chain.append(PythonTask("check", check))
d = Dag("main")
d.define({chain[i]: chain[i + 1] for i in range(len(chain) - 1)})
