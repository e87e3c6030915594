"""Read PVs with PvGetTask and append what the data holds to a file (one JSON line)."""

import json

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask
from lightflow_epics import PvGetTask

parameters = Parameters(
    [
        Option("pvs", type=lambda text: text.split(","), help="PV names, comma-separated"),
        Option("record", help="The file the data is appended to"),
        Option("metadata", default=False, type=bool),
        Option("timeout", default=10.0, type=float),
    ]
)


def save(data, store, signal, context):
    values = {key: data[key] for key in store.get("pvs")}
    with open(store.get("record"), "a") as file:
        file.write(json.dumps(values, default=list) + "\n")


read = PvGetTask(
    "read",
    lambda data, store: store.get("pvs"),
    timeout=lambda data, store: store.get("timeout"),
    metadata=lambda data, store: store.get("metadata"),
)
d = Dag("read_dag")
d.define({read: PythonTask("save", save)})
