"""A run that lasts until it is stopped (30 s at most), then says how it ended in ``out``."""

import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters(
    [
        Option("items", help="The texts of the trigger's batch"),
        Option("out", help="The file the run writes how it ended to"),
    ]
)


def wait(data, store, signal, context):
    with open(store.get("out"), "a") as out:
        out.write("running\n")
    deadline = time.monotonic() + 30
    while not signal.is_stopped and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(store.get("out"), "a") as out:
        out.write("stopped\n" if signal.is_stopped else "timed out\n")


d = Dag("sleepy")
d.define({PythonTask("wait", wait): None})
