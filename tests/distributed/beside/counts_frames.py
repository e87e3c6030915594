"""Imports a helper module that sits next to it, as 1.x workflows did.

This folder is on no configured path: the workflow's folder is put on the import path
where the workflow is loaded, and on the workers that run it.
"""

import _frame_count
from lightflow.models import Dag
from lightflow.tasks import PythonTask


def count(data, store, signal, context):
    store.set("frames", _frame_count.count())


d = Dag("main")
d.define({PythonTask("count", count): None})
