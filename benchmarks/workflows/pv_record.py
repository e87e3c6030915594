"""Record when this run's first task started and which PV update it got (bench_epics.py).

Appends one JSON line to the file 'record': the value the trigger handed to the run
and ``time.time()`` at the start of the task, which the benchmark compares with the
moment it wrote the value.
"""

import json
import os
import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("value", type=float), Option("record")])


def record(data, store, signal, context):
    started = time.time()
    line = json.dumps({"value": store.get("value"), "started": started}) + "\n"
    descriptor = os.open(store.get("record"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


main = Dag("main")
main.define({PythonTask("record", record): None})
