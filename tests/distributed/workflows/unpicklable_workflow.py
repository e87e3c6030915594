"""A task class that holds a lock itself: the workflow cannot be sent to workers."""

import threading

from lightflow.models import Dag
from lightflow.tasks import PythonTask


class GuardedTask(PythonTask):
    def __init__(self, name, callback):
        super().__init__(name, callback)
        self.lock = threading.Lock()


d = Dag("main")
d.define({GuardedTask("guarded", lambda *args: None): None})
