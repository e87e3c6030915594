"""Three steps in a row and a side lane, each taking a moment: watched live by the dashboard.

``pause`` sets how long each step takes, in seconds.
"""

import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("pause", default=1.5, type=float, help="Seconds per step")])


def step(data, store, signal, context):
    deadline = time.monotonic() + store.get("pause")
    while time.monotonic() < deadline and not signal.is_stopped:
        time.sleep(0.05)
    print(f"{context.task_name} done")


first = PythonTask("first", step)
second = PythonTask("second", step)
third = PythonTask("third", step)
side = PythonTask("side", step)

d = Dag("main")
d.define({first: [second, side], second: third})
