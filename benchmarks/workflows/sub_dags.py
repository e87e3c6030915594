"""Benchmark: one task starts five sub-DAGs (one no-op task each) and joins them."""

from lightflow.models import Dag
from lightflow.tasks import PythonTask

COPIES = 5


def fan_out(data, store, signal, context):
    names = [signal.start_dag("part", data={"chunk": i}) for i in range(COPIES)]
    if not signal.join_dags(names):
        raise RuntimeError("a sub-DAG did not succeed")


part = Dag("part", autostart=False)
part.define({PythonTask("work"): None})
main = Dag("main")
main.define({PythonTask("fan_out", fan_out): None})
