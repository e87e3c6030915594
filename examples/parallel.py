"""Parallel: lanes that run at the same time between a fork and a join.

After a scan, the frames of each of the three detector modules are compressed
independently, so the three lanes run side by side. The ``publish`` task waits for
all of them: a task starts only when every predecessor has finished.

Run it:  lightflow run examples/parallel.py
"""

import time

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def start_scan(data, store, signal, context):
    data["scan"] = "scan_0012"
    print(f"start_scan: {data['scan']} recorded, compressing its three modules")


def compress(data, store, signal, context):
    module = int(context.task_name[-1])
    # Stands in for real work: I/O, or a compressor that releases the GIL.
    time.sleep(0.25 + 0.05 * module)
    data["file"] = f"{data['scan']}_module{module}.h5"
    print(f"{context.task_name}: wrote {data['file']}")


def publish(data, store, signal, context):
    # One dataset per predecessor: the file each lane wrote.
    files = [dataset["file"] for dataset in data]
    print(f"publish: {len(files)} files ready: {', '.join(files)}")


start_task = PythonTask(name="start_scan", callback=start_scan)
lanes = [PythonTask(name=f"compress_module{index}", callback=compress) for index in (1, 2, 3)]
publish_task = PythonTask(name="publish", callback=publish)

d = Dag("parallel")
d.define({start_task: lanes, **{lane: publish_task for lane in lanes}})
