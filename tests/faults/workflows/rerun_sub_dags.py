"""A task that starts five sub-DAGs and joins them, on a queue of its own.

The joining task (queue ``rerun_victim``) writes the names ``start_dag`` gave it to
``marker``, a line per attempt, before it joins. Each sub-DAG's task (queue
``rerun_sub``) appends its DAG's name and number to ``record``: every line there is
one effect.
"""

import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters(
    [
        Option("record", help="File each sub-DAG's task appends a line to"),
        Option("marker", help="File the joining task writes its DAGs' names to"),
    ]
)


def start_and_join(data, store, signal, context):
    names = [signal.start_dag("sub", data={"n": n}) for n in range(5)]
    with open(store.get("marker"), "a") as marker:
        marker.write(" ".join(names) + "\n")
    assert signal.join_dags(names), "a sub-DAG failed"


def append(data, store, signal, context):
    time.sleep(1.0)  # the joining task waits meanwhile: its worker is killed then
    with open(store.get("record"), "a") as record:
        record.write(f"{context.dag_name} {data['n']}\n")


main = Dag("main")
main.define({PythonTask("fan_out", start_and_join, queue="rerun_victim"): None})

sub = Dag("sub", autostart=False)
sub.define({PythonTask("append", append, queue="rerun_sub"): None})
