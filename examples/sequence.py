"""Sequence: three tasks in a chain, each one handing its data to the next.

The simplest workflow: find the frames of a scan, correct them for the detector's
dark current, then write a summary. A task changes ``data`` in place and returns
``None``; the next task in the chain receives the changed data.

Run it:  lightflow run examples/sequence.py
"""

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def find_frames(data, store, signal, context):
    data["scan"] = "scan_0007"
    data["frames"] = [f"scan_0007_{index:05d}.cbf" for index in range(4)]
    print(f"find_frames: found {len(data['frames'])} frames of {data['scan']}")


def subtract_dark(data, store, signal, context):
    data["corrected"] = [name.replace(".cbf", "_dark.cbf") for name in data["frames"]]
    print(f"subtract_dark: corrected {len(data['corrected'])} frames")


def write_summary(data, store, signal, context):
    print(f"write_summary: {data['scan']} -> {data['corrected'][-1]} is the last frame")


find_task = PythonTask(name="find_frames", callback=find_frames)
dark_task = PythonTask(name="subtract_dark", callback=subtract_dark)
summary_task = PythonTask(name="write_summary", callback=write_summary)

# A chain is written as "each task -> its successor".
d = Dag("sequence")
d.define({find_task: dark_task, dark_task: summary_task})
