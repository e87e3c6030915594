"""A parameter whose type is no JSON type: tasks get the object itself (1.x did)."""

from pathlib import Path

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("where", type=Path, help="a folder")])


def look(data, store, signal, context):
    where = store.get("where")
    store.set("seen", {"type": type(where).__name__, "name": where.name})


d = Dag("main")
d.define({PythonTask("look", look): None})
