"""Six chained tasks on the default queue: each successor is handed off in-process."""

from itertools import pairwise

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def count(data, store, signal, context):
    data["n"] = data.get("n", 0) + 1
    store.push("seen", data["n"])


tasks = [PythonTask(f"t{i}", count) for i in range(6)]
d = Dag("main")
d.define({**dict(pairwise(tasks)), tasks[-1]: None})
