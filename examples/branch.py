"""Branch: a task lets only some of its successors run, with Action(limit=...).

Scan 42 recorded data on two of the beamline's three detectors. ``inspect_scan``
looks at which ones and returns ``Action(data, limit=[...])`` naming the processing
lanes to run; the third lane is skipped. ``summarise`` joins the lanes and still
runs, because a task is skipped only when a predecessor excludes it or when all of
its predecessors were skipped.

Run it:  lightflow run examples/branch.py
"""

import time

from lightflow.models import Action, Dag
from lightflow.tasks import PythonTask


def inspect_scan(data, store, signal, context):
    data["scan"] = "scan_0042"
    data["detectors"] = ["pilatus", "xspress3"]
    print(f"inspect_scan: {data['scan']} has data from {' and '.join(data['detectors'])}")
    # Name the successors to run (task objects or names); the others are skipped.
    return Action(data, limit=[LANE_OF_DETECTOR[name] for name in data["detectors"]])


def integrate_saxs(data, store, signal, context):
    time.sleep(0.05)
    data["result"] = f"{data['scan']}_saxs.dat"
    print(f"integrate_saxs: pilatus images -> {data['result']}")


def fit_fluorescence(data, store, signal, context):
    time.sleep(0.1)
    data["result"] = f"{data['scan']}_xrf.h5"
    print(f"fit_fluorescence: xspress3 spectra -> {data['result']}")


def reconstruct_tomo(data, store, signal, context):
    time.sleep(0.15)
    data["result"] = f"{data['scan']}_volume.tiff"
    print(f"reconstruct_tomo: camera projections -> {data['result']}")


def summarise(data, store, signal, context):
    # One dataset per lane; the skipped lane passes on what it received.
    results = [dataset["result"] for dataset in data if "result" in dataset]
    print(f"summarise: {data['scan']} produced {', '.join(results)}")


inspect_task = PythonTask(name="inspect_scan", callback=inspect_scan)
integrate_task = PythonTask(name="integrate_saxs", callback=integrate_saxs)
fit_task = PythonTask(name="fit_fluorescence", callback=fit_fluorescence)
tomo_task = PythonTask(name="reconstruct_tomo", callback=reconstruct_tomo)
summary_task = PythonTask(name="summarise", callback=summarise)

LANE_OF_DETECTOR = {"pilatus": integrate_task, "xspress3": fit_task, "camera": tomo_task}

d = Dag("branch")
d.define(
    {
        inspect_task: [integrate_task, fit_task, tomo_task],
        integrate_task: summary_task,
        fit_task: summary_task,
        tomo_task: summary_task,
    }
)
