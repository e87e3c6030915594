"""Fails in its second task, with a traceback of its own code."""

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def prepare(data, store, signal, context):
    data["frames"] = 0


def divide(data, store, signal, context):
    return 1 / data["frames"]


d = Dag("main")
d.define({PythonTask("prepare", prepare): PythonTask("divide", divide)})
