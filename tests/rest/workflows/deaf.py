"""Sleeps for two minutes whatever a stop says: for the stop endpoint's force."""

import time

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def sleep(data, store, signal, context):
    time.sleep(120)


d = Dag("main")
d.define({PythonTask("sleep", sleep): None})
