"""Abort: a task ends the whole workflow run at once with AbortWorkflow.

``check_interlock`` finds the experimental hutch open and raises ``AbortWorkflow``.
Nothing more is started (``process_frames`` is cancelled), and tasks still running
are asked to stop: ``acquire`` checks ``signal.is_stopped`` between frames and ends
early. The run is recorded as *aborted* and ``lightflow run`` exits with a non-zero
status, so a script or scheduler calling it sees the failure.

Run it:  lightflow run examples/abort.py; echo "exit status $?"
"""

import time

from lightflow.models import AbortWorkflow, Dag, StopTask
from lightflow.tasks import PythonTask


def check_interlock(data, store, signal, context):
    time.sleep(0.1)
    print("check_interlock: hutch door is open, aborting")
    raise AbortWorkflow("hutch interlock open")


def acquire(data, store, signal, context):
    for frame in range(100):
        if signal.is_stopped:
            print(f"acquire: asked to stop after {frame} frames")
            raise StopTask("the run was aborted")
        time.sleep(0.02)
    print("acquire: all 100 frames taken")


def process_frames(data, store, signal, context):
    print("process_frames: integrating")


interlock_task = PythonTask(name="check_interlock", callback=check_interlock)
acquire_task = PythonTask(name="acquire", callback=acquire)
process_task = PythonTask(name="process_frames", callback=process_frames)

d = Dag("abort")
d.define({interlock_task: process_task, acquire_task: process_task})
