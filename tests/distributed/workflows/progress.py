"""A long task that reports progress, then a short one: for following a run's log live."""

import logging
import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("seconds", default=3.0, type=float)])


def scan(data, store, signal, context):
    print("scan started")
    time.sleep(store.get("seconds"))
    logging.getLogger("beamline").warning("scan done")


def report(data, store, signal, context):
    print("report written")


d = Dag("main")
d.define({PythonTask("scan", scan): PythonTask("report", report)})
