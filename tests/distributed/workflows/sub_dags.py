"""One task starts five copies of a sub-DAG with data and joins them."""

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def fan_out(data, store, signal, context):
    names = [signal.start_dag("part", data={"chunk": i}) for i in range(5)]
    store.set("names", names)
    store.set("joined", signal.join_dags(names))


def work(data, store, signal, context):
    store.push("chunks", data["chunk"] * 10)


part = Dag("part", autostart=False)
part.define({PythonTask("work", work): None})
main = Dag("main")
main.define({PythonTask("fan_out", fan_out): None})
