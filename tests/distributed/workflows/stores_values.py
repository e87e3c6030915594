"""Stores a number, text, an array and bytes, for the read-only view of a run's store."""

import numpy as np
from lightflow.models import Dag
from lightflow.tasks import PythonTask


def store_values(data, store, signal, context):
    store.set("scan.id", 42)
    store.set("scan.sample", "lysozyme")
    store.set("scan.image", np.arange(6).reshape(2, 3))
    store.set("raw", b"\x00\x01")


d = Dag("main")
d.define({PythonTask("store_values", store_values): None})
