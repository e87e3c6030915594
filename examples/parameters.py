"""Parameters: arguments a workflow accepts on the command line, typed and checked.

``parameters = Parameters([...])`` declares them. Each ``Option`` converts the string
given as ``name=value`` to its ``type``; an option without a default is required, so
the run is refused before any task starts if it is missing or cannot be converted.
Tasks read the values from the data store with ``store.get(name)``.

Run it:  lightflow run examples/parameters.py sample=lysozyme
         lightflow run examples/parameters.py sample=lysozyme frames=10 dark=no
"""

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters(
    [
        Option("sample", help="Name of the sample on the goniometer"),  # required
        Option("exposure", default=0.5, type=float, help="Exposure time per frame in s"),
        Option("frames", default=3, type=int, help="Number of frames to take"),
        Option("dark", default=True, type=bool, help="Take a dark frame first"),
    ]
)


def plan_scan(data, store, signal, context):
    sample, frames = store.get("sample"), store.get("frames")
    exposure, dark = store.get("exposure"), store.get("dark")
    total = frames * exposure
    print(f"plan_scan: {sample}, {frames} frames x {exposure} s = {total} s, dark={dark}")


plan_task = PythonTask(name="plan_scan", callback=plan_scan)

d = Dag("parameters")
d.define({plan_task: None})
