"""One task that prints and logs, for many runs at once and for run logs."""

import logging

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("n", default=0, type=int)])


def hello(data, store, signal, context):
    print(f"hello from run {store.get('n')}")
    logging.getLogger("beamline").warning("detector temperature high")


d = Dag("main")
d.define({PythonTask("hello", hello): None})
