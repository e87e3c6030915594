"""Append the files a trigger handed to this run to the 'record' file, one JSON line.

Each line holds the run's files, when its first task started (``time.time()``) and
the host: what the watch tests and the benchmark read back.
"""

import json
import os
import socket
import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters(
    [
        Option("files", type=list, help="The files handed off"),
        Option("record", help="The JSON-lines file to append to"),
        Option("label", default="", help="Written along, to tell triggers apart"),
    ]
)


def record(data, store, signal, context):
    started = time.time()
    line = json.dumps(
        {
            "files": store.get("files"),
            "started": started,
            "label": store.get("label"),
            "run": context.workflow_id,
            "host": socket.gethostname(),
        }
    )
    descriptor = os.open(store.get("record"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (line + "\n").encode())
    finally:
        os.close(descriptor)


main = Dag("main")
main.define({PythonTask("record", record): None})
