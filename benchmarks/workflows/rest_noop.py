"""One no-op task: what the REST benchmark starts (the cost measured is the server's)."""

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def nothing(data, store, signal, context):
    return None


d = Dag("main")
d.define({PythonTask("nothing", nothing): None})
