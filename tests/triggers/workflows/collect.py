"""Append the items of each run, as one line, to the file ``out`` (what the tests count)."""

import os

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters(
    [
        Option("items", help="The texts of the trigger's batch"),
        Option("out", help="The file the run appends its line to"),
        Option("tag", default="", help="Written before each item"),
    ]
)


def write(data, store, signal, context):
    line = " ".join(f"{store.get('tag')}{item}" for item in store.get("items")) + "\n"
    descriptor = os.open(store.get("out"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line.encode())  # one write: runs in parallel never mix lines
    finally:
        os.close(descriptor)


d = Dag("collect")
d.define({PythonTask("write", write): None})
