"""Give the tree at 'path' to the user 'user' (ChownTask)."""

from lightflow.models import Dag, Option, Parameters
from lightflow_filesystem import ChownTask

parameters = Parameters([Option("path"), Option("user")])

main = Dag("main")
main.define(
    {
        ChownTask(
            "chown",
            paths=lambda data, store: store.get("path"),
            user=lambda data, store: store.get("user"),
        ): None
    }
)
