"""Benchmark: start -> N parallel no-op tasks -> join, N from LIGHTFLOW_BENCH_WIDTH (1000).

The scale workloads of ``bench_distributed.py`` set the width before loading this file
(the workflow is loaded, and its DAG built, where it is started).
"""

import os

from lightflow.models import Dag
from lightflow.tasks import PythonTask

WIDTH = int(os.environ.get("LIGHTFLOW_BENCH_WIDTH", "1000"))

start, join = PythonTask("start"), PythonTask("join")
lanes = [PythonTask(f"lane{i:06d}") for i in range(WIDTH)]
fan = Dag("fanout")
fan.define({start: lanes, **{lane: join for lane in lanes}})
