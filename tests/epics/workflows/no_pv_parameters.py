"""A workflow that declares none of the parameters a PV trigger passes."""

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("sample", default="none")])

d = Dag("nothing")
d.define({PythonTask("noop"): None})
