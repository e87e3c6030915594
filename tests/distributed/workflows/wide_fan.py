"""spread -> LIGHTFLOW_TEST_FAN_WIDTH lanes (default 10) -> join, all no-ops."""

import os

from lightflow.models import Dag
from lightflow.tasks import PythonTask

WIDTH = int(os.environ.get("LIGHTFLOW_TEST_FAN_WIDTH", "10"))

spread, join = PythonTask("spread"), PythonTask("join")
lanes = [PythonTask(f"lane{i}") for i in range(WIDTH)]
d = Dag("main")
d.define({spread: lanes, **{lane: join for lane in lanes}})
