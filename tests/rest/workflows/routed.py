"""A task routed to a queue no worker of the REST suite consumes: it stays queued."""

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def step(data, store, signal, context):
    print(f"{context.task_name} done")


d = Dag("main")
d.define({PythonTask("prepare", step): PythonTask("train", step, queue="rest-suite-gpu")})
