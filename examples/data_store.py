"""Data store: values shared by all tasks of a run, addressed with dot keys.

Data flows along the edges of a DAG; the store is one document per workflow run that
every task (in any DAG of the run) can read and write. ``set`` and ``get`` take dot
keys for nested values, ``push`` appends one value to a list and ``extend`` several.
The META section holds what Lightflow records about the run, e.g. how long each task
took under ``log.<dag>.tasks.<task>.duration``.

Run it:  lightflow run examples/data_store.py
"""

import time

from lightflow.models import Dag, DataStoreDocumentSection
from lightflow.tasks import PythonTask


def record_setup(data, store, signal, context):
    store.set("scan.energy_kev", 12.4)
    store.set("scan.sample", "Si(111) wafer")
    store.extend("scan.logbook", ["undulator gap set", "shutter open"])


def acquire(data, store, signal, context):
    for index in range(3):
        time.sleep(0.05)
        store.push("scan.frames", f"frame_{index:05d}.h5")
    store.push("scan.logbook", "acquisition done")


def report(data, store, signal, context):
    # Nested values come back as a dict, leaves by their full dot key.
    scan = store.get("scan")
    print(f"report: {scan['sample']} at {store.get('scan.energy_kev')} keV")
    print(f"report: frames {', '.join(store.get('scan.frames'))}")
    print(f"report: logbook {' / '.join(store.get('scan.logbook'))}")
    print(f"report: missing key gives the default: {store.get('scan.motor', 'n/a')}")
    duration = store.get(
        f"log.{context.dag_name}.tasks.acquire.duration", section=DataStoreDocumentSection.Meta
    )
    print(f"report: acquire took {duration:.2f} s")


setup_task = PythonTask(name="record_setup", callback=record_setup)
acquire_task = PythonTask(name="acquire", callback=acquire)
report_task = PythonTask(name="report", callback=report)

d = Dag("data_store")
d.define({setup_task: acquire_task, acquire_task: report_task})
