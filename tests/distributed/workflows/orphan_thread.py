"""A task leaves a thread printing behind; its successor runs in the same process."""

import threading
import time

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def chatter():
    for n in range(15):
        print(f"left behind {n}")
        time.sleep(0.2)


def leave(data, store, signal, context):
    threading.Thread(target=chatter, daemon=True).start()


def later(data, store, signal, context):
    time.sleep(1.5)
    print("later done")


d = Dag("main")
d.define({PythonTask("leave", leave): PythonTask("later", later)})
