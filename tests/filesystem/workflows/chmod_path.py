"""Set the permissions 'mode' on the tree at 'path' (ChmodTask)."""

from lightflow.models import Dag, Option, Parameters
from lightflow_filesystem import ChmodTask

parameters = Parameters([Option("path"), Option("mode")])

main = Dag("main")
main.define(
    {
        ChmodTask(
            "chmod",
            paths=lambda data, store: store.get("path"),
            permission=lambda data, store: store.get("mode"),
        ): None
    }
)
