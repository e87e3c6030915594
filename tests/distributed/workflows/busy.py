"""A task that keeps its worker (queue 'busyq') busy for a few seconds."""

import time

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def busy(data, store, signal, context):
    print("busy now")
    time.sleep(4)


d = Dag("main")
d.define({PythonTask("busy", busy, queue="busyq"): None})
