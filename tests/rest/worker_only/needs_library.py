"""Imports a module only the workers' library path has; waits until it is stopped.

The REST server's configuration has neither this folder nor that library: it stops
the run all the same.
"""

import time

from beamline_utils import detector_name
from lightflow.models import Dag
from lightflow.tasks import PythonTask


def wait(data, store, signal, context):
    print("acquiring with", detector_name(1))
    deadline = time.monotonic() + 120
    while not signal.is_stopped and time.monotonic() < deadline:
        time.sleep(0.05)


d = Dag("main")
d.define({PythonTask("wait", wait): None})
