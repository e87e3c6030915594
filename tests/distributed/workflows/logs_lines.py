"""A task on the 'logcfg' queue that logs inside and outside `lightflow.*`, and prints.

For the tests of the config's logging section on workers.
"""

import logging

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def expose(data, store, signal, context):
    logging.getLogger("lightflow.beamline").info("exposure of %s done", "scan_0042")
    logging.getLogger("beamline").info("detector cooled")
    print("shutter closed")


d = Dag("main")
d.define({PythonTask("expose", expose, queue="logcfg"): None})
