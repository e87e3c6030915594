"""Append the PV update that started this run to a file (one JSON line): the run of the
PV triggers' tests."""

import json
import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters(
    [
        Option("pvname", help="The PV that changed"),
        Option("value", help="Its new value"),
        Option("timestamp", type=float, help="When it changed (IOC time)"),
        Option("severity", type=int, help="Its alarm severity"),
        Option("record", help="The file the update is appended to"),
    ]
)


def record(data, store, signal, context):
    entry = {name: store.get(name) for name in ("pvname", "value", "timestamp", "severity")}
    entry["started"] = time.time()
    entry["run"] = context.workflow_id
    with open(store.get("record"), "a") as file:
        file.write(json.dumps(entry) + "\n")


d = Dag("pv_run")
d.define({PythonTask("record", record): None})
