"""Benchmark: start -> 100 parallel no-op tasks -> join."""

from lightflow.models import Dag
from lightflow.tasks import PythonTask

WIDTH = 100

start, join = PythonTask("start"), PythonTask("join")
lanes = [PythonTask(f"lane{i:03d}") for i in range(WIDTH)]
fan = Dag("fanout")
fan.define({start: lanes, **{lane: join for lane in lanes}})
