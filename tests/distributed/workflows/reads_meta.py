"""A task reads its predecessors' META records (1.x habit): they must be there."""

from lightflow.models import Dag, DataStoreDocumentSection
from lightflow.tasks import PythonTask


def work(data, store, signal, context):
    data["n"] = data.get("n", 0) + 1


def report(data, store, signal, context):
    tasks = store.get(f"log.{context.dag_name}.tasks", section=DataStoreDocumentSection.Meta)
    store.set("seen", {name: sorted(entry) for name, entry in tasks.items()})


chain = [PythonTask(f"work{i}", work) for i in range(3)] + [PythonTask("report", report)]
d = Dag("main")
d.define({chain[i]: chain[i + 1] for i in range(3)})
