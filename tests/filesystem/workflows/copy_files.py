"""Copy the files a trigger handed to this run into 'destination' (CopyTask)."""

from lightflow.models import Dag, Option, Parameters
from lightflow_filesystem import CopyTask

parameters = Parameters([Option("files", type=list), Option("destination")])

main = Dag("main")
main.define(
    {
        CopyTask(
            "copy",
            sources=lambda data, store: store.get("files"),
            destination=lambda data, store: store.get("destination"),
        ): None
    }
)
