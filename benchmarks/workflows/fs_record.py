"""Record when this run's first task started and which files it got (bench_filesystem.py).

Appends one JSON line to the file 'record': the files the trigger handed to the run
and ``time.time()`` at the start of the task, the moment the benchmark compares with
the moment each file was closed.
"""

import json
import os
import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("files", type=list), Option("record")])


def record(data, store, signal, context):
    started = time.time()
    line = json.dumps({"files": store.get("files"), "started": started}) + "\n"
    descriptor = os.open(store.get("record"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


main = Dag("main")
main.define({PythonTask("record", record): None})
