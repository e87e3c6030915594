"""A BashTask whose command runs for minutes, with a child of its own, on its own queue.

The command writes its shell's parent (the worker process running the task), its own
pid and its child's pid to the file ``pids`` names, one per line.
"""

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import BashTask

parameters = Parameters([Option("pids", help="File the command writes its pids to")])


def command(data, store):
    pids = store.get("pids")
    return f"sleep 300 & echo $PPID $$ $! > {pids}.tmp && mv {pids}.tmp {pids}; wait"


d = Dag("main")
d.define({BashTask("long", command, queue="bash_victim"): None})
