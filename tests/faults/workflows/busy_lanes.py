"""Four lanes of a few seconds each, then a join: jobs in flight on every worker."""

import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("seconds", default=3.0, type=float)])


def work(data, store, signal, context):
    time.sleep(store.get("seconds"))
    data[context.task_name] = True


def join(data, store, signal, context):
    print("lanes done")


def begin(data, store, signal, context):
    data["begun"] = True


start = PythonTask("start", begin)
lanes = [PythonTask(f"lane{n}", work) for n in range(4)]
end = PythonTask("join", join)

d = Dag("main")
d.define({start: lanes, **{lane: end for lane in lanes}})
