"""A slow task on the 'coldq' queue, for shutting its worker down cold mid-run."""

import time

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def slow(data, store, signal, context):
    store.push("attempts", context.worker_hostname)
    print("exposing")
    time.sleep(4)


d = Dag("main")
d.define({PythonTask("slow", slow, queue="coldq"): None})
