"""A 1.x-style trigger task: watch a ``lines`` socket from inside a task for the whole run.

Each batch is appended to ``out`` as one line. An item ``stop`` makes the task stop
the workflow; an item ``block`` makes the callback ignore stops for a minute, so the
run has to give the task up.
"""

import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask
from lightflow.triggers import watch_in_task
from lightflow_fixture_plugin.sources import LineSource

parameters = Parameters(
    [
        Option("socket", help="The socket the source listens on"),
        Option("out", help="The file each batch is appended to"),
        Option("aggregate", default=2, type=int, help="Items per batch"),
        Option("backlog", default="", help="Items already there, handed over first"),
    ]
)


def watch(data, store, signal, context):
    out = store.get("out")

    def handle(events):
        items = [event.values["item"] for event in events]
        with open(out, "a") as file:
            file.write(" ".join(items) + "\n")
        if "stop" in items:
            signal.stop_workflow()
        if "block" in items:
            time.sleep(60)

    backlog = store.get("backlog") or None
    watch_in_task(
        LineSource(store.get("socket"), backlog=backlog),
        signal,
        handle,
        aggregate=store.get("aggregate"),
        existing=backlog is not None,
    )


d = Dag("watch")
d.define({PythonTask("watch", watch): None})
