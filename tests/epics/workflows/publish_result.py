"""Read two PVs, compute a result and write it back to a PV for the operators."""

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask
from lightflow_epics import PvGetTask, PvPutTask

parameters = Parameters(
    [
        Option("prefix", help="The IOC's record prefix"),
        Option("target", default="LO", help="The record the result goes to"),
        Option("wait", default=True, type=bool),
        Option("timeout", default=10.0, type=float),
    ]
)


def compute(data, store, signal, context):
    data["result"] = int(data["energy"] * 10 + data["current"])


read = PvGetTask(
    "read",
    lambda data, store: {
        "energy": f"{store.get('prefix')}:AO",
        "current": f"pva://{store.get('prefix')}:AI",
    },
    timeout=10,
)
publish = PvPutTask(
    "publish",
    lambda data, store: f"{store.get('prefix')}:{store.get('target')}",
    lambda data, store: data["result"],
    wait=lambda data, store: store.get("wait"),
    timeout=lambda data, store: store.get("timeout"),
)
calculate = PythonTask("compute", compute)
d = Dag("publish_dag")
d.define({read: calculate, calculate: publish})
