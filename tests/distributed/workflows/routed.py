"""A task routed to the 'special' queue runs on the dedicated worker."""

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def where(data, store, signal, context):
    store.set(f"ran_on.{context.task_name}", context.worker_hostname)


first = PythonTask("anywhere", where)
special = PythonTask("special", where, queue="special")
d = Dag("main")
d.define({first: special})
