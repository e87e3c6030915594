"""A callback returns 42, neither None nor an Action: Lightflow's own check fails it."""

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def answer(data, store, signal, context):
    data["value"] = 1
    return 42


d = Dag("main")
d.define({PythonTask("answer", answer): None})
