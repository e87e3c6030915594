"""Remove the path given as the argument 'path' (RemoveTask)."""

from lightflow.models import Dag, Option, Parameters
from lightflow_filesystem import RemoveTask

parameters = Parameters([Option("path", help="What to remove")])

main = Dag("main")
main.define({RemoveTask("remove", paths=lambda data, store: store.get("path")): None})
