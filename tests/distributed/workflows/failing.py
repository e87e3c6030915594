"""The second task raises: the run fails and names it."""

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def ok(data, store, signal, context):
    data["value"] = 1


def broken(data, store, signal, context):
    raise ValueError(f"calibration file missing for value {data['value']}")


d = Dag("main")
d.define({PythonTask("ok", ok): PythonTask("broken", broken)})
