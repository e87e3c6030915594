"""Two tasks run side by side; one reads the META log of both while they run (as in 1.x).

``busy`` waits until ``probe`` has looked; ``probe`` waits until ``busy`` has an entry,
then keeps what it saw of both entries in ``seen``.
"""

import time

from lightflow.models import Dag, DataStoreDocumentSection
from lightflow.tasks import PythonTask

META = DataStoreDocumentSection.Meta


def busy(data, store, signal, context):
    deadline = time.monotonic() + 20
    while not store.get("looked") and time.monotonic() < deadline:
        time.sleep(0.05)


def probe(data, store, signal, context):
    tasks = f"log.{context.dag_name}.tasks"
    deadline = time.monotonic() + 20
    while store.get(f"{tasks}.busy", section=META) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    store.set(
        "seen", {name: store.get(f"{tasks}.{name}", section=META) for name in ("probe", "busy")}
    )
    store.set("looked", True)


start = PythonTask("start")
d = Dag("main")
d.define({start: [PythonTask("busy", busy), PythonTask("probe", probe)]})
