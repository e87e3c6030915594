"""Stop and skip: end a task early with StopTask and control what its successors do.

Nightly housekeeping of a beamline's data disk, with nothing to do tonight:

* ``find_new_scans`` raises ``StopTask``: it stops without failing the run and, by
  default, its successors ``compress_scans`` and ``index_scans`` are skipped.
* A skip spreads: ``delete_raw`` after ``compress_scans`` is skipped too ...
* ... unless the successor has ``force_run=True``: ``send_report`` runs anyway.
* ``index_scans`` has ``propagate_skip=False``: when it is skipped its successor
  ``update_catalogue`` still runs.
* ``check_calibration`` raises ``StopTask(skip_successors=False)``: it stops, and its
  successor ``reload_calibration`` runs with the data the stopped task received.

The run succeeds: a stopped task is not an error.

Run it:  lightflow run examples/stop_skip.py
"""

from lightflow.models import Dag, StopTask
from lightflow.tasks import PythonTask


def find_new_scans(data, store, signal, context):
    data["new_scans"] = []
    raise StopTask("no new scans since the last run")


def check_calibration(data, store, signal, context):
    data["calibration"] = "calib_2024_06.json"
    raise StopTask("calibration unchanged", skip_successors=False)


def announce(data, store, signal, context):
    print(f"{context.task_name}: ran")


find_task = PythonTask(name="find_new_scans", callback=find_new_scans)
compress_task = PythonTask(name="compress_scans", callback=announce)
delete_task = PythonTask(name="delete_raw", callback=announce)
report_task = PythonTask(name="send_report", callback=announce, force_run=True)
index_task = PythonTask(name="index_scans", callback=announce, propagate_skip=False)
catalogue_task = PythonTask(name="update_catalogue", callback=announce)
calibration_task = PythonTask(name="check_calibration", callback=check_calibration)
reload_task = PythonTask(name="reload_calibration", callback=announce)

d = Dag("stop_skip")
d.define(
    {
        find_task: [compress_task, index_task],
        compress_task: [delete_task, report_task],
        index_task: catalogue_task,
        calibration_task: reload_task,
    }
)
