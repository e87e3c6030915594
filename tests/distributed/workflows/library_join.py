"""Imports shared code and waits in a join on a long command: a stop must not need either.

The library (``beamline_utils``) is on the workers' path only in the stop test, so the
client that stops the run cannot load this workflow.
"""

from beamline_utils import detector_name
from lightflow.models import Dag
from lightflow.tasks import BashTask, PythonTask


def start_and_join(data, store, signal, context):
    store.set("detector", detector_name(1))
    signal.join_dags([signal.start_dag("sleeper")])


sleeper = Dag("sleeper", autostart=False)
sleeper.define({BashTask("sleep", "sleep 60"): None})
main = Dag("main")
main.define({PythonTask("start_and_join", start_and_join): None})
