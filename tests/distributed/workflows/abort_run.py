"""A task aborts the workflow; its successor never runs."""

from lightflow.models import AbortWorkflow, Dag
from lightflow.tasks import PythonTask


def check(data, store, signal, context):
    raise AbortWorkflow("shutter closed")


d = Dag("main")
d.define({PythonTask("check", check): PythonTask("never", lambda *args: None)})
