"""Record every update a PvTriggerTask reports, one JSON line each (tests of the 1.x task).

With ``count`` above 0 the task stops itself after that many updates.
"""

import json

from lightflow.models import Dag, Option, Parameters, StopTask
from lightflow.tasks import PythonTask
from lightflow_epics import PvTriggerTask

parameters = Parameters(
    [
        Option("pvname", help="The PV to watch"),
        Option("record", help="The file the updates are appended to"),
        Option("count", default=0, type=int, help="Stop after this many updates (0: never)"),
        Option("skip_initial", default=True, type=bool),
        Option("connection_timeout", default=5.0, type=float),
        Option("on_timeout", default="wait"),
    ]
)


def record(data, store, signal, context, pvname=None, value=None, **event):
    with open(store.get("record"), "a") as file:
        entry = {"pvname": pvname, "value": value, "severity": event["severity"]}
        entry["keywords"] = sorted(["pvname", "value", *event])
        file.write(json.dumps(entry, default=list) + "\n")
    data["seen"] = data.get("seen", 0) + 1
    if store.get("count") and data["seen"] >= store.get("count"):
        raise StopTask("seen enough", skip_successors=False)


def report(data, store, signal, context):
    with open(store.get("record"), "a") as file:
        file.write(json.dumps({"after": data.get("seen", 0)}) + "\n")


watch = PvTriggerTask(
    "watch",
    lambda data, store: store.get("pvname"),
    record,
    skip_initial_callback=lambda data, store: store.get("skip_initial"),
    connection_timeout=lambda data, store: store.get("connection_timeout"),
    on_timeout=lambda data, store: store.get("on_timeout"),
)
done = PythonTask("report", report)

d = Dag("watch_dag")
d.define({watch: done})
