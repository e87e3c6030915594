"""Copy 'source' into 'destination' (CopyTask), on whichever engine runs it."""

from lightflow.models import Dag, Option, Parameters
from lightflow_filesystem import CopyTask

parameters = Parameters([Option("source"), Option("destination")])

main = Dag("main")
main.define(
    {
        CopyTask(
            "copy",
            sources=lambda data, store: store.get("source"),
            destination=lambda data, store: store.get("destination"),
        ): None
    }
)
