"""A task that stores a value no store can keep (a lock)."""

import threading

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def remember(data, store, signal, context):
    store.set("guard", threading.Lock())


d = Dag("main")
d.define({PythonTask("remember", remember): None})
