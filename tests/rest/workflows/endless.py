"""Runs until it is stopped: for the stop endpoints."""

import time

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def wait(data, store, signal, context):
    print("waiting to be stopped")
    deadline = time.monotonic() + 120
    while not signal.is_stopped and time.monotonic() < deadline:
        time.sleep(0.05)


d = Dag("main")
d.define({PythonTask("wait", wait): None})
