"""A workflow that declares none of the parameters a ``lines`` trigger passes."""

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("sample", default="none", help="Not an item")])


def nothing(data, store, signal, context):
    pass


d = Dag("unrelated")
d.define({PythonTask("nothing", nothing): None})
