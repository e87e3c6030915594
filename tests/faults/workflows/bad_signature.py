"""A callback written with two parameters instead of four."""

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def measure(data, store):
    data["value"] = 1


d = Dag("main")
d.define({PythonTask("measure", measure): None})
