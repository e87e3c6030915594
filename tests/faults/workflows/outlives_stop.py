"""Two lanes on their own queue that run on after a stop: a PythonTask and a BashTask.

The PythonTask sleeps ``seconds`` and never looks at ``is_stopped`` (with
``honour=1`` it looks every 0.1 s and returns when it is set; with ``stubborn=1`` it
also sleeps on through the ``SystemExit`` of a SIGTERM); the BashTask's command sleeps
as long. Each writes the pid of what runs it to the folder ``pids`` names:
``python`` (the worker process running the task) and ``bash`` (the command's shell).
"""

import os
import time
from pathlib import Path

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import BashTask, PythonTask

parameters = Parameters(
    [
        Option("pids", help="Folder the tasks write their pids to"),
        Option("seconds", default=60, type=int, help="How long each lane runs"),
        Option("honour", default=0, type=int, help="1: the PythonTask honours is_stopped"),
        Option("stubborn", default=0, type=int, help="1: the PythonTask outlives SIGTERM"),
    ]
)


def write_pid(folder, name, pid):
    path = Path(folder, name)
    path.with_suffix(".tmp").write_text(str(pid))
    path.with_suffix(".tmp").rename(path)


def sleep_on(data, store, signal, context):
    write_pid(store.get("pids"), "python", os.getpid())
    if store.get("stubborn"):
        deadline = time.monotonic() + store.get("seconds")
        while time.monotonic() < deadline:
            try:
                time.sleep(0.1)
            except BaseException:  # the point: a SIGTERM does not end it
                pass
        return
    if not store.get("honour"):
        time.sleep(store.get("seconds"))
        return
    deadline = time.monotonic() + store.get("seconds")
    while time.monotonic() < deadline and not signal.is_stopped:
        time.sleep(0.1)


def command(data, store):
    pids = Path(store.get("pids"), "bash")
    return f"echo $$ > {pids}.tmp && mv {pids}.tmp {pids} && sleep {store.get('seconds')}"


d = Dag("main")
d.define(
    {
        PythonTask("python", sleep_on, queue="outlives_stop"): None,
        BashTask("bash", command, queue="outlives_stop"): None,
    }
)
