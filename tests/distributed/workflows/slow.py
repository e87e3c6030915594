"""A slow task on the 'victim' queue, for killing its worker mid-run."""

import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("seconds", default=4.0, type=float)])


def slow(data, store, signal, context):
    store.push("attempts", context.worker_hostname)
    print(f"working for {store.get('seconds')} s")
    time.sleep(store.get("seconds"))
    data["slept"] = True


def after(data, store, signal, context):
    store.set("after", data["slept"])


d = Dag("main")
d.define({PythonTask("slow", slow, queue="victim"): PythonTask("after", after)})
