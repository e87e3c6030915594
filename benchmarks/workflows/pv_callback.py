"""A PvTriggerTask whose callback records when it is called (bench_epics.py).

Appends one JSON line per update to the file 'record': the value and
``time.time()`` when the callback began. With ``count`` above 0 the watch ends after
that many updates.
"""

import json
import os
import time

from lightflow.models import Dag, Option, Parameters, StopTask
from lightflow_epics import PvTriggerTask

parameters = Parameters([Option("pvname"), Option("record"), Option("count", default=0, type=int)])


def called(data, store, signal, context, value=None, **event):
    now = time.time()
    line = json.dumps({"value": value, "called": now}) + "\n"
    descriptor = os.open(store.get("record"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)
    data["seen"] = data.get("seen", 0) + 1
    if store.get("count") and data["seen"] >= store.get("count"):
        raise StopTask("enough updates")


watch = Dag("watch")
watch.define(
    {
        PvTriggerTask(
            "watch",
            lambda data, store: store.get("pvname"),
            called,
            skip_initial_callback=False,
        ): None
    }
)
