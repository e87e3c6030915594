"""A task puts a lock (which cannot be pickled) into the data it passes on."""

import threading

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def keep_lock(data, store, signal, context):
    data["lock"] = threading.Lock()


d = Dag("main")
d.define({PythonTask("keep_lock", keep_lock): PythonTask("next", lambda *args: None)})
