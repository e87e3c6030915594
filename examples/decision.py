"""Decision: choose at run time, from the data, which successor runs.

``check_beam`` reads the storage ring current that ``read_ring`` put into the data.
With beam, the frames are integrated; without it, the scan is flagged for a repeat.
Returning ``Action(data, limit=[task])`` runs only that successor; the other one is
skipped.

Run it:  lightflow run examples/decision.py
         lightflow run examples/decision.py ring_current=0.4   (a beam dump)
"""

from lightflow.models import Action, Dag, Option, Parameters
from lightflow.tasks import PythonTask

# The simulated ring current reading can be set from the command line.
parameters = Parameters(
    [
        Option("ring_current", default=200.0, type=float, help="Storage ring current in mA"),
    ]
)

MINIMUM_CURRENT_MA = 10.0


def read_ring(data, store, signal, context):
    data["scan"] = "scan_0108"
    data["ring_current"] = store.get("ring_current")
    print(f"read_ring: {data['ring_current']} mA during {data['scan']}")


def check_beam(data, store, signal, context):
    if data["ring_current"] >= MINIMUM_CURRENT_MA:
        print("check_beam: beam is on, integrating")
        return Action(data, limit=[integrate_task])
    print("check_beam: no beam, flagging the scan")
    return Action(data, limit=["flag_for_repeat"])  # a task name works as well


def integrate(data, store, signal, context):
    print(f"integrate: {data['scan']} -> {data['scan']}_integrated.dat")


def flag_for_repeat(data, store, signal, context):
    print(f"flag_for_repeat: {data['scan']} must be measured again")


read_task = PythonTask(name="read_ring", callback=read_ring)
check_task = PythonTask(name="check_beam", callback=check_beam)
integrate_task = PythonTask(name="integrate", callback=integrate)
flag_task = PythonTask(name="flag_for_repeat", callback=flag_for_repeat)

d = Dag("decision")
d.define({read_task: check_task, check_task: [integrate_task, flag_task]})
