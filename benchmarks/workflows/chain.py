"""Benchmark: a chain of 21 no-op tasks (t00 -> t01 -> ... -> t20)."""

from itertools import pairwise

from lightflow.models import Dag
from lightflow.tasks import PythonTask

LENGTH = 21

tasks = [PythonTask(f"t{i:02d}") for i in range(LENGTH)]
chain = Dag("chain")
chain.define({**dict(pairwise(tasks)), tasks[-1]: None})
