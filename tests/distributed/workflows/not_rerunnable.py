"""A slow task that must not run twice (it moves a motor): a lost worker fails the run."""

import time

from lightflow.models import Dag
from lightflow.tasks import PythonTask


class MotorMove(PythonTask):
    rerun_safe = False


def move(data, store, signal, context):
    time.sleep(3)


d = Dag("main")
d.define({MotorMove("move_motor", move, queue="victim2"): None})
