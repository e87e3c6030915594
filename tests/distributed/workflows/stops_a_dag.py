"""A task starts a scan DAG and stops it with signal.stop_dag() while it runs."""

import time

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def expose(data, store, signal, context):
    for _ in range(300):
        if signal.is_stopped:
            return
        time.sleep(0.1)
    raise RuntimeError("the scan was never stopped")


def steer(data, store, signal, context):
    name = signal.start_dag("scan")
    time.sleep(1)
    signal.stop_dag(name)


scan = Dag("scan", autostart=False)
scan.define({PythonTask("expose", expose): None})
main = Dag("main")
main.define({PythonTask("steer", steer): None})
