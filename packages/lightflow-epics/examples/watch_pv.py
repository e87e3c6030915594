"""Watch a PV and run an action DAG whenever its new value lies within 3 +/- 2.

The PV is a workflow argument: `lightflow run watch_pv.py pvname=BL:SAMPLE:TEMP`.
Every change of the PV is checked (the value it has when the watch connects is
not); for a value strictly between 1 and 5 the DAG 'pv_action_dag' is started with
the PV's name and value, and prints them. The watch goes on until the run is
stopped: Ctrl-C, or `lightflow workflow stop watch_pv` on a cluster.

This is the lightflow-epics 1.x example workflow; it runs unchanged.
"""

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask
from lightflow_epics import PvTriggerTask

parameters = Parameters([Option("pvname", help="The name of the PV to watch", type=str)])


def announce(data, store, signal, context):
    print(f"Watching PV {store.get('pvname')}")


def check_value(data, store, signal, context, pvname=None, value=None, **event):
    """Called for every update of the PV, with pyepics' monitor keywords."""
    print(f"PV {pvname} changed to {value}")
    if abs(value - 3.0) < 2.0:
        data["pv_name"] = pvname
        data["pv_value"] = value
        signal.start_dag("pv_action_dag", data=data)


def act(data, store, signal, context):
    print(f"Acting on PV {data['pv_name']} = {data['pv_value']}")


start = PythonTask("announce", announce)
watch = PvTriggerTask(
    "watch",
    pv_name=lambda data, store: store.get("pvname"),
    callback=check_value,
    event_trigger_time=0.1,
    stop_polling_rate=2,
    skip_initial_callback=True,
)
monitor_dag = Dag("pv_monitor_dag")
monitor_dag.define({start: watch})

action = PythonTask("act", act)
action_dag = Dag("pv_action_dag", autostart=False)
action_dag.define({action: None})
