"""A workflow importing shared code from a `libraries` folder (on client and workers)."""

from beamline_utils import detector_name
from lightflow.models import Dag
from lightflow.tasks import PythonTask


def name_it(data, store, signal, context):
    store.set("detector", detector_name(3))


d = Dag("main")
d.define({PythonTask("name_it", name_it): None})
