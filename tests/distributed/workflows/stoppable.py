"""A long bash command that a `workflow stop` must kill."""

from lightflow.models import Dag
from lightflow.tasks import BashTask, PythonTask


def remember_pid(pid, data, store, signal, context):
    store.set("pid", pid)


def saw_stop(data, store, signal, context):
    store.set("after", True)


sleeper = BashTask("sleeper", "sleep 60", callback_process=remember_pid)
d = Dag("main")
d.define({sleeper: PythonTask("after", saw_stop)})
