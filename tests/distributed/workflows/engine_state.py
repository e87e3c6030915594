"""A diamond for driving the distributed engine in-process: first -> left, right -> last."""

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def step(data, store, signal, context):
    data["steps"] = data.get("steps", 0) + 1


first, left, right, last = (PythonTask(name, step) for name in ("first", "left", "right", "last"))
d = Dag("main")
d.define({first: [left, right], left: last, right: last})
