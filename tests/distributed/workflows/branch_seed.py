"""The seed shape: a branch task limits itself to one of two lanes, then a join."""

from lightflow.models import Action, Dag
from lightflow.tasks import PythonTask


def branch(data, store, signal, context):
    data["value"] = 1
    return Action(data, limit=["lane1"])


def lane(data, store, signal, context):
    data["value"] += 1


branch_task = PythonTask("branch", branch)
lane1, lane2 = PythonTask("lane1", lane), PythonTask("lane2", lane)
join = PythonTask("join", lambda data, store, signal, context: None)
d = Dag("main")
d.define({branch_task: [lane1, lane2], lane1: join, lane2: join})
