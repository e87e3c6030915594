"""Thirty parallel tasks, then a join that reads their META records (1.x habit)."""

from lightflow.models import Dag, DataStoreDocumentSection
from lightflow.tasks import PythonTask

WIDTH = 30


def spread(data, store, signal, context):
    data["n"] = 0


def work(data, store, signal, context):
    data["n"] += 1


def join(data, store, signal, context):
    tasks = store.get(f"log.{context.dag_name}.tasks", section=DataStoreDocumentSection.Meta)
    store.set(
        "seen",
        {
            name: {"status": entry.get("status"), "duration": entry.get("duration")}
            for name, entry in tasks.items()
        },
    )


start = PythonTask("spread", spread)
lanes = [PythonTask(f"work{i:02d}", work) for i in range(WIDTH)]
end = PythonTask("join", join)
d = Dag("main")
d.define({start: lanes, **{lane: end for lane in lanes}})
