"""A workflow whose parameters refuse some arguments: ``first`` must be a whole number."""

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters(
    [
        Option("first", type=int, help="The first item of the batch, a number"),
        Option("out", help="The file the run appends the number to"),
        Option("limit", default=10, type=int, help="A fixed argument that must be a number"),
    ]
)


def write(data, store, signal, context):
    with open(store.get("out"), "a") as out:
        out.write(f"{store.get('first')}\n")


d = Dag("strict")
d.define({PythonTask("write", write): None})
